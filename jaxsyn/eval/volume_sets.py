"""Volumes for evaluation: a folder of NIfTI files or a store, put on one isotropic grid.

    real, synthetic = VolumeSet("data/ct"), VolumeSet("generated/ct")   # folders or stores
    grid = common_grid(real, synthetic)          # Grid(spacing=1.92, size=128)
    for hu in on_grid(real, grid): ...           # HU cubes [128, 128, 128], one at a time

Scans come with their own voxel sizes (0.96 x 0.96 x 1.5 mm, say) and a generator writes
isotropic cubes; slices compared voxel for voxel are only comparable once both sit on the same
physical grid, so every volume is resampled to one isotropic spacing and centred in one cube.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from jaxsyn.data.volume import Volume
from jaxsyn.data.volumes import NIFTI_SUFFIXES, fit_cube, load_volume, volume_stem
from jaxsyn.errors import ConfigError, DataError


class VolumeSet:
    """The volumes of a folder of .nii/.nii.gz files or of a store made by `jaxsyn ingest`
    (`--real STORE`), read one at a time as `Volume`s (HU and voxel spacing)."""

    def __init__(self, path: str | os.PathLike):
        from jaxsyn.data.store import VolumeStore

        self.path = Path(path)
        self.store = VolumeStore(self.path) if is_store(self.path) else None
        if self.store is not None:
            self.ids = self.store.ids
            if not self.ids:
                raise DataError(f"{self.path}: the store holds no volumes")
        else:
            self.paths = _paths(self.path)
            self.ids = [volume_stem(p) for p in self.paths]

    def __len__(self) -> int:
        return len(self.ids)

    def volume(self, i: int) -> Volume:
        if self.store is None:
            return load_volume(self.paths[i])
        record = self.store.manifest["volumes"][i]
        hu = self.store.read(i).astype(np.float32)
        return Volume(hu=hu, affine=np.asarray(record["affine"], np.float64), source=record["id"])

    def patient_ids(self) -> list[str]:
        """The ids a table names the volumes by (a store's patient ids; a folder's file ids)."""
        if self.store is None:
            return self.ids
        return [r["patient_id"] for r in self.store.manifest["volumes"]]


def is_store(path: str | os.PathLike) -> bool:
    """Whether `path` is a store made by `jaxsyn ingest` (manifest.json and volumes/)."""
    path = Path(path)
    return (path / "manifest.json").is_file() and (path / "volumes").is_dir()


@dataclasses.dataclass(frozen=True)
class Grid:
    """The isotropic grid every volume is compared on: `spacing` mm voxels in a `size`³ cube.
    `fit` resamples a volume to that spacing (keeping its physical centre) and centres it in the
    cube, cropping or padding with air (`jaxsyn.data.volumes.fit_cube`), so a 0.96 x 0.96 x 1.5
    mm scan and a generator's isotropic cube are compared voxel for voxel at the same scale."""

    spacing: float
    size: int

    def fit(self, volume: Volume) -> np.ndarray:
        """HU [size, size, size] of `volume` on this grid."""
        same = np.allclose(volume.spacing, self.spacing, rtol=1e-4)
        if same and volume.shape == (self.size,) * 3:
            return np.asarray(volume.hu, np.float32)  # already on the grid: no interpolation
        return np.asarray(fit_cube(volume, self.size, self.spacing).hu, np.float32)

    def describe(self) -> str:
        return (
            f"Every volume (real, synthetic, holdout) was resampled to {self.spacing:.4g} mm "
            f"isotropic voxels (linear interpolation, Gaussian anti-aliasing when downsampling) and "
            f"centred in a {self.size}³ cube, cropped or padded with air, before any comparison: "
            "the coarsest voxel side and the largest field of view of the first real and first "
            "synthetic volume."
        )


def common_grid(*sets: VolumeSet, spacing: float | None = None) -> Grid:
    """The grid of the first volume of each set: the coarsest voxel side among them (or
    `spacing` mm; no set is upsampled beyond what its coarsest axis resolves) and a cube that
    holds the largest field of view among them."""
    firsts = [s.volume(0) for s in sets]
    if spacing is None:
        spacing = max(max(v.spacing) for v in firsts)
    if not spacing > 0:
        raise ConfigError(f"grid spacing {spacing} mm; expected > 0")
    extent = max(float(np.max(np.asarray(v.shape) * np.asarray(v.spacing))) for v in firsts)
    return Grid(spacing=float(spacing), size=max(1, int(round(extent / spacing))))


def on_grid(volumes: VolumeSet, grid: Grid):
    """The set's volumes as HU cubes on `grid`, one at a time (a generator)."""
    return (grid.fit(volumes.volume(i)) for i in range(len(volumes)))


def _paths(folder) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; expected NIfTI volumes or a jaxsyn store")
    paths = sorted(p for p in folder.iterdir() if p.name.endswith(NIFTI_SUFFIXES))
    if not paths:
        raise DataError(f"{folder}: no .nii/.nii.gz volumes")
    return paths
