"""Labelled single-channel images with patient ids: what DUIIT's translator and predictor read.

    ds = load_labelled("data/ct", label="age", size=64, seed=0)      # a folder
    ds = load_labelled("phantom:head-mri:200", label="age", size=64, seed=0)
    train, test = split_by_patient(ds, 0.2, seed=3)                  # 20 % of patients held out

`images` are float32 [N, H, W, 1] in [-1, 1], `labels` float32 [N] (None when `label` is None).
A spec is one of:
  a folder of images   PNG/JPEG/TIFF/.npy/.dcm files read as `jaxsyn.data.images` reads them
                       ([0, 1], RGB averaged to grey) and mapped to [-1, 1], with labels.csv: an id
                       column (`image_id`, `id` or the first), optionally `patient_id` (else each
                       image is its own patient) and the label column.
  a folder of volumes  .nii/.nii.gz files cut into axial slices (RAS+ canonical, shown
                       radiologically: rows anterior -> posterior, columns right -> left); a
                       slice is kept when at least 5 % of it is above the volume's 1st percentile
                       (blank slices above and below the head are dropped). Intensities go to
                       [-1, 1] through `window=(lo, hi)` when given (e.g. HU), else through the
                       volume's own 0.5th-99.5th percentiles. Image ids `<stem>_z<kkk>`, patient
                       id the volume's stem; labels.csv has one row per volume (id column as
                       above, matching the stem).
  phantom:head-ct:N    N simulated patients of `jaxsyn.data.phantoms.head` (also head-mri,
                       head-pet), one slice each, made in memory from `seed`.
`seed` only matters for phantoms; a folder loads in its label table's order.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from jaxsyn.data import images as image_io
from jaxsyn.data.volumes import NIFTI_SUFFIXES, load_volume, volume_stem
from jaxsyn.errors import ConfigError, DataError

PHANTOM_PREFIX = "phantom:head-"
MIN_FOREGROUND = 0.05  # share of a slice above the volume's background for it to be kept


@dataclasses.dataclass
class LabelledImages:
    """N labelled images. `images` float32 [N, H, W, 1] in [-1, 1]; `labels` float32 [N] or None."""

    images: np.ndarray
    labels: np.ndarray | None
    image_ids: list[str]
    patient_ids: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.image_ids)

    def subset(self, index) -> LabelledImages:
        """The examples at integer positions `index`, in that order."""
        index = np.asarray(index, dtype=np.int64)
        return LabelledImages(
            images=self.images[index],
            labels=None if self.labels is None else self.labels[index],
            image_ids=[self.image_ids[i] for i in index],
            patient_ids=[self.patient_ids[i] for i in index],
            source=self.source,
        )


def load_labelled(
    spec: str,
    label: str | None,
    size: int,
    seed: int,
    *,
    window: tuple[float, float] | None = None,
    progress: bool = True,
) -> LabelledImages:
    """Read `spec` (a folder or phantom:head-MODALITY:N) at `size` x `size`; see the module doc."""
    spec = str(spec)
    if spec.startswith("phantom:"):
        return _phantom(spec, label, size, seed)
    folder = Path(spec)
    if not folder.is_dir():
        raise DataError(
            f"{spec}: no such folder; expected a folder of images or NIfTI volumes with "
            "labels.csv, or phantom:head-ct|head-mri|head-pet:N"
        )
    volumes = [p for p in sorted(folder.iterdir()) if p.name.endswith(NIFTI_SUFFIXES)]
    if volumes:
        return _volumes(folder, volumes, label, size, window, progress)
    return _images(folder, label, size, progress)


def split_by_patient(
    ds: LabelledImages, fraction: float, seed: int
) -> tuple[LabelledImages, LabelledImages]:
    """(train, test): a `fraction` of the patients (rounded, at least one on each side when there
    are two or more) and all their images go to test; a patient is never in both."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"fraction is {fraction}; expected a share of patients in (0, 1)")
    patients = sorted(set(ds.patient_ids))
    if len(patients) < 2:
        raise DataError(f"{ds.source}: {len(patients)} patient; a split needs at least 2")
    n_test = min(max(1, round(fraction * len(patients))), len(patients) - 1)
    order = np.random.default_rng(seed).permutation(len(patients))
    test_patients = {patients[i] for i in order[:n_test]}
    is_test = np.array([p in test_patients for p in ds.patient_ids])
    return ds.subset(np.flatnonzero(~is_test)), ds.subset(np.flatnonzero(is_test))


