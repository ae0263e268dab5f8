"""Cross-modal imputation with a trained MMCGAN: CT volumes for real patients' rows, clinical rows
for real CTs.

    impute_table("runs/mm", "rows.csv", "out/")      # jaxsyn impute --table: out/<id>.nii.gz
    impute_images("runs/mm", "ct_folder/", "out/")   # jaxsyn impute --images: out/imputed.parquet

Both load the run through `jaxsyn.infer.mmcgan.MMCGANSynthesizer`; row or volume i draws what a
cohort's patient i draws (`first=i`). `impute_images` also checks each volume against the
training anatomy (`jaxsyn.infer.anatomy`) and, given the truth, how often the recovered class
matches, in and out of the training store.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from jaxsyn import files
from jaxsyn.data.clinical import read_table
from jaxsyn.data.store import VolumeStore, find_volumes, source_checksum
from jaxsyn.data.volumes import (
    Volume,
    diagonal_affine,
    fit_cube,
    load_volume,
    save_nifti,
    volume_stem,
)
from jaxsyn.errors import DataError
from jaxsyn.infer import anatomy
from jaxsyn.infer.mmcgan import MMCGANSynthesizer


def impute_table(
    run_dir: str | os.PathLike,
    table: str | os.PathLike,
    out: str | os.PathLike,
    *,
    seed: int = 0,
    chunk: int = 4,
    id_column: str | None = None,
    progress: bool = True,
) -> Path:
    """CT volumes for real patients' rows: each row's condition columns condition the shared
    generator (the only way the model lets a row inform an image); `out/<id>.nii.gz` + manifest."""
    run_dir, out = Path(run_dir), Path(out)
    syn = MMCGANSynthesizer.load(run_dir)
    df = read_table(table)
    columns = syn.condition_columns
    if absent := [c for c in columns if c not in df.columns]:
        raise DataError(
            f"{table}: no column {absent[0]!r}; expected this model's conditions {columns}"
        )
    id_column = id_column or syn.transformer.schema.id_column
    ids = (
        df[id_column].astype(str).tolist()
        if id_column in df.columns
        else [f"row_{i:06d}" for i in range(len(df))]
    )
    spacing, s = syn.info["spacing_mm"], syn.config.image.size
    affine = diagonal_affine((spacing,) * 3, (s,) * 3)
    for i in tqdm(range(len(df)), desc="impute", unit="vol", disable=not progress):
        given = {c: float(df[c].iloc[i]) for c in columns}
        labels, cont = syn.conditions(1, given, seed, first=i)
        vol = syn.volumes(syn.zc(1, labels, cont, seed, first=i), chunk)[0]
        save_nifti(out / f"{ids[i]}.nii.gz", Volume(hu=vol, affine=affine, source=ids[i]))
    manifest = {"family": "mmcgan", "mode": "table->image", "run": str(run_dir.absolute()),
                "table": str(table), "seed": seed, "ids": ids, "files": files.tree_files(out)}  # fmt: skip
    files.write_json(out / files.MANIFEST, manifest)
    return out


def training_checksums(info: dict) -> set[str] | None:
    """The checksums of the source volumes of a run's training store (`config.json`'s data),
    or None when that store is no longer readable."""
    try:
        return set(VolumeStore(info["data"]).manifest["inputs"]["sources"].values())
    except (KeyError, TypeError, DataError, OSError):
        return None


def anatomy_warning(info: dict, ids: list[str], profiles: list) -> dict:
    """`jaxsyn.infer.anatomy.check` of the imputed volumes against the run's training store, with
    a warning naming the volumes that do not look like the training anatomy (or saying that the
    store is gone and nothing was checked)."""
    train = anatomy.training_profiles(info.get("data"))
    if train is None:
        return {"checked": False, "why": f"training store {info.get('data')} not readable"}
    found = anatomy.check(train, np.stack(profiles))
    unlike = [i for i, u in zip(ids, found.pop("unlike"), strict=True) if u]
    if unlike:
        warnings.warn(
            f"{len(unlike)} of {len(ids)} volumes do not look like the training anatomy (their "
            f"Hounsfield-band shares differ from the training mean by more than "
            f"{found['threshold']:.2f}), e.g. {unlike[:3]}: their imputed rows are extrapolation",
            stacklevel=3,
        )
    return {"checked": True, "unlike_training": unlike, **found}


def impute_images(
    run_dir: str | os.PathLike,
    images: str | os.PathLike,
    out: str | os.PathLike,
    *,
    seed: int = 0,
    truth: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    """Clinical rows for real CTs: E^H -> E^G gives [ẑ; conditions] -> shared generator ->
    tabular head, conditioned on the recovered class. Writes `out/imputed.parquet` (`image_id`,
    the recovered condition, every clinical column) and `out/manifest.json`. With `truth` (a
    table with the images' ids and the class column, e.g. a phantom cohort's table.csv; found
    beside the images when present), reports how often the recovered class matches, and how
    many of those volumes the model was trained on (their checksums in the run's training
    store): `class_match.in_training` (None when the store is gone) and, for the others,
    `class_match.held_out`, the figure that says how imputation generalises."""
    run_dir, images, out = Path(run_dir), Path(images), Path(out)
    syn = MMCGANSynthesizer.load(run_dir, encoders=True)
    paths = find_volumes(images)
    trained_on = training_checksums(syn.info)
    seen = [None if trained_on is None else source_checksum(p) in trained_on for p in paths]
    size, spacing = syn.config.image.size, syn.info.get("ingest_spacing_mm")
    rows, profiles = [], []
    for i, path in enumerate(tqdm(paths, desc="impute", unit="vol", disable=not progress)):
        cube = fit_cube(load_volume(path), size, spacing)  # the training store's spacing rule
        profiles.append(anatomy.profile(cube.hu))
        row = syn.impute_rows(cube.hu[None], seed=seed, first=i)
        row.insert(0, "image_id", volume_stem(path))
        rows.append(row)
    table = pd.concat(rows, ignore_index=True)
    out.mkdir(parents=True, exist_ok=True)
    with files.atomic_path(out / "imputed.parquet", ".parquet") as tmp:
        table.to_parquet(tmp, index=False)
    result = {"family": "mmcgan", "mode": "image->table", "run": str(run_dir.absolute()),
              "images": str(images), "n": len(table),
              "anatomy": anatomy_warning(syn.info, table["image_id"].tolist(), profiles)}  # fmt: skip
    truth = (
        Path(truth)
        if truth
        else (images / "table.csv" if (images / "table.csv").is_file() else None)
    )
    name = syn.info.get("class_column")
    if truth is not None and name:
        real = read_table(truth)
        id_column = syn.transformer.schema.id_column or real.columns[0]
        real = real.set_index(real[id_column].astype(str))
        patient = table["image_id"].str.split("__").str[0]
        known = patient.isin(real.index)
        if known.any():
            want = real.loc[patient[known], name].to_numpy()
            got = table.loc[known, f"recovered_{name}"].to_numpy()
            match = {"column": name, "n": int(known.sum()),
                     "accuracy": float(np.mean(want == got)),
                     "chance": float(np.max(np.bincount(want.astype(int))) / len(want)),
                     "in_training": None, "held_out": None}  # fmt: skip
            if trained_on is not None:
                in_training = np.asarray(seen, bool)[known.to_numpy()]
                match["in_training"] = int(in_training.sum())
                if (~in_training).any():
                    held = ~in_training
                    match["held_out"] = {"n": int(held.sum()),
                                         "accuracy": float(np.mean(want[held] == got[held]))}  # fmt: skip
            result["class_match"] = match
    result["files"] = files.tree_files(out)
    files.write_json(out / files.MANIFEST, result)
    return result
