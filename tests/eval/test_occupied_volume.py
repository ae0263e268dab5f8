"""MMCGAN's occupied-volume conditioning measure (issue 17.6): the total volume of -150..300 HU
matter in ml, on phantoms of known geometry and spacing, and against BMI in `jaxsyn report`."""

import numpy as np
import pandas as pd
import pytest

from jaxsyn.data.phantoms import ct
from jaxsyn.data.volume import Volume
from jaxsyn.data.volumes import diagonal_affine, load_volume, save_nifti
from jaxsyn.eval import mmcgan


def box_phantom():
    """Air with a 10 x 20 x 10 box of 0 HU, the range's two edges (included) and a voxel just
    outside each (excluded): 2002 voxels of occupied matter."""
    hu = np.full((40, 30, 20), -1000.0, np.float32)
    hu[5:15, 5:25, 2:12] = 0.0
    hu[30, 0, 0], hu[30, 0, 1] = -150.0, 300.0
    hu[30, 0, 2], hu[30, 0, 3] = -151.0, 301.0  # integers: NIfTI stores int16 HU
    hu[31, 0, 0] = 500.0  # bone
    return hu


def test_occupied_volume_of_a_box_in_ml(tmp_path):
    hu = box_phantom()
    spacing = (1.5, 0.8, 2.0)  # mm along D, H, W: 2.4 mm^3 a voxel
    assert mmcgan.occupied_volume_ml(hu, spacing) == pytest.approx(2002 * 2.4 / 1000, rel=1e-12)
    # through a NIfTI file: the spacing comes from its header
    affine = diagonal_affine(spacing, hu.shape)
    save_nifti(tmp_path / "box.nii.gz", Volume(hu=hu, affine=affine))
    volume = load_volume(tmp_path / "box.nii.gz")
    assert volume.spacing == pytest.approx(spacing)
    assert mmcgan.occupied_volume_ml(volume.hu, volume.spacing) == pytest.approx(4.8048)


def test_occupied_volume_against_bmi_by_hand():
    df = pd.DataFrame({"bmi": [18.0, 22.0, 27.0, 31.0], "occupied_ml": [900.0, 1000, 1200, 1250]})
    got = mmcgan.occupied_volume(df)
    assert got["pearson_r"] == pytest.approx(np.corrcoef(df.bmi, df.occupied_ml)[0, 1])
    assert got["spearman_rho"] == pytest.approx(1.0)
    slope = ((df.bmi - df.bmi.mean()) * (df.occupied_ml - df.occupied_ml.mean())).sum() / (
        (df.bmi - df.bmi.mean()) ** 2
    ).sum()
    assert got["slope_ml_per_bmi"] == pytest.approx(slope) and got["n"] == 4
    assert np.isnan(mmcgan.occupied_volume(df.iloc[:2])["pearson_r"])


def test_ct_phantoms_occupied_volume_grows_with_bmi():
    """The CT phantom's subcutaneous fat grows with BMI, so its occupied volume does (the
    paper's correlation); its label map's ml bound the measure: the occupied matter lies inside
    the body and holds at least the soft tissue and fat labels."""
    table = ct.clinical_table(8, seed=0)
    ml, body = [], []
    for i, row in enumerate(table.to_dict("records")):
        hu, truth = ct.ct_volume(row, 32, ct.image_seed(0, i))
        ml.append(mmcgan.occupied_volume_ml(hu, (truth["spacing_mm"],) * 3))
        body.append((truth["body_ml"], truth["fat_ml"] + truth["heart_ml"] + truth["liver_ml"]))
    got = mmcgan.occupied_volume(pd.DataFrame({"bmi": table.bmi, "occupied_ml": ml}))
    assert got["pearson_r"] > 0.5 and got["slope_ml_per_bmi"] > 0
    for m, (whole, inner) in zip(ml, body, strict=True):
        assert 0.97 * inner < m < whole
