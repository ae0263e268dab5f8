"""One CT/MR DICOM series (a folder of single-frame slices) into a RAS+ canonical `Volume`.

Geometry follows DICOM PS3.3 C.7.6.2.1.1: the pixel at column c, row r of a slice lies at

    LPS = ImagePositionPatient + c * PixelSpacing[1] * row_cosines + r * PixelSpacing[0] * col_cosines

PixelSpacing is [between rows, between columns], so the column index steps by PixelSpacing[1].
Slices are ordered along the slice normal (row_cosines x col_cosines), never by InstanceNumber or
file name, which scanners and anonymisers do not keep in anatomical order. The (c, r, slice) array
and its LPS->RAS affine go through nibabel exactly as `volumes.load_nifti` does, so a DICOM series
and the NIfTI converted from it load identically.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np

from jaxsyn.data.volume import Volume
from jaxsyn.errors import DataError

SPACING_RTOL = 0.01  # slice gaps may differ by 1%: positions are stored as rounded decimal strings
GEOMETRY_ATOL = 1e-4  # cosines and pixel spacing must agree between slices to this
DUPLICATE_MM = 1e-3  # two slices closer than this along the normal occupy the same position
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_GEOMETRY = ("Rows", "Columns", "PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient")


def load_dicom_series(folder: Path) -> Volume:
    """Read every DICOM image in `folder` (one series, any file names) as float32 HU."""
    folder = Path(folder)
    try:
        import pydicom
    except ImportError as e:
        raise DataError(
            f"{folder}: reading DICOM needs pydicom; pip install 'jaxsyn[dicom]'"
        ) from e
    images = _read_images(folder, pydicom)
    _check_one_series(folder, images)
    if len(images) < 2:
        raise DataError(
            f"{folder}: found 1 image slice ({images[0][0].name}); expected a 3D volume of at least 2 slices"
        )
    row_cos, col_cos, spacing = _common_geometry(images)
    normal = np.cross(row_cos, col_cos)
    ipp = np.array([_floats(ds, "ImagePositionPatient") for _, ds in images])
    order = np.argsort(ipp @ normal, kind="stable")
    images, ipp = [images[i] for i in order], ipp[order]
    step = _slice_step(folder, images, ipp, normal)
    lps = np.eye(4)
    lps[:3, 0] = row_cos * spacing[1]  # x = column index, PixelSpacing[1] apart
    lps[:3, 1] = col_cos * spacing[0]  # y = row index, PixelSpacing[0] apart
    lps[:3, 2] = normal * step
    lps[:3, 3] = ipp[0]
    hu = _stack_hu(folder, images, pydicom)  # [slice, row, column]
    img = nib.as_closest_canonical(nib.Nifti1Image(hu.transpose(2, 1, 0), LPS_TO_RAS @ lps))
    data = np.asarray(img.get_fdata(dtype=np.float32))
    return Volume(
        hu=np.ascontiguousarray(data.transpose(2, 1, 0)), affine=img.affine, source=str(folder)
    )


def _read_images(folder: Path, pydicom) -> list[tuple[Path, object]]:
    """(path, dataset) of every DICOM file holding pixels; other files are skipped."""
    if not folder.is_dir():
        raise DataError(f"{folder}: not a directory; expected a folder holding one DICOM series")
    images, n_other = [], 0
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:  # defer_size: pixel bytes are read only once the series is known to be valid
            ds = pydicom.dcmread(path, force=False, defer_size="64 KB")
        except pydicom.errors.InvalidDicomError:
            n_other += 1  # README, .DS_Store, files without the DICM preamble
            continue
        except Exception as e:  # pydicom raises many types for a damaged file
            raise DataError(f"{path}: unreadable DICOM file ({type(e).__name__}: {e})") from e
        if "PixelData" in ds:
            images.append((path, ds))
        else:
            n_other += 1  # DICOMDIR, structured reports, presentation states
    if not images:
        raise DataError(
            f"{folder}: no DICOM image files found ({n_other} other files); expected one CT/MR series"
        )
    return images


def _check_one_series(folder: Path, images) -> None:
    uids = Counter(str(ds.get("SeriesInstanceUID", "") or "<none>") for _, ds in images)
    if len(uids) > 1:
        found = ", ".join(f"{uid} ({n} files)" for uid, n in uids.most_common())
        raise DataError(
            f"{folder}: holds {len(uids)} series: {found}; expected one series; pass one series per folder"
        )


def _floats(ds, name: str) -> np.ndarray:
    return np.atleast_1d(np.asarray(ds.get(name), dtype=np.float64))


def _show(value: np.ndarray) -> str:
    return f"{value[0]:g}" if value.size == 1 else str([float(f"{v:g}") for v in value])


def _common_geometry(images) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row cosines, column cosines and PixelSpacing, checked equal on every slice."""
    for path, ds in images:
        if int(ds.get("NumberOfFrames", 1) or 1) != 1 or int(ds.get("SamplesPerPixel", 1)) != 1:
            raise DataError(
                f"{path}: multi-frame or colour image; expected single-frame greyscale CT/MR slices"
            )
        missing = [name for name in _GEOMETRY if ds.get(name) is None]
        if missing:
            raise DataError(
                f"{path}: missing {', '.join(missing)}; expected a CT/MR slice with patient geometry"
            )
        for name, n in zip(_GEOMETRY, (1, 1, 2, 6, 3), strict=True):
            if _floats(ds, name).shape != (n,):
                raise DataError(f"{path}: {name} is {ds.get(name)}; expected {n} number(s)")
    ref = {}
    for name in _GEOMETRY[:4]:  # the median is what most slices say, so the odd one is named
        values = np.array([_floats(ds, name) for _, ds in images])
        ref[name] = np.median(values, axis=0)
        for (path, _), value in zip(images, values, strict=True):
            if not np.allclose(value, ref[name], rtol=0, atol=GEOMETRY_ATOL):
                raise DataError(
                    f"{path}: {name} is {_show(value)}; expected {_show(ref[name])} as in most slices of the series"
                )
    folder, iop, spacing = images[0][0].parent, ref[_GEOMETRY[3]], ref[_GEOMETRY[2]]
    row_cos, col_cos = iop[:3], iop[3:]
    dots = [row_cos @ row_cos, col_cos @ col_cos, row_cos @ col_cos]
    if not np.allclose(dots, [1, 1, 0], atol=1e-3):
        raise DataError(
            f"{folder}: ImageOrientationPatient is {iop.tolist()}; expected two orthogonal unit vectors"
        )
    if np.any(spacing <= 0):
        raise DataError(f"{folder}: PixelSpacing is {spacing.tolist()}; expected values > 0 mm")
    return row_cos, col_cos, spacing


