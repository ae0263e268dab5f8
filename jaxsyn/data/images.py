"""2D image folders with a label table: what the 2D models train on and the evaluation reads.

    images, labels = load_images("data/cxr", size=64)   # float32 [N, 64, 64, C] in [0, 1]

A folder holds one file per example, named `<id>.<ext>`, and `labels.csv` with an id column
(`image_id`, `id` or the first column) and one column per label. Files:
  .png .jpg .jpeg .bmp .tif(f)   read with PIL; 8- or 16-bit grey, or RGB (kept as 3 channels)
  .npy                           [H, W] or [H, W, C] arrays (multi-channel slices, e.g. 9-slice
                                 vertebral units); integer arrays are scaled by their dtype's
                                 range, float arrays are taken as already in [0, 1]
  .dcm                           one DICOM image (pydicom, the `dicom` extra): rescale slope and
                                 intercept applied, then the file's first VOI window, else its
                                 min-max, mapped to [0, 1]
Images are resized (PIL bilinear with antialiasing) to `size` x `size` when given; otherwise they
must all share one shape. Rows of labels.csv without a file, and files without a row, are
errors that name them, unless `ignore_unlabelled` lets extra files (e.g. PNG previews of .npy
examples) be skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from jaxsyn.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
SUFFIXES = (*IMAGE_SUFFIXES, ".npy", ".dcm")
ID_COLUMNS = ("image_id", "id")


def read_labels(folder: str | os.PathLike) -> tuple[pd.DataFrame, str]:
    """(labels.csv of `folder` with ids as strings, the id column's name)."""
    path = Path(folder) / "labels.csv"
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected a label table beside the images")
    try:
        table = pd.read_csv(path, dtype={c: str for c in ID_COLUMNS})
    except Exception as e:  # pandas raises several kinds for a broken CSV
        raise DataError(f"{path}: unreadable ({type(e).__name__}: {e})") from e
    if table.empty:
        raise DataError(f"{path}: no rows; expected one row per image")
    id_column = next((c for c in ID_COLUMNS if c in table.columns), table.columns[0])
    table[id_column] = table[id_column].astype(str)
    duplicated = table[id_column][table[id_column].duplicated()].tolist()
    if duplicated:
        raise DataError(f"{path}: column {id_column!r} repeats ids {duplicated[:5]}")
    return table, id_column


def image_files(folder: str | os.PathLike) -> dict[str, Path]:
    """{id: file} for every image file in `folder`; an .npy example wins over its PNG preview,
    any other two files for one id are an error."""
    by_id: dict[str, list[Path]] = {}
    for p in sorted(Path(folder).iterdir()):
        if p.suffix.lower() in SUFFIXES and p.is_file():
            by_id.setdefault(p.stem, []).append(p)
    files = {}
    for stem, paths in by_id.items():
        arrays = [p for p in paths if p.suffix.lower() == ".npy"]
        if len(arrays) > 1 or (not arrays and len(paths) > 1):
            raise DataError(f"{folder}: several files for id {stem!r}: {[p.name for p in paths]}")
        files[stem] = (arrays or paths)[0]
    return files


def read_image(path: str | os.PathLike) -> np.ndarray:
    """One file as float32 [H, W, C] in [0, 1]."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix == ".dcm":
            array = _read_dicom(path)
        else:
            with Image.open(path) as im:
                array = np.asarray(im.convert("RGB") if im.mode in ("P", "RGBA", "CMYK") else im)
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{path}: unreadable image ({type(e).__name__}: {e})") from e
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise DataError(f"{path}: array of shape {array.shape}; expected [H, W] or [H, W, C]")
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        array = (array.astype(np.float64) - info.min) / (info.max - info.min)
    elif array.dtype == bool:
        array = array.astype(np.float64)
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise DataError(f"{path}: NaN or Inf values; expected finite intensities")
    return array


def _read_dicom(path: Path) -> np.ndarray:
    try:
        import pydicom
    except ImportError as e:
        raise DataError(f"{path}: reading DICOM needs pydicom (pip install 'jaxsyn[dicom]')") from e
    ds = pydicom.dcmread(path)
    x = ds.pixel_array.astype(np.float64)
    x = x * float(getattr(ds, "RescaleSlope", 1)) + float(getattr(ds, "RescaleIntercept", 0))
    centre, width = getattr(ds, "WindowCenter", None), getattr(ds, "WindowWidth", None)
    if centre is not None and width is not None:
        centre = float(centre[0] if isinstance(centre, pydicom.multival.MultiValue) else centre)
        width = float(width[0] if isinstance(width, pydicom.multival.MultiValue) else width)
        lo, hi = centre - width / 2, centre + width / 2
    else:
        lo, hi = float(x.min()), float(x.max())
    x = np.clip((x - lo) / max(hi - lo, 1e-12), 0, 1)
    if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
        x = 1 - x  # MONOCHROME1: high values are dark
    return x


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """[H, W, C] float32 -> [size, size, C], bilinear with antialiasing, per channel."""
    if image.shape[:2] == (size, size):
        return image
    channels = [
        np.asarray(Image.fromarray(image[..., c]).resize((size, size), Image.Resampling.BILINEAR))
        for c in range(image.shape[-1])
    ]
    return np.stack(channels, -1).astype(np.float32)


def load_images(
    folder: str | os.PathLike,
    *,
    size: int | None = None,
    ignore_unlabelled: bool = True,
    progress: bool = True,
) -> tuple[np.ndarray, pd.DataFrame]:
    """(images float32 [N, H, W, C] in [0, 1], the label rows in the same order)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; expected images and labels.csv")
    table, id_column = read_labels(folder)
    files = image_files(folder)
    ids = table[id_column].tolist()
    missing = [i for i in ids if i not in files]
    if missing:
        raise DataError(
            f"{folder}/labels.csv: {len(missing)} ids have no image file, e.g. {missing[:5]}; "
            f"expected <id>{{{','.join(SUFFIXES)}}}"
        )
    extra = sorted(set(files) - set(ids))
    if extra and not ignore_unlabelled:
        raise DataError(f"{folder}: {len(extra)} images have no label row, e.g. {extra[:5]}")
    images = []
    for i in tqdm(ids, desc="images", unit="img", disable=not progress or len(ids) < 200):
        image = read_image(files[i])
        images.append(resize(image, size) if size else image)
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DataError(
            f"{folder}: images of shapes {sorted(shapes)[:4]}; expected one shape (pass size=)"
        )
    return np.stack(images), table.reset_index(drop=True)
