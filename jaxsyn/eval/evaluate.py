"""`jaxsyn evaluate`: fidelity, utility and privacy of a synthetic set against its real data.

    jaxsyn evaluate --real DIR --synthetic DIR [--holdout DIR] --out REPORT [--features inception=PATH]
    evaluate("data/cxr", "gen/cxr", "reports/cxr", holdout="data/cxr-holdout")

`--real` is the generator's training data, `--holdout` real data it never saw. What is read:
  images   a folder with labels.csv and `<id>.png|.npy|.dcm` (`jaxsyn.data.images`):
           `jaxsyn.eval.images`
  tables   a .csv/.parquet file, or a folder holding synthetic.parquet (`jaxsyn generate`
           output): `jaxsyn.eval.tables`
  volumes  a folder of .nii/.nii.gz files (phantom cohorts, `jaxsyn generate` of HA-GAN), with
           labels.csv or table.csv for --labels, or a store made by `jaxsyn ingest`:
           `jaxsyn.eval.volumes` (2.5D and 3D, every volume first resampled to one isotropic
           grid, which the report names)
Images and volumes. Per feature extractor: FID of the full sets, FID_rr (two real halves) and
FID_rs (a real half vs as many synthetic samples) averaged over 5 random splits and r_FID =
FID_rr / FID_rs, KID, MMD (RBF, median heuristic), precision / recall / density / coverage
(`sections.distribution_metrics`; for volumes also MAISI's per-plane 2.5D FID). Privacy, with
a holdout: pGAN's pairwise and distribution attacks (candidates: equal parts training samples,
the first half of the holdout as "held-out" and its second half as "test", since one holdout
folder is given) in pixel space, in a real-trained classifier's features (volumes) and, with
--umap, in pGAN's 32-d UMAP of each; nearest training samples of synthetic ones (L2 in pixels; cosine in classifier features).
Without a holdout the attacks are skipped with a note. Tables: sdmetrics-equivalent quality,
association heat maps and distance to closest record. Utility, with --test and --labels: the
same classifier trained on real and on synthetic data (5 seeds), tested on --test.
Leakage guards (`jaxsyn.eval.leakage`): --test must share no id and no identical image with
--real or --holdout, and --features-train (real data for the domain feature extractor) none with
--real, --holdout or --test; without --features-train the extractor is trained on --real, the
report says that it saw the members, and the attacks in its feature space are skipped.
Every number lands in report.json with its settings; index.html shows them with the figures.
"""

from __future__ import annotations

import os
from pathlib import Path

from jaxsyn.data.volumes import NIFTI_SUFFIXES
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.eval import leakage
from jaxsyn.eval.report import Report
from jaxsyn.eval.sections import (  # noqa: F401  GRID, KID_SUBSET, UTILITY_MODELS: re-exported
    GRID,
    KID_SUBSET,
    UTILITY_MODELS,
    UTILITY_MODELS_3D,
)
from jaxsyn.eval.tables import read_table  # noqa: F401  re-exported
from jaxsyn.eval.volume_sets import is_store
from jaxsyn.eval.volumes import VOLUME_SIZE, load_planes  # noqa: F401  re-exported

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")
# The classifier each kind trains for utility (and for domain features) unless told otherwise.
DEFAULT_MODELS = {"images": "densenet121", "volumes": "resnet3d-10", "table": "hgb"}


