"""`jaxsyn train hagan` and `jaxsyn generate` end to end on a tiny phantom run."""

import json
import re
import shutil

import nibabel as nib
import numpy as np
import pytest
import tensorstore as ts

from jaxsyn.cli import main
from jaxsyn.data.volumes import load_volume
from jaxsyn.files import sha256

pytestmark = pytest.mark.xdist_group("hagan")  # with tests/train/test_hagan_train.py


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    argv = ["train", "hagan", "--tiny", "--data", "phantom:ct:8", "--out", str(run), "--steps", "2"]
    argv += ["--checkpoint-every", "1", "--preview-every", "2", "--condition-columns", "bmi_class"]
    # the test session has 8 CPU devices: one example each; this is the configuration of
    # tests/train/test_hagan_train.py, whose compiled step this run reuses
    argv += ["--config.batch_size=8"]
    assert main(argv) == 0
    return run


def test_train_writes_a_run_folder(run_dir):
    info = json.loads((run_dir / "config.json").read_text())
    assert info["family"] == "hagan" and info["class_column"] == "bmi_class"
    assert info["model"]["size"] == 32 and info["model"]["num_classes"] == 4
    assert info["spacing_mm"] == pytest.approx(12.5)  # 400 mm phantoms in 32 voxels
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["1", "2"]
    assert (run_dir / "previews" / "step_0000002.png").is_file()


def test_resume_and_refusals(run_dir, tmp_path, capsys):
    run_dir = shutil.copytree(run_dir, tmp_path / "run")  # the shared run stays at step 2
    base = ["train", "hagan", "--tiny", "--data", "phantom:ct:8", "--out", str(run_dir)]
    base += ["--condition-columns", "bmi_class", "--checkpoint-every", "1", "--preview-every", "9"]
    base += ["--config.batch_size=8"]
    assert main([*base, "--steps", "3"]) == 1  # an existing run needs --resume
    assert "pass --resume" in capsys.readouterr().err
    assert main([*base, "--steps", "3", "--resume"]) == 0
    assert json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 3
    assert main([*base, "--steps", "4", "--resume", "--config.lr_d=0.001"]) == 1
    assert "lr_d is 0.0004 in the checkpoint, 0.001 now" in capsys.readouterr().err
    assert main([*base, "--steps", "4", "--config.no_such=1"]) == 1
    assert "--config.no_such: no such field" in capsys.readouterr().err


def test_generate_writes_hu_volumes_with_affine_and_manifest(run_dir, tmp_path):
    out = tmp_path / "gen"
    argv = [
        "generate",
        "--run",
        str(run_dir),
        "--n",
        "2",
        "--out",
        str(out),
        "--condition",
        "bmi_class=3",
    ]
    assert main([*argv, "--format", "nifti,zarr"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [v["id"] for v in manifest["volumes"]] == ["syn_00000", "syn_00001"]
    for name, digest in manifest["files"].items():
        assert sha256(out / name) == digest
    img = nib.load(out / "syn_00000.nii.gz")
    assert img.get_data_dtype() == np.int16 and img.shape == (32, 32, 32)
    np.testing.assert_allclose(img.header.get_zooms(), (12.5, 12.5, 12.5))
    vol = load_volume(out / "syn_00000.nii.gz")
    assert vol.hu.min() >= -1024 and vol.hu.max() <= 600  # the training window, inverted
    zarr = ts.open(
        {"driver": "zarr", "kvstore": {"driver": "file", "path": str(out / "syn_00000.zarr")}}
    ).result()
    np.testing.assert_array_equal(zarr[0].read().result(), vol.hu)
    again = generate_one(run_dir, tmp_path / "again", bmi_class=3)
    assert (again / "syn_00000.nii.gz").read_bytes() == (out / "syn_00000.nii.gz").read_bytes()
    other = generate_one(run_dir, tmp_path / "other", bmi_class=0)
    assert not np.array_equal(
        load_volume(other / "syn_00000.nii.gz").hu, vol.hu
    )  # the condition matters


def generate_one(run_dir, out, bmi_class: int):
    argv = ["generate", "--run", str(run_dir), "--n", "1", "--out", str(out)]
    assert main([*argv, "--condition", f"bmi_class={bmi_class}"]) == 0
    return out


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], r"missing \['bmi_class'\]"),
        (["--condition", "bmi_class=7"], "expected an integer class 0..3"),
        (["--condition", "bmi_class=1", "--condition", "age=3"], r"unknown \['age'\]"),
        (["--condition", "bmi_class=1", "--format", "png"], r"unknown \['png'\]"),
    ],
)
def test_generate_refuses_bad_conditions(run_dir, tmp_path, capsys, extra, message):
    assert main(["generate", "--run", str(run_dir), "--out", str(tmp_path / "g"), *extra]) == 1
    assert re.search(message, capsys.readouterr().err)


def test_generate_needs_a_run(tmp_path, capsys):
    assert main(["generate", "--run", str(tmp_path), "--out", str(tmp_path / "g")]) == 1
    assert "no config.json" in capsys.readouterr().err