def _phantom(spec: str, label: str | None, size: int, seed: int) -> LabelledImages:
    from jaxsyn.data.phantoms import head

    kinds = "|".join(f"head-{m}" for m in head.MODALITIES)
    parts = spec.split(":")
    modality = parts[1].removeprefix("head-") if len(parts) == 3 else ""
    if not spec.startswith(PHANTOM_PREFIX) or modality not in head.MODALITIES:
        raise ConfigError(f"{spec}: unknown phantom; expected phantom:{kinds}:N")
    try:
        n = int(parts[2])
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"{spec}: N is {parts[2]!r}; expected phantom:{kinds}:N with N >= 1")
    images, table = head.cohort(modality, n, size, seed)
    columns = ["image_id", "patient_id", "age"]
    return _assemble(images[..., None].astype(np.float32) / 255.0, table[columns], label,
                     spec, "image_id", f"{spec} (columns image_id, patient_id, age)")  # fmt: skip


def _images(folder: Path, label: str | None, size: int, progress: bool) -> LabelledImages:
    table, id_column = image_io.read_labels(folder)
    _check_label(table, label, folder / "labels.csv")
    files = image_io.image_files(folder)
    ids = table[id_column].tolist()
    missing = [i for i in ids if i not in files]
    if missing:
        raise DataError(
            f"{folder / 'labels.csv'}: image {missing[0]!r} has no file "
            f"{folder / (missing[0] + '.png')} (or another of {', '.join(image_io.SUFFIXES)})"
            + (f"; {len(missing)} ids are missing" if len(missing) > 1 else "")
        )
    arrays = []
    for i in tqdm(ids, desc="images", unit="img", disable=not progress or len(ids) < 200):
        image = image_io.read_image(files[i])
        if image.shape[-1] == 3:
            image = image.mean(-1, keepdims=True)
        elif image.shape[-1] != 1:
            raise DataError(
                f"{files[i]}: {image.shape[-1]} channels; expected one (grey) or three (RGB)"
            )
        arrays.append(image_io.resize(image, size))
    return _assemble(np.stack(arrays), table, label, str(folder), id_column,
                     str(folder / "labels.csv"))  # fmt: skip


def _volumes(folder, paths, label, size, window, progress) -> LabelledImages:
    table = None
    if (folder / "labels.csv").is_file() or label is not None:
        table, id_column = image_io.read_labels(folder)
        _check_label(table, label, folder / "labels.csv")
        table = table.set_index(id_column)
        stems = [volume_stem(p) for p in paths]
        missing = [i for i in table.index if i not in stems]
        if missing:
            raise DataError(
                f"{folder / 'labels.csv'}: volume {missing[0]!r} has no file "
                f"{folder / (missing[0] + '.nii.gz')} (or .nii)"
            )
        paths = [p for p, s in zip(paths, stems, strict=True) if s in table.index]
    arrays, rows = [], []
    for path in tqdm(paths, desc="volumes", unit="vol", disable=not progress or len(paths) < 4):
        stem = volume_stem(path)
        hu = load_volume(path).hu
        lo, hi = window if window is not None else np.percentile(hu, [0.5, 99.5])
        background = np.percentile(hu, 1)
        for k in range(hu.shape[0]):
            axial = hu[k, ::-1, ::-1]  # RAS+: flip to rows anterior -> posterior, right -> left
            if (axial > background).mean() < MIN_FOREGROUND:
                continue
            x = np.clip((axial - lo) / max(hi - lo, 1e-12), 0, 1).astype(np.float32)
            arrays.append(image_io.resize(np.ascontiguousarray(x)[..., None], size))
            row = {"image_id": f"{stem}_z{k:03d}", "patient_id": stem}
            if table is not None and label is not None:
                row[label] = table.loc[stem, label]
            rows.append(row)
    if not arrays:
        raise DataError(f"{folder}: no axial slice with content in {len(paths)} volumes")
    return _assemble(np.stack(arrays), pd.DataFrame(rows), label, str(folder), "image_id",
                     str(folder / "labels.csv"))  # fmt: skip


def _check_label(table: pd.DataFrame, label: str | None, where) -> None:
    if label is not None and label not in table.columns:
        raise DataError(
            f"{where}: no label column {label!r}; columns present: {', '.join(map(str, table))}"
        )


def _assemble(images01, table, label, source, id_column, where) -> LabelledImages:
    """Map [0, 1] images to [-1, 1] and read ids, patients and the label from `table`."""
    _check_label(table, label, where)
    labels = None
    if label is not None:
        values = pd.to_numeric(table[label], errors="coerce").to_numpy(np.float64)
        bad = table[id_column][~np.isfinite(values)].tolist()
        if bad:
            raise DataError(
                f"{where}: column {label!r} is not a finite number for {bad[:5]}; "
                "expected a numeric label per image"
            )
        labels = values.astype(np.float32)
    ids = table[id_column].astype(str).tolist()
    patients = table["patient_id"].astype(str).tolist() if "patient_id" in table else ids
    images = (np.asarray(images01, np.float32) * 2.0 - 1.0).astype(np.float32)
    return LabelledImages(images, labels, ids, patients, source)