def _slice_step(folder: Path, images, ipp: np.ndarray, normal: np.ndarray) -> float:
    """The uniform distance between consecutive (sorted) slices along the normal, in mm."""
    gaps = np.diff(ipp @ normal)
    names = [path.name for path, _ in images]
    dup = int(np.argmin(gaps))
    if gaps[dup] < DUPLICATE_MM:
        raise DataError(
            f"{folder}: {names[dup]} and {names[dup + 1]} share position {ipp[dup].tolist()}; expected one slice per position (duplicates, several echoes or phases are not supported)"
        )
    expected = float(np.median(gaps))
    worst = int(np.argmax(np.abs(gaps - expected)))
    if abs(gaps[worst] - expected) > SPACING_RTOL * expected:
        raise DataError(
            f"{folder}: gap of {gaps[worst]:.4g} mm between {names[worst]} and {names[worst + 1]}; expected {expected:.4g} mm, uniform within 1% (missing slices or irregular spacing are not supported)"
        )
    step = float(gaps.mean())
    shift = (ipp[-1] - ipp[0]) / (len(ipp) - 1) - normal * step  # in-plane drift per slice
    if np.linalg.norm(shift) > SPACING_RTOL * step:
        raise DataError(
            f"{folder}: slices drift {np.linalg.norm(shift):.4g} mm in-plane per {step:.4g} mm step; expected slices stacked along the normal (gantry tilt is not supported)"
        )
    return step


def _stack_hu(folder: Path, images, pydicom) -> np.ndarray:
    """[slice, row, column] float32 after each slice's own RescaleSlope/Intercept (or LUT)."""
    try:
        from pydicom.pixels import apply_modality_lut  # pydicom >= 3
    except ImportError:
        from pydicom.pixel_data_handlers.util import apply_modality_lut  # pydicom 2.x
    out = np.empty((len(images), int(images[0][1].Rows), int(images[0][1].Columns)), np.float32)
    for k, (path, ds) in enumerate(images):
        try:
            pixels = ds.pixel_array
        except Exception as e:  # compressed syntaxes need optional decoders; truncated data
            raise DataError(
                f"{path}: pixel data not decodable ({type(e).__name__}: {e}); expected uncompressed or decodable pixels (compressed ones may need pylibjpeg or gdcm)"
            ) from e
        if pixels.shape != out.shape[1:]:
            raise DataError(f"{path}: pixel array is {pixels.shape}; expected {out.shape[1:]}")
        out[k] = apply_modality_lut(pixels, ds)
    n_bad = int(np.count_nonzero(~np.isfinite(out)))
    if n_bad:
        raise DataError(
            f"{folder}: {n_bad} voxels are NaN or infinite; expected finite intensities"
        )
    return out
