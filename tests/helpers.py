"""Small NIfTI volumes and tables with known content, written for real through nibabel.

Import the fixture in a conftest (`from tests.helpers import cohort`) or a test module."""

import numpy as np
import pandas as pd
import pytest

from jaxsyn.data.volumes import Volume, diagonal_affine, save_nifti


def coded_volume(i: int, size: int) -> np.ndarray:
    """int-valued HU whose every voxel tells its patient and position: 100 i + d + 3 h - 2 w."""
    d, h, w = np.meshgrid(*(np.arange(size),) * 3, indexing="ij")
    return (100 * i + d + 3 * h - 2 * w - 500).astype(np.float32)


@pytest.fixture
def cohort(tmp_path):
    """4 volumes already S³ = 32³ at 1 mm (ingest copies them exactly) and their table."""
    images = tmp_path / "images"
    for i in range(4):
        hu = coded_volume(i, 32)
        save_nifti(
            images / f"P{i}.nii.gz", Volume(hu=hu, affine=diagonal_affine((1, 1, 1), hu.shape))
        )
    table = pd.DataFrame(
        {
            "patient_id": [f"P{i}" for i in range(4)],
            "bmi_class": [0, 1, 2, 3],
            "age": [50.5, 61.0, 70.25, 44.0],
            "site": ["A", "B", "A", "C"],
        }
    )
    table.to_csv(tmp_path / "table.csv", index=False)
    return images, tmp_path / "table.csv"
