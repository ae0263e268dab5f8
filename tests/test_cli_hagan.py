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
    assert [v["id"] for v in manifest["volumes"]] == ["syn_000000", "syn_000001"]
    for name, digest in manifest["files"].items():
        assert sha256(out / name) == digest
    img = nib.load(out / "syn_000000.nii.gz")
    assert img.get_data_dtype() == np.int16 and img.shape == (32, 32, 32)
    np.testing.assert_allclose(img.header.get_zooms(), (12.5, 12.5, 12.5))
    vol = load_volume(out / "syn_000000.nii.gz")
    assert vol.hu.min() >= -1024 and vol.hu.max() <= 600  # the training window, inverted
    zarr = ts.open(
        {"driver": "zarr", "kvstore": {"driver": "file", "path": str(out / "syn_000000.zarr")}}
    ).result()
    np.testing.assert_array_equal(zarr[0].read().result(), vol.hu)
    again = generate_one(run_dir, tmp_path / "again", bmi_class=3)
    assert (again / "syn_000000.nii.gz").read_bytes() == (out / "syn_000000.nii.gz").read_bytes()
    other = generate_one(run_dir, tmp_path / "other", bmi_class=0)
    assert not np.array_equal(
        load_volume(other / "syn_000000.nii.gz").hu, vol.hu
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


def test_generate_from_given_latents(run_dir, tmp_path, capsys):
    """--latents FILE.npy: sample i's noise is row i. The noise `generate` would draw for seed 0
    gives the same volumes; another noise another volume; a mismatch with --n or the model's
    latent size, or a file that is not an array, is a one-line error naming it."""
    import jax

    latent = json.loads((run_dir / "config.json").read_text())["model"]["latent_dim"]
    drawn = np.concatenate(
        [np.asarray(jax.random.normal(jax.random.fold_in(jax.random.key(0), i), (1, latent)))
         for i in range(2)]
    )  # fmt: skip
    np.save(tmp_path / "z.npy", drawn)
    base = ["generate", "--run", str(run_dir), "--condition", "bmi_class=3"]
    assert main([*base, "--n", "2", "--out", str(tmp_path / "seeded")]) == 0
    assert main([*base, "--latents", str(tmp_path / "z.npy"), "--out", str(tmp_path / "z")]) == 0
    for i in range(2):
        name = f"syn_{i:06d}.nii.gz"
        assert (tmp_path / "z" / name).read_bytes() == (tmp_path / "seeded" / name).read_bytes()
    manifest = json.loads((tmp_path / "z" / "manifest.json").read_text())
    assert manifest["n"] == 2 and manifest["latents_sha256"]
    np.save(tmp_path / "w.npy", drawn[::-1])  # swapped: sample 0 is the seeded sample 1
    assert main([*base, "--latents", str(tmp_path / "w.npy"), "--out", str(tmp_path / "w")]) == 0
    assert load_volume(tmp_path / "w" / "syn_000000.nii.gz").hu.tolist() == (
        load_volume(tmp_path / "seeded" / "syn_000001.nii.gz").hu.tolist()
    )
    capsys.readouterr()
    np.save(tmp_path / "narrow.npy", drawn[:, :3])
    (tmp_path / "text.npy").write_text("not an array")
    for extra, message in [
        (["--latents", str(tmp_path / "z.npy"), "--n", "3"], "--n is 3 and --latents holds 2"),
        (["--latents", str(tmp_path / "narrow.npy")], rf"shape \[2, 3\]; expected \[2, {latent}\]"),
        (["--latents", str(tmp_path / "text.npy")], "text.npy: not a .npy array file"),
        (["--latents", str(tmp_path / "none.npy")], "none.npy: no such file"),
    ]:
        assert main([*base, *extra, "--out", str(tmp_path / "bad")]) == 1
        err = capsys.readouterr().err
        assert re.search(message, err) and "Traceback" not in err, err


def test_generate_needs_a_run(tmp_path, capsys):
    assert main(["generate", "--run", str(tmp_path), "--out", str(tmp_path / "g")]) == 1
    assert "no config.json" in capsys.readouterr().err


def test_volumes_spread_over_local_devices_are_the_one_device_volumes(run_dir, tmp_path):
    """Volumes spread over two devices (one thread each) are the files one device writes."""
    import jax

    from jaxsyn.infer import hagan

    outs = [hagan.write_volumes(run_dir, tmp_path / str(k), n=2, conditions={"bmi_class": 2},
                                progress=False,
                                devices=jax.devices()[:k]) for k in (1, 2)]  # fmt: skip
    files = [{p.name: p.read_bytes() for p in sorted(o.iterdir())} for o in outs]
    assert len(files[0]) == 2 + 1 and files[0] == files[1]  # 2 volumes and the manifest