def kind_of(path: str | os.PathLike, prefer: str | None = None) -> str:
    """ "images", "volumes" or "table" for a data path: a folder of NIfTI volumes (with
    labels.csv or table.csv for --labels) or a store, a folder with labels.csv (images), a table file, or a
    folder holding synthetic.parquet. A folder with both volumes and synthetic.parquet (MMCGAN's
    `jaxsyn generate`) is `prefer` ("volumes" or "table": --real's kind), else "table"."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in TABLE_SUFFIXES:
        return "table"
    if is_store(path):
        return "volumes"
    if path.is_dir():
        volumes = any(p.name.endswith(NIFTI_SUFFIXES) for p in path.iterdir())
        table = (path / "synthetic.parquet").is_file()
        if volumes and table:
            return prefer if prefer in ("volumes", "table") else "table"
        if volumes:
            return "volumes"  # before labels.csv: a volume folder may carry one for --labels
        if (path / "labels.csv").is_file():
            return "images"
        if table:
            return "table"
    raise DataError(
        f"{path}: neither an image folder (with labels.csv), a folder of NIfTI volumes, a store "
        "(jaxsyn ingest), nor a table (.csv/.parquet, or a folder with synthetic.parquet)"
    )


def evaluate(
    real: str | os.PathLike,
    synthetic: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    holdout: str | os.PathLike | None = None,
    features: dict[str, str | None] | None = None,
    umap: bool = False,
    test: str | os.PathLike | None = None,
    labels: list[str] | None = None,
    utility_model: str | None = None,
    utility_epochs: int = 10,
    augment: bool = False,
    occlusion: bool = False,
    volume_size: int = VOLUME_SIZE,
    features_train: str | os.PathLike | None = None,
    val: str | os.PathLike | None = None,
    compare_ids: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Evaluate and write the report; returns index.html's path. `features` {name: weights path
    or None}: pixels always; None = for images pixels + Inception when its weights are installed,
    for volumes pixels (Inception only when named: the report says why) and, with `labels`, the
    3D domain features. `umap`: a 2-d UMAP figure of each
    extractor's features (fitted on real, applied to both) and the membership attacks again in
    pGAN's 32-d UMAP (the `umap` extra). Utility, with `test` (held-out real data with labels)
    and `labels` (label columns: several 0/1 columns are a multi-label task, one column of
    classes a multi-class one; for tables the one target column): train on real and on
    synthetic, test on `test` (`jaxsyn.eval.utility`, seeds 0-4) with `utility_model` for
    `utility_epochs` epochs: images {UTILITY_MODELS}, volumes {UTILITY_MODELS_3D} on
    `volume_size`^3 grids, tables "hgb" (gradient boosting) or "mlp"; default per kind
    `DEFAULT_MODELS`. `features_train`: labelled real
    data, disjoint from `real`, `holdout` and `test`, on which the domain feature extractor is
    trained (else on `real`: the report says so and skips the attacks in its features).
    `val`: labelled real validation data (images, volumes), disjoint from `real`, `holdout` and
    `test`, that selects the real-trained classifier's epoch; the synthetic-trained one is
    selected on synthetic samples held out of `synthetic` (DuMont et al.: each on its own kind of
    data; `utility.tstr`); without it every classifier keeps its last epoch.
    `compare_ids` False: the leakage guards compare contents only, for ids that merely number
    each folder's files, as phantom cohorts' do (`jaxsyn.eval.leakage`). `occlusion` adds the occlusion maps of an image classifier trained on real
    and one trained on synthetic images (seed 0), side by side. A run that fails leaves no
    partial report behind (`Report.discard`)."""
    from jaxsyn.eval import images, tables, volumes

    first = kind_of(real)
    given = {"real": real, "synthetic": synthetic, "holdout": holdout, "features-train":
             features_train, "test": test if test is not None and labels else None,
             "val": val if val is not None and test is not None and labels else None}  # fmt: skip
    given = {flag: path for flag, path in given.items() if path is not None}
    kinds = {flag: kind_of(path, first) for flag, path in given.items()}
    if len(set(kinds.values())) > 1:
        flags = ", ".join(f"--{flag}" for flag in kinds)
        raise DataError(f"{flags} are {sorted(set(kinds.values()))}; expected one kind")
    kind = first
    if "val" in given and kind_of(real) == "table":
        raise ConfigError(f"--val {val}: tables' classifiers have no epochs to select; omit it")
    pairs = [(a, b) for a in ("test", "features-train", "val") for b in ("real", "holdout", "test")
             if a != b and a in given and b in given]  # fmt: skip
    leakage.check_disjoint(given, pairs, kind, ids=compare_ids)
    guards = {"features_train": str(features_train) if features_train else None,
              "disjoint": [f"--{a} vs --{b}" for a, b in pairs],
              "disjoint_by": "ids and contents" if compare_ids else "contents"}  # fmt: skip
    model = utility_model or DEFAULT_MODELS[kind]
    report = Report(
        out_dir, title=f"jaxsyn evaluation: {Path(synthetic).name} vs {Path(real).name}"
    )
    try:
        report.numbers("inputs", {"real": str(real), "synthetic": str(synthetic),
                                  "holdout": str(holdout) if holdout else None, "seed": seed, **guards})  # fmt: skip
        domain = (labels, model, utility_epochs, features_train)
        if kind == "table":
            tables.tables(report, real, synthetic, holdout)
        elif kind == "volumes":
            volumes.volumes(report, real, synthetic, holdout, features, umap, domain, seed,
                            progress, volume_size)  # fmt: skip
        else:
            images.images(report, real, synthetic, holdout, features, umap, domain, seed, progress)
        if test is None or not labels:
            report.text("utility", "Utility skipped: it needs --test (held-out real data with "
                        "labels) and --labels.")  # fmt: skip
        elif kind == "table":
            tables.table_utility(report, real, synthetic, test, labels, augment, model)
        elif kind == "volumes":
            volumes.volume_utility(report, real, synthetic, test, labels, model, utility_epochs,
                                   augment, progress, volume_size, val=val)  # fmt: skip
        else:
            images.image_utility(report, real, synthetic, test, labels, model, utility_epochs,
                                 augment, occlusion, progress, val=val)  # fmt: skip
        return report.write()
    except BaseException:
        report.discard()  # a failed evaluation leaves no partial report or figures behind
        raise


def parse_features(items: list[str]) -> dict[str, str | None]:
    """["inception=PATH", "pixels"] -> {"inception": "PATH", "pixels": None}."""
    out = {}
    for item in items:
        name, _, path = item.partition("=")
        if name not in ("pixels", "inception", "domain"):
            raise ConfigError(
                f"--features {item}: unknown extractor; expected pixels, inception=PATH or domain"
            )
        out[name] = path or None
    return out
