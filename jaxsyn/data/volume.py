"""The `Volume` record that every volume reader returns (NIfTI in `volumes`, DICOM in `dicom`).

Layout. `hu[D, H, W]` holds Hounsfield units, the axes of nibabel's RAS+ canonical array reversed:
D runs inferior→superior (axial slices), H posterior→anterior, W left→right (the patient's).
`affine` maps the canonical (W, H, D) = (x, y, z) voxel index to RAS+ millimetres, as in the NIfTI
header.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Volume:
    hu: np.ndarray  # [D, H, W] float32 (or int16 once stored), Hounsfield units
    affine: np.ndarray  # [4, 4] canonical (x, y, z) voxel index -> RAS+ mm
    source: str = ""

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along (D, H, W)."""
        zooms = np.linalg.norm(self.affine[:3, :3], axis=0)  # along x, y, z
        return tuple(float(s) for s in zooms[::-1])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)
