"""Volume I/O: NIfTI (and DICOM series) into one canonical layout, resampling, cube fitting, windows.

Layout: `jaxsyn.data.volume.Volume` (Hounsfield units `hu[D, H, W]` in RAS+ canonical order and
the NIfTI affine), so `save_nifti` writes back exactly what `load_volume` read.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from jaxsyn.data.volume import Volume  # the record (re-exported: jaxsyn.data.volumes.Volume)
from jaxsyn.errors import DataError
from jaxsyn.files import atomic_path

AIR_HU = -1024.0  # fill value for padding: air, as HA-GAN pads with the window's lower bound
NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_volume_path(path: Path) -> bool:
    return path.name.endswith(NIFTI_SUFFIXES) or (path.is_dir() and any(path.glob("*.dcm")))


def volume_stem(path: Path) -> str:
    """The file name without .nii/.nii.gz (a DICOM folder's name as is)."""
    name = path.name
    for suffix in sorted(NIFTI_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def load_volume(path: str | os.PathLike) -> Volume:
    """Read a NIfTI file or a DICOM series folder into RAS+ canonical `Volume` (float32 HU)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_dir():
        from jaxsyn.data.dicom import load_dicom_series  # pydicom is optional

        return load_dicom_series(path)
    if not path.name.endswith(NIFTI_SUFFIXES):
        raise DataError(f"{path}: unknown volume format; expected .nii, .nii.gz or a DICOM folder")
    return load_nifti(path)


def load_nifti(path: str | os.PathLike) -> Volume:
    path = Path(path)
    try:
        img = nib.load(path)
    except Exception as e:  # nibabel raises many types for a damaged header
        raise DataError(f"{path}: not a readable NIfTI file ({type(e).__name__}: {e})") from e
    shape = tuple(img.shape)
    if len(shape) == 4 and shape[3] == 1:  # a 3D image saved with a singleton time axis
        img = img.slicer[..., 0]
    elif len(shape) != 3:
        raise DataError(f"{path}: image has shape {shape}; expected a 3D volume")
    zooms = _raw_pixdim(path, img)
    if not np.all(np.isfinite(zooms)) or np.any(zooms <= 0):
        raise DataError(
            f"{path}: field pixdim (voxel spacing) is {zooms.tolist()}; expected > 0 mm"
        )
    if abs(np.linalg.det(img.affine[:3, :3])) < 1e-12:
        raise DataError(f"{path}: field affine is singular; expected an invertible voxel-to-mm map")
    img = nib.as_closest_canonical(img)
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as e:  # truncated or corrupt voxel data
        raise DataError(f"{path}: voxel data unreadable ({type(e).__name__}: {e})") from e
    n_bad = int(np.count_nonzero(~np.isfinite(data)))
    if n_bad:
        raise DataError(f"{path}: {n_bad} voxels are NaN or infinite; expected finite intensities")
    return Volume(
        hu=np.ascontiguousarray(data.transpose(2, 1, 0)), affine=img.affine, source=str(path)
    )


def _raw_pixdim(path: Path, img) -> np.ndarray:
    """pixdim[1:4] as written: nibabel's load silently turns 0 into 1 and negatives positive."""
    with nib.openers.ImageOpener(path) as f:
        header = type(img.header).from_fileobj(f, check=False)
    return np.asarray(header["pixdim"][1:4], dtype=np.float64)


def save_nifti(path: str | os.PathLike, volume: Volume, dtype=np.int16) -> Path:
    """Write `volume` as NIfTI (atomically), rounding to int16 HU by default."""
    path = Path(path)
    data = np.asarray(volume.hu).transpose(2, 1, 0)
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        data = np.clip(np.rint(data), info.min, info.max)
    img = nib.Nifti1Image(data.astype(dtype), volume.affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(volume.affine, code=1)
    img.set_sform(volume.affine, code=1)
    suffix = ".nii.gz" if path.name.endswith(".gz") else ".nii"
    with atomic_path(path, suffix=suffix) as tmp:
        nib.save(img, tmp)
    return path


def diagonal_affine(spacing_dhw, shape_dhw) -> np.ndarray:
    """An axis-aligned RAS+ affine with the volume centred on the origin."""
    zooms = np.asarray(spacing_dhw, dtype=np.float64)[::-1]
    shape = np.asarray(shape_dhw, dtype=np.float64)[::-1]
    affine = np.diag([*zooms, 1.0])
    affine[:3, 3] = -zooms * (shape - 1) / 2
    return affine


def resample(volume: Volume, spacing: float | tuple[float, float, float], order: int = 1) -> Volume:
    """Resample to `spacing` mm (per D, H, W axis), keeping the physical centre.

    Downsampling first smooths with a Gaussian (sigma = (factor - 1) / 2 voxels, as skimage's
    anti-aliased resize) so thin bright structures do not alias.
    """
    new = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))
    if np.any(new <= 0):
        raise DataError(f"{volume.source}: target spacing {new.tolist()} mm; expected > 0")
    old = np.asarray(volume.spacing)
    factor = new / old  # > 1: fewer voxels
    out_shape = np.maximum(1, np.round(np.asarray(volume.shape) / factor)).astype(int)
    hu = volume.hu.astype(np.float32)
    sigma = np.maximum(0.0, (factor - 1) / 2)
    if np.any(sigma > 0):
        hu = ndimage.gaussian_filter(hu, sigma, mode="nearest")
    # Output voxel i samples input coordinate c_in + (i - c_out) * factor: centres stay aligned.
    c_in, c_out = (np.asarray(volume.shape) - 1) / 2, (out_shape - 1) / 2
    offset = c_in - c_out * factor
    hu = ndimage.affine_transform(
        hu, factor, offset=offset, output_shape=tuple(out_shape), order=order, mode="nearest"
    )
    scale = np.diag([*factor[::-1], 1.0])
    scale[:3, 3] = offset[::-1]
    return Volume(hu=hu, affine=volume.affine @ scale, source=volume.source)


def pad_or_crop(volume: Volume, size: int, fill: float = AIR_HU) -> Volume:
    """Centre the volume in a `size`³ cube: pad with `fill` (air) or crop symmetrically."""
    src, dst = [], []
    for n in volume.shape:
        lo = (size - n) // 2  # where source index 0 lands (negative: cropped)
        src.append(slice(max(0, -lo), max(0, -lo) + min(n, size)))
        dst.append(slice(max(0, lo), max(0, lo) + min(n, size)))
    out = np.full((size,) * 3, fill, dtype=volume.hu.dtype)
    out[tuple(dst)] = volume.hu[tuple(src)]
    start = np.array([s.start - d.start for s, d in zip(src, dst, strict=True)], dtype=np.float64)
    shift = np.eye(4)
    shift[:3, 3] = start[::-1]  # cube index i maps to source index i + start
    return Volume(hu=out, affine=volume.affine @ shift, source=volume.source)


def fit_cube(volume: Volume, size: int, spacing: float | None = None) -> Volume:
    """Resample and pad/crop into a `size`³ cube, as DESIGN.md's storage rule says.

    Without `spacing`, the whole volume is fitted isotropically: the longest physical side spans
    the cube and the rest is padded with air. With `spacing` (mm), the voxel size is fixed and the
    volume is centred, cropping what does not fit.
    """
    if spacing is None:
        extent = np.asarray(volume.shape) * np.asarray(volume.spacing)
        spacing = float(extent.max() / size)
    return pad_or_crop(resample(volume, spacing), size)


def window(hu, lo: float = -1024.0, hi: float = 600.0):
    """Map HU to [-1, 1], clipping outside [lo, hi] (HA-GAN's CT window by default).

    Works on numpy and jax arrays alike.
    """
    x = (hu - lo) * (2.0 / (hi - lo)) - 1.0
    return x.clip(-1.0, 1.0)


def unwindow(x, lo: float = -1024.0, hi: float = 600.0):
    """Inverse of `window` inside the window: [-1, 1] -> HU."""
    return (x + 1.0) * ((hi - lo) / 2.0) + lo
