"""Labelled image loading for DUIIT: folders of images, NIfTI volumes cut into slices, phantoms,
splits by patient, and the errors a user can fix."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from jaxsyn.data.labelled import LabelledImages, load_labelled, split_by_patient
from jaxsyn.data.volume import Volume
from jaxsyn.data.volumes import diagonal_affine, save_nifti
from jaxsyn.errors import ConfigError, DataError


def write_pngs(folder, pixels, table):
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in zip(table["image_id"], pixels, strict=True):
        Image.fromarray(np.full((20, 20), value, np.uint8)).save(folder / f"{name}.png")
    table.to_csv(folder / "labels.csv", index=False)


def test_folder_of_pngs_scaled_to_minus_one_one(tmp_path):
    table = pd.DataFrame({"image_id": ["a", "b", "c"], "patient_id": ["p1", "p1", "p2"],
                          "age": [30.5, 31.0, 70.0]})  # fmt: skip
    write_pngs(tmp_path, [0, 255, 51], table)
    ds = load_labelled(str(tmp_path), "age", size=16, seed=0)
    assert ds.images.shape == (3, 16, 16, 1) and ds.images.dtype == np.float32
    np.testing.assert_allclose(ds.images[:, 8, 8, 0], [-1.0, 1.0, 51 / 255 * 2 - 1], atol=1e-6)
    np.testing.assert_array_equal(ds.labels, np.float32([30.5, 31.0, 70.0]))
    assert ds.image_ids == ["a", "b", "c"] and ds.patient_ids == ["p1", "p1", "p2"]
    assert ds.source == str(tmp_path)
    unlabelled = load_labelled(str(tmp_path), None, size=16, seed=0)
    assert unlabelled.labels is None and len(unlabelled) == 3


def test_without_patient_column_each_image_is_a_patient(tmp_path):
    write_pngs(tmp_path, [10, 20], pd.DataFrame({"image_id": ["x", "y"], "age": [1, 2]}))
    assert load_labelled(str(tmp_path), "age", 16, 0).patient_ids == ["x", "y"]


def test_nifti_volumes_cut_into_axial_slices(tmp_path):
    hu = np.full((10, 24, 24), -1000.0, np.float32)  # [D (inferior -> superior), H, W]
    hu[2:8, 4:20, 4:20] = 40.0  # the head fills slices 2..7
    hu[2:8, 4, 4:20] = 1000.0  # a bright row at the posterior edge of the head (low y)
    for stem in ("pat1", "pat2"):
        save_nifti(
            tmp_path / f"{stem}.nii.gz", Volume(hu=hu, affine=diagonal_affine((1, 1, 1), hu.shape))
        )
    pd.DataFrame({"patient_id": ["pat1", "pat2"], "age": [44, 81]}).to_csv(
        tmp_path / "labels.csv", index=False
    )
    ds = load_labelled(str(tmp_path), "age", size=24, seed=0, window=(-1000.0, 1000.0))
    assert len(ds) == 12  # 6 slices with content per volume, blank ones dropped
    assert ds.image_ids[:2] == ["pat1_z002", "pat1_z003"]
    assert ds.patient_ids == ["pat1"] * 6 + ["pat2"] * 6
    np.testing.assert_array_equal(ds.labels, np.float32([44] * 6 + [81] * 6))
    np.testing.assert_allclose(ds.images[0, 12, 12, 0], 0.04, atol=1e-5)  # 40 HU in -1000..1000
    assert ds.images[0, 19, 12, 0] > 0.9  # posterior row shown at the bottom (radiological)
    assert ds.images[0, 4, 12, 0] < 0.1


def test_phantom_specs_in_memory():
    ds = load_labelled("phantom:head-pet:5", "age", size=32, seed=1)
    assert ds.images.shape == (5, 32, 32, 1) and -1 <= ds.images.min() < ds.images.max() <= 1
    assert ds.patient_ids == [f"pet-{i:05d}" for i in range(5)]
    assert ((ds.labels >= 20) & (ds.labels <= 90)).all()
    again = load_labelled("phantom:head-pet:5", "age", size=32, seed=1)
    np.testing.assert_array_equal(ds.images, again.images)
    with pytest.raises(ConfigError, match="phantom:head-ct\\|head-mri\\|head-pet:N"):
        load_labelled("phantom:head-xray:5", "age", 32, 0)
    with pytest.raises(ConfigError, match="N >= 1"):
        load_labelled("phantom:head-ct:zero", "age", 32, 0)


def make(patients):
    n = len(patients)
    return LabelledImages(np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1),
                          np.arange(n, dtype=np.float32), [f"i{k}" for k in range(n)],
                          list(patients), "test")  # fmt: skip


def test_split_by_patient_never_splits_a_patient():
    rng = np.random.default_rng(0)
    patients = [f"p{k}" for k in rng.integers(0, 20, 200)]
    ds = make(patients)
    for seed in range(5):
        train, test = split_by_patient(ds, 0.25, seed)
        assert not set(train.patient_ids) & set(test.patient_ids)
        assert len(train) + len(test) == 200
        assert len(set(test.patient_ids)) == round(0.25 * len(set(patients)))
        assert sorted(train.image_ids + test.image_ids) == sorted(ds.image_ids)
        k = int(test.image_ids[0][1:])  # arrays follow their ids
        assert test.images[0, 0, 0, 0] == k and test.labels[0] == k
    a, b = split_by_patient(ds, 0.25, 1), split_by_patient(ds, 0.25, 1)
    assert a[1].image_ids == b[1].image_ids
    assert split_by_patient(ds, 0.25, 2)[1].patient_ids != a[1].patient_ids
    with pytest.raises(ConfigError, match="fraction is 1.0"):
        split_by_patient(ds, 1.0, 0)
    with pytest.raises(DataError, match="at least 2"):
        split_by_patient(make(["only"] * 3), 0.5, 0)


def test_errors_name_the_file_and_the_column(tmp_path):
    write_pngs(tmp_path, [1, 2], pd.DataFrame({"image_id": ["a", "b"], "years": [1, 2]}))
    with pytest.raises(
        DataError, match=r"labels.csv: no label column 'age'; columns present: image_id, years"
    ):
        load_labelled(str(tmp_path), "age", 16, 0)
    (tmp_path / "b.png").unlink()
    with pytest.raises(DataError, match=r"image 'b' has no file .*b\.png"):
        load_labelled(str(tmp_path), "years", 16, 0)
    with pytest.raises(DataError, match="no such folder"):
        load_labelled(str(tmp_path / "nowhere"), "age", 16, 0)
    write_pngs(tmp_path / "t", [1], pd.DataFrame({"image_id": ["a"], "age": ["old"]}))
    with pytest.raises(DataError, match="'age' is not a finite number for \\['a'\\]"):
        load_labelled(str(tmp_path / "t"), "age", 16, 0)
