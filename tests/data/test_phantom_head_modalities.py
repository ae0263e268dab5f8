"""The multimodal head phantom: age drives atrophy and PET uptake as documented, each modality has
its stated contrast, cohorts are deterministic and modalities never share a patient."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage

from jaxsyn.cli import main
from jaxsyn.data.labelled import load_labelled
from jaxsyn.data.phantoms import head
from jaxsyn.errors import ConfigError

SIZE = 96
SEED = 1234  # one patient's anatomy, rendered at several ages


def at_age(age, modality="ct", level=0.0):
    tissue, truth = head.tissues(age, SIZE, SEED, level)
    return tissue, truth, head.render(tissue, modality, age, SEED)


def test_ventricles_grow_sulci_widen_cortex_thins_with_age():
    young, old = at_age(25)[:2], at_age(85)[:2]
    (t_young, truth_young), (t_old, truth_old) = young, old
    # ventricle area ~ width x length: (1 + 0.016 t)(1 + 0.005 t) of the 20-year-old's
    ratio = truth_old["ventricle_area"] / truth_young["ventricle_area"]
    expected = (1 + 0.016 * 65) * (1 + 0.005 * 65) / ((1 + 0.016 * 5) * (1 + 0.005 * 5))
    assert abs(ratio / expected - 1) < 0.1, (ratio, expected)
    assert truth_old["sulcal_fraction"] > 2.5 * truth_young["sulcal_fraction"]
    grey = [(t == head.GREY).sum() for t in (t_young, t_old)]
    white = [(t == head.WHITE).sum() for t in (t_young, t_old)]
    assert grey[1] < 0.8 * grey[0] and white[1] > white[0]  # thinner ribbon, larger core
    csf = [(t == head.CSF).sum() for t in (t_young, t_old)]
    assert csf[1] > 1.8 * csf[0]
    # the documented functions at the two ends of the age range
    e20, e90 = head.effects(20), head.effects(90)
    assert e90["ventricle_width"] / e20["ventricle_width"] == pytest.approx(2.12)
    assert e90["cortex_depth"] == pytest.approx(0.174)
    assert e90["grey_uptake"] == pytest.approx(0.65)


def test_ventricle_area_grows_across_a_cohort():
    _, table = head.cohort("ct", 40, 64, seed=0)
    rho = np.corrcoef(table["age"], table["ventricle_area"])[0, 1]
    assert rho > 0.9


def test_pet_uptake_falls_with_age():
    tissue, _, young = at_age(25, "pet")
    old = head.render(tissue, "pet", 85, SEED)  # same anatomy, older uptake
    brain = (tissue == head.GREY) | (tissue == head.WHITE)
    ratio = old[brain].mean() / young[brain].mean()
    assert 0.6 < ratio < 0.8  # grey 1 - 0.005 t: 0.675 / 0.975 = 0.69
    images, table = head.cohort("pet", 30, 64, seed=0)
    centre = images[:, 16:48, 16:48].mean((1, 2))
    assert np.corrcoef(table["age"], centre)[0, 1] < -0.6


def tissue_means(modality, size=256):
    """Mean pixel of each tissue away from its borders (eroded by a pixel), where blur mixes."""
    tissue, _ = head.tissues(50, size, SEED)
    image = head.render(tissue, modality, 50, SEED).astype(float)
    return {k: float(image[ndimage.binary_erosion(tissue == k)].mean()) for k in range(7)}


def test_modalities_differ_in_contrast_as_stated():
    ct, mri, pet = (tissue_means(m) for m in head.MODALITIES)
    # CT: skull white, fat and air black, grey brighter than white matter, CSF darkest in brain
    assert ct[head.SKULL] > 240 and ct[head.FAT] < 5 and ct[head.AIR] < 5
    assert ct[head.GREY] > ct[head.WHITE] > ct[head.CSF]
    # T1 MRI: white over grey over CSF, skull dark, fat bright
    assert mri[head.WHITE] > mri[head.GREY] + 40 > mri[head.CSF] + 80
    assert mri[head.SKULL] < 40 and mri[head.FAT] > 200
    # PET: grey matter high uptake, CSF and skull low (blur spreads some uptake into them)
    assert pet[head.GREY] > pet[head.WHITE] > pet[head.CSF] and pet[head.GREY] > 2 * pet[head.SKULL]
    # PET is blurred: its power at wavelengths of 4-16 px relative to that above 32 px is tiny
    # (measured: CT 0.17, MRI 0.17, PET 0.0015 at 256 px)
    sharpness = {m: band_ratio(m) for m in head.MODALITIES}
    assert sharpness["pet"] < 0.05 * min(sharpness["ct"], sharpness["mri"])


def band_ratio(modality, size=256):
    tissue, _ = head.tissues(50, size, SEED)
    image = head.render(tissue, modality, 50, SEED).astype(float)
    power = np.abs(np.fft.fft2(image - image.mean())) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    f = np.hypot(fx, fy)
    return power[(f > 1 / 16) & (f < 1 / 4)].sum() / power[(f > 0) & (f < 1 / 32)].sum()


def test_deterministic_and_different_patients_per_modality():
    a, ta = head.cohort("mri", 6, 48, seed=3)
    b, tb = head.cohort("mri", 6, 48, seed=3)
    np.testing.assert_array_equal(a, b)
    pd.testing.assert_frame_equal(ta, tb)
    assert not np.array_equal(a, head.cohort("mri", 6, 48, seed=4)[0])
    ages = {m: head.labels(m, 50, seed=3)["age"].to_numpy() for m in head.MODALITIES}
    for m in ("mri", "pet"):
        assert np.mean(ages["ct"] == ages[m]) < 0.1  # independent draws, not the same patients
    geometry = {m: head.cohort(m, 4, 48, seed=3)[1]["skull_a"].to_numpy() for m in head.MODALITIES}
    assert not np.allclose(geometry["ct"], geometry["mri"])
    ids = [set(head.labels(m, 5, 3)["patient_id"]) for m in head.MODALITIES]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2])
    with pytest.raises(ConfigError, match="modality is 'xray'"):
        head.labels("xray", 3, 0)


def test_several_slices_share_a_patient():
    images, table = head.cohort("ct", 3, 48, seed=0, slices=3)
    assert len(table) == 9 and table["patient_id"].nunique() == 3
    assert table.groupby("patient_id")["age"].nunique().eq(1).all()
    assert table["image_id"].is_unique
    central = table["level"] == 0.0
    assert (table.loc[central, "ventricle_area"].to_numpy() > 0).all()


def test_cli_writes_the_loader_layout(tmp_path):
    out = tmp_path / "pet"
    argv = ["phantom", "head", "--modality", "pet", "--n", "4", "--size", "32", "--seed", "5"]
    assert main([*argv, "--out", str(out)]) == 0
    labels = pd.read_csv(out / "labels.csv")
    assert list(labels.columns) == ["image_id", "patient_id", "age"]
    pd.testing.assert_frame_equal(labels, head.labels("pet", 4, seed=5))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["modality"] == "pet" and "pet-00000.png" in manifest["files"]
    png = np.asarray(Image.open(out / "pet-00002.png"))
    np.testing.assert_array_equal(png, head.cohort("pet", 4, 32, seed=5)[0][2])
    ds = load_labelled(str(out), "age", size=32, seed=0)
    np.testing.assert_allclose(ds.labels, labels["age"], rtol=1e-6)
    np.testing.assert_allclose(ds.images[2, ..., 0], png / 255.0 * 2 - 1, atol=1e-6)
    assert main(["phantom", "cxr", "--modality", "mri", "--n", "1", "--out", str(out)]) != 0
