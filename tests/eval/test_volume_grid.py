"""Spacing-aware volume evaluation (issue 22 items 3 and 5): volumes compared on one isotropic
grid, a store as --real, a NIfTI preview at its true proportions, and evaluation that says what
it skipped, names the user's inputs in its errors, warns at small sizes and leaves no partial
report behind."""

import json
import warnings

import numpy as np
import pytest

from jaxsyn.cli import main
from jaxsyn.data.preview import orthogonal_slices, volume_slices
from jaxsyn.data.volumes import Volume, diagonal_affine, resample, save_nifti
from jaxsyn.errors import DataError
from jaxsyn.eval import volumes
from jaxsyn.eval.evaluate import evaluate, kind_of
from jaxsyn.eval.report import Report
from jaxsyn.eval.volume_sets import VolumeSet, common_grid


def body(seed: int, size: int = 24, spacing: float = 4.0, noise: float = 20.0) -> Volume:
    """An isotropic HU cube: air around an ellipsoid of soft tissue with a fat rim, off centre
    along D so a squashed plane shows it in the wrong place."""
    rng = np.random.default_rng(seed)
    z, y, x = (np.mgrid[:size, :size, :size] - (size - 1) / 2) / (size / 2)
    r = (z - 0.2) ** 2 / 0.5 + y**2 / 0.6 + x**2 / 0.7
    hu = np.where(r < 1, -100.0, -1000.0)
    hu = np.where(r < 0.7, 40.0 + noise * rng.standard_normal(hu.shape), hu)
    return Volume(hu=hu.astype(np.float32), affine=diagonal_affine((spacing,) * 3, hu.shape))


def write(folder, vols):
    folder.mkdir(parents=True)
    for i, v in enumerate(vols):
        save_nifti(folder / f"P{i:03d}.nii.gz", v)
    return folder


def test_an_anisotropic_scan_is_compared_on_the_isotropic_grid(tmp_path):
    """The same bodies as 4 mm cubes and as 8 x 4 x 4 mm scans (half the slices) land on one
    8 mm grid and give nearly the same planes; compared plane by plane as read (the old way,
    the 12-slice scan's coronal and sagittal planes squashed and padded) they differ."""
    iso = [body(k) for k in range(3)]
    thick = [resample(v, (8.0, 4.0, 4.0)) for v in iso]
    assert thick[0].shape == (12, 24, 24)
    a, b = VolumeSet(write(tmp_path / "thick", thick)), VolumeSet(write(tmp_path / "iso", iso))
    grid = common_grid(a, b)
    assert (grid.spacing, grid.size) == (8.0, 12)  # the coarsest voxel, the 96 mm field of view
    p_thick, _ = volumes.read_set(a, grid)
    p_iso, _ = volumes.read_set(b, grid)
    assert p_thick.shape == p_iso.shape == (3, 3, 12, 12, 1)
    on_grid = np.abs(p_thick - p_iso).mean()
    as_read = np.abs(
        np.stack([volumes._planes_one(v.hu, 24) for v in thick])
        - np.stack([volumes._planes_one(v.hu, 24) for v in iso])
    ).mean()
    assert on_grid < 0.02 and as_read > 5 * on_grid, (on_grid, as_read)


def test_a_store_is_accepted_as_real(tmp_path):
    """`--real STORE` (what `jaxsyn ingest` made from the phantoms) against the phantoms' own
    files: the same volumes on the same grid, so FID is about 0; labels from the store's
    table."""
    from jaxsyn.data.phantoms import ct
    from jaxsyn.data.store import ingest

    ct.write_cohort(tmp_path / "ph", n=6, size=32, seed=0, progress=False)
    store = ingest(tmp_path / "ph", tmp_path / "store", table=tmp_path / "ph" / "table.csv",
                   size=32, progress=False)  # fmt: skip
    assert kind_of(store) == "volumes"
    labels = volumes.volume_labels(store, VolumeSet(store).patient_ids(), ["bmi_class"])
    assert labels.shape == (6, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small-sample note
        evaluate(store, tmp_path / "ph", tmp_path / "r", features={}, progress=False)
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    inputs = report["inputs"]
    assert inputs["n_real"] == 6 and inputs["grid_size"] == 32
    assert inputs["grid_spacing_mm"] == pytest.approx(12.5)  # the phantoms' 400 mm / 32
    assert report["fidelity"]["pixels_2p5d"]["fid"] < 1e-4
    assert any("resampled to 12.5 mm isotropic voxels" in n for n in report["notes"])


def test_the_report_says_what_it_skipped_and_warns_at_small_sizes(tmp_path):
    real = write(tmp_path / "real", [body(k) for k in range(4)])
    syn = write(tmp_path / "syn", [body(k + 10) for k in range(4)])
    with pytest.warns(UserWarning, match="FID from 4 real and 4 synthetic samples of 1024"):
        evaluate(real, syn, tmp_path / "r", progress=False)
    notes = json.loads((tmp_path / "r" / "report.json").read_text())["notes"]
    assert any("Inception features skipped for volumes" in n for n in notes)
    assert any("3D domain features skipped: they need --labels" in n for n in notes)
    assert any("fidelity.pixels_2p5d: FID from 4 real" in n for n in notes)


def test_a_failed_evaluation_names_the_input_and_leaves_nothing(tmp_path, capsys):
    real = write(tmp_path / "real", [body(0)])
    syn = write(tmp_path / "syn", [body(k) for k in range(3)])
    argv = ["evaluate", "--real", str(real), "--synthetic", str(syn), "--out", str(tmp_path / "r")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"--real {real}: 1 volume; expected at least 2" in err and "real_features" not in err
    assert not (tmp_path / "r").exists()
    # a failure after figures were written (no such label column) removes them too
    real = write(tmp_path / "real3", [body(k) for k in range(3)])
    with pytest.raises(DataError, match="none of"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluate(real, syn, tmp_path / "r", labels=["y"], progress=False)
    assert not (tmp_path / "r").exists()


def test_discard_keeps_files_it_did_not_write(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "notes.txt").write_text("mine")
    report = Report(tmp_path / "r")
    report.write()
    assert (tmp_path / "r" / "report.json").is_file()
    report.discard()
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["notes.txt"]
    fresh = Report(tmp_path / "new")
    fresh.write()
    fresh.discard()
    assert not (tmp_path / "new").exists()


def test_a_nifti_preview_keeps_its_proportions():
    """A 0.96 x 0.96 x 1.5 mm-like scan (here 8 x 4 x 4 mm) previews like its isotropic source:
    the body spans as many rows of the coronal and sagittal tiles (17 of 24, 16 here); the
    slices as read are squashed to half that height (8)."""
    iso = body(0, noise=0.0)
    thick = resample(iso, (8.0, 4.0, 4.0))
    want = orthogonal_slices(iso.hu)
    got = volume_slices(thick)
    assert got.shape == want.shape == (24, 72)

    def body_rows(img):  # rows of the coronal and sagittal tiles that hold tissue
        return [int((img[:, k * 24 : (k + 1) * 24] > 100).any(1).sum()) for k in (1, 2)]

    assert body_rows(want) == [17, 17]
    assert all(abs(a - 17) <= 1 for a in body_rows(got))
    assert body_rows(orthogonal_slices(thick.hu)) == [8, 8]
    assert (
        np.abs(got.astype(float) - want).mean()
        < 0.25 * np.abs(orthogonal_slices(thick.hu).astype(float) - want).mean()
    )
