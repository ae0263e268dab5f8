"""The chest-CT phantom and its clinical table: schema, the documented generative story, and an
image whose ground truth (fat volume with BMI, organ sides, HU ranges) is recovered from the voxels.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from jaxsyn.data.phantoms.ct import (
    COLUMNS,
    FOV_MM,
    bmi_class,
    clinical_table,
    ct_volume,
    image_seed,
    write_cohort,
)
from jaxsyn.data.volumes import load_volume
from jaxsyn.errors import ConfigError

BASE = dict(height_cm=170.0, sex_male=1, age=60, copd=0, diabetes_t2=0, cardiovascular_disease=0)
MISSING = {"systolic_bp", "pack_years"}  # the only columns the story gives missing values


def row_with_bmi(bmi: float, **extra) -> dict:
    return {**BASE, "weight_kg": bmi * 1.7**2, "bmi": bmi, **extra}


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return clinical_table(2000, seed=7)


def test_table_schema(cohort):
    assert list(cohort.columns) == ["patient_id", *COLUMNS]
    kinds = pd.Series(COLUMNS).value_counts().to_dict()
    assert kinds == {"categorical": 7, "binary": 9, "integer": 2, "float": 4}
    for col, kind in COLUMNS.items():
        values = cohort[col].dropna()
        if kind == "binary":
            assert pd.api.types.is_integer_dtype(cohort[col]), col
            assert set(values.unique()) == {0, 1}, col
        elif kind == "integer":
            assert pd.api.types.is_integer_dtype(cohort[col]), col
        elif kind == "float":
            assert pd.api.types.is_float_dtype(cohort[col]), col
        else:
            assert 2 <= values.nunique() <= 6, col
    assert cohort["age"].between(30, 90).all()
    assert set(cohort["bmi_class"]) == {0, 1, 2, 3}
    assert set(cohort["disease_stage"]) == {"I", "II", "III", "IV"}


def test_patient_ids_unique_and_ordered(cohort):
    assert cohort["patient_id"].is_unique
    assert list(cohort["patient_id"][:3]) == ["P00000", "P00001", "P00002"]


def test_bmi_consistent_with_weight_height_and_class(cohort):
    bmi = cohort["weight_kg"] / (cohort["height_cm"] / 100) ** 2
    assert np.abs(bmi - cohort["bmi"]).max() <= 0.01
    expected = np.select(
        [cohort["bmi"] <= 18.5, cohort["bmi"] <= 25, cohort["bmi"] <= 30], [0, 1, 2], 3
    )
    np.testing.assert_array_equal(cohort["bmi_class"], expected)
    edges = bmi_class([18.5, 18.51, 25.0, 25.01, 30.0, 30.01])
    np.testing.assert_array_equal(edges, [0, 1, 1, 2, 2, 3])


def test_missing_values_only_where_documented(cohort):
    n_missing = cohort.isna().sum()
    assert set(n_missing[n_missing > 0].index) == MISSING
    assert 0.015 < cohort["systolic_bp"].isna().mean() < 0.05  # documented 3%
    smokers = cohort["smoking_status"] != "never"
    assert not cohort.loc[~smokers, "pack_years"].isna().any()
    assert (cohort.loc[~smokers, "pack_years"] == 0).all()
    assert 0.005 < cohort.loc[smokers, "pack_years"].isna().mean() < 0.04  # documented 2%
    assert (cohort.loc[smokers, "pack_years"].dropna() > 0).mean() > 0.9


def test_dependencies_are_recovered(cohort):
    by_class = cohort.groupby("bmi_class")
    assert by_class["hypertension"].mean()[3] > by_class["hypertension"].mean()[0] + 0.2
    assert by_class["diabetes_t2"].mean()[3] > by_class["diabetes_t2"].mean()[1]
    old, young = cohort["age"] >= 70, cohort["age"] < 55
    assert cohort.loc[old, "hypertension"].mean() > cohort.loc[young, "hypertension"].mean()
    copd_by_smoking = cohort.groupby("smoking_status")["copd"].mean()
    assert copd_by_smoking["current"] > copd_by_smoking["never"]
    resp = cohort.groupby("treatment_arm")["responder"].mean()
    assert resp["A"] > resp["placebo"] + 0.1
    assert cohort.groupby("disease_stage")["responder"].mean().is_monotonic_decreasing
    home = cohort["region"] == cohort["site"].map({"S01": "north", "S02": "north"})
    assert home[cohort["site"].isin(["S01", "S02"])].mean() > 0.85
    assert cohort["site"].value_counts()["S01"] > 2 * cohort["site"].value_counts()["S06"]


def test_treatment_arm_independent_of_everything(cohort):
    for col in ("bmi_class", "sex_male", "smoking_status", "site"):
        table = pd.crosstab(cohort["treatment_arm"], cohort[col])
        assert stats.chi2_contingency(table).pvalue > 0.001, col
    means = cohort.groupby("treatment_arm")["bmi"].mean()
    assert means.max() - means.min() < 1.0


def test_table_deterministic_in_seed():
    pd.testing.assert_frame_equal(clinical_table(50, 3), clinical_table(50, 3))
    assert not clinical_table(50, 3).equals(clinical_table(50, 4))


@pytest.mark.parametrize("size", [16, 24, 32])
def test_volume_shape_dtype_and_hu_range(size):
    hu, truth = ct_volume(row_with_bmi(27.0), size, seed=0)
    assert hu.shape == (size, size, size) and hu.dtype == np.float32
    assert hu.min() >= -1100 and hu.max() <= 1500
    assert abs(hu[:2, :2, :2].mean() + 1000) < 40  # the corner is air
    assert truth["spacing_mm"] == FOV_MM / size
    assert all(isinstance(v, float) for v in truth.values())
    assert 0 < truth["lung_ml"] < truth["body_ml"] < (FOV_MM / 10) ** 3


def test_volume_deterministic_in_seed():
    row = row_with_bmi(31.0)
    a, ta = ct_volume(row, 32, seed=5)
    b, tb = ct_volume(row, 32, seed=5)
    np.testing.assert_array_equal(a, b)
    assert ta == tb
    assert not np.array_equal(a, ct_volume(row, 32, seed=6)[0])


def test_fat_grows_with_bmi_in_truth_and_image():
    bmis = [17.0, 23.0, 28.0, 36.0]
    truths, fat_voxels = [], []
    for bmi in bmis:
        hu, truth = ct_volume(row_with_bmi(bmi), 32, seed=1)
        truths.append(truth)
        fat_voxels.append(int(((hu >= -150) & (hu <= -50)).sum()))
    for key in ("fat_ml", "subcutaneous_fat_ml", "visceral_fat_ml", "body_ml"):
        values = [t[key] for t in truths]
        assert np.all(np.diff(values) > 0), (key, values)
    assert np.all(np.diff(fat_voxels) > 0), fat_voxels
    # The image's fat voxels measure the label-map fat volume (noise keeps ~99.9% in the window).
    voxel_ml = (FOV_MM / 32) ** 3 / 1000
    np.testing.assert_allclose(np.array(fat_voxels) * voxel_ml, [t["fat_ml"] for t in truths], 0.05)


def test_heart_left_liver_right():
    size = 32
    hu, truth = ct_volume(row_with_bmi(25.0), size, seed=2)
    assert truth["heart_x_mm"] < -10 and truth["liver_x_mm"] > 10
    # W runs from the patient's left to right: the heart's soft tissue sits in the low-W half of
    # the mediastinum, in the slices from just above the diaphragm to mid-chest.
    c = (np.arange(size) + 0.5) * FOV_MM / size - FOV_MM / 2
    slab = hu[(c > 0) & (c < 50)][:, :, np.abs(c) < 90]
    soft = (slab > 0) & (slab < 100)
    x = c[np.abs(c) < 90]
    assert soft[..., x < 0].sum() > 1.3 * soft[..., x > 0].sum()


def test_row_changes_image_as_documented():
    lungs = [ct_volume(row_with_bmi(25.0, copd=k), 32, seed=3)[0] for k in (0, 1)]
    dark = [h[(h > -960) & (h < -750)].mean() for h in lungs]  # lung, neither air nor vessels
    assert dark[1] < dark[0] - 25  # emphysema: copd lowers lung density by ~45 HU
    liver = [ct_volume(row_with_bmi(b), 16, seed=3)[1]["liver_hu"] for b in (22.0, 35.0)]
    assert liver[1] < liver[0]


@pytest.mark.parametrize("size", [15, 257, 32.0, True])
def test_bad_size_rejected(size):
    with pytest.raises(ConfigError, match="size"):
        ct_volume(row_with_bmi(25.0), size, seed=0)


def test_row_without_bmi_rejected():
    with pytest.raises(ConfigError, match="bmi"):
        ct_volume(BASE, 16, seed=0)


def test_write_cohort_round_trip(tmp_path):
    table = write_cohort(tmp_path, n=3, size=16, seed=11, progress=False)
    files = sorted(p.name for p in tmp_path.glob("*.nii.gz"))
    assert files == [f"{pid}.nii.gz" for pid in table["patient_id"]]
    for i, row in enumerate(table.to_dict("records")):
        vol = load_volume(tmp_path / files[i])
        assert vol.shape == (16, 16, 16)
        np.testing.assert_allclose(vol.spacing, (25.0, 25.0, 25.0))
        hu, _ = ct_volume(row, 16, image_seed(11, i))
        np.testing.assert_allclose(vol.hu, np.rint(hu), atol=1.0)
    back = pd.read_csv(tmp_path / "table.csv", dtype={"patient_id": str})
    back["pack_years"] = back["pack_years"].astype("Int64")
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    truth = pd.read_csv(tmp_path / "truth.csv")
    assert list(truth["patient_id"]) == list(table["patient_id"])
    assert (truth["fat_ml"] > 0).all() and (truth["lung_ml"] > 0).all()
