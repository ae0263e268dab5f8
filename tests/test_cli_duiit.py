"""`jaxsyn train duiit`, `jaxsyn translate` and `jaxsyn predict`.

translate and predict read a run folder holding an *untrained* joint model (its initial
parameters saved as `run` saves them, its config.json as `run` writes it): their plumbing without
compiling a training step; the whole CLI round trip is `slow`.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from jaxsyn.checkpoint import Checkpointer
from jaxsyn.cli import main
from jaxsyn.data.labelled import load_labelled
from jaxsyn.files import write_json
from jaxsyn.infer import duiit as infer
from jaxsyn.models import cyclegan
from jaxsyn.models import duiit as model
from jaxsyn.train import duiit, duiit_data

pytestmark = pytest.mark.xdist_group("duiit")


def write_folder(folder, n: int, seed: int) -> None:
    """n grey 16 x 16 PNGs with labels.csv (image_id, patient_id, age)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    rows = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(folder / f"im{i}.png")
        rows.append({"image_id": f"im{i}", "patient_id": f"p{i // 2}", "age": 30.0 + i})
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("duiit")
    write_folder(root / "ct", 8, 0)  # 8: a batch on 8 devices (the round trip)
    write_folder(root / "mri", 8, 1)
    config = duiit.DUIITTrainConfig.tiny("joint", steps=2)
    cohorts = duiit_data.load_cohorts(root / "ct", [root / "mri"], "age", 16, 0, progress=False)
    mean, scale = duiit_data.label_stats(cohorts)
    config = dataclasses.replace(
        config, model=dataclasses.replace(config.model, label_mean=mean, label_scale=scale)
    )
    state = duiit.init_state(config)
    with Checkpointer(root / "run" / "checkpoints", config) as checkpointer:
        checkpointer.save(2, state)
    write_json(root / "run" / "config.json", duiit.run_info(config, cohorts, "age"))
    return root


@pytest.mark.slow  # ~30 s from a cold cache; make test is at its 10-minute limit
def test_translate_and_predict(run_dir, tmp_path):
    run, images = run_dir / "run", run_dir / "mri"
    out = tmp_path / "fake_ct"
    assert main(["translate", "--run", str(run), "--images", str(images), "--out", str(out)]) == 0
    config, params, info = infer.load_run(run)
    assert info["family"] == "duiit" and info["label"] == "age" and config.sources == 1
    real = load_labelled(str(images), "age", 16, 0, progress=False)
    written = load_labelled(str(out), "age", 16, 0, progress=False)
    assert written.image_ids == real.image_ids and written.patient_ids == real.patient_ids
    np.testing.assert_array_equal(written.labels, real.labels)  # labels.csv rows kept
    # the PNGs are G's translations of the images, to 8-bit rounding
    g = params["gen"]["g"]["s0"]
    want = np.asarray(cyclegan.translate(g, real.images, config.translator))
    np.testing.assert_allclose(written.images, want, atol=1.01 / 255 * 2)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["direction"] == "source 0 -> target" and "im0.png" in manifest["files"]

    preds = tmp_path / "preds"
    assert main(["predict", "--run", str(run), "--images", str(images), "--out", str(preds)]) == 0
    table = pd.read_csv(preds / "predictions.csv")
    assert list(table.columns) == ["image_id", "prediction"]
    assert table["image_id"].tolist() == real.image_ids
    raw = np.asarray(model.predict(params["p"], real.images, config.predictor))
    # 1e-3 in standardised units: the jitted batches and this call round differently, and the
    # tiny predictor's group norms over 2-8 values amplify that
    np.testing.assert_allclose(table["prediction"], raw * config.label_scale + config.label_mean,
                               rtol=0, atol=1e-3 * config.label_scale)  # fmt: skip
    assert (preds / "manifest.json").is_file()
    with pytest.raises(Exception, match="source is 1; expected 0 .. 0"):
        infer.translate(params, real.images, config, source=1)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--setting", "joint", "--source", "S"], "--label is required for --setting joint"),
        (["--setting", "mtl", "--label", "age"], "--source is required for --setting mtl"),
        (["--setting", "gan", "--label", "age"], "--setting is 'gan'"),
        (["--source", "S", "--label", "age", "--config.lam=-1"], "lam is -1.0"),
    ],
)
def test_train_errors_name_the_flag(tmp_path, capsys, argv, message):
    base = ["train", "duiit", "--target", "T", "--out", str(tmp_path / "run"), "--steps", "2"]
    assert main([*base, *argv]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_cli_round_trip(tmp_path, run_dir):
    """train duiit (joint, then cyclegan without --label) -> translate -> predict, end to end."""
    ct, mri = str(run_dir / "ct"), str(run_dir / "mri")
    base = ["train", "duiit", "--target", ct, "--source", mri, "--tiny", "--steps", "2"]
    assert main([*base, "--label", "age", "--out", str(tmp_path / "joint")]) == 0
    assert main([*base, "--setting", "cyclegan", "--out", str(tmp_path / "cg")]) == 0
    cg, _, _ = infer.load_run(tmp_path / "cg")
    assert not cg.predict
    for run in ("joint", "cg"):
        out = tmp_path / f"{run}-out"
        assert main(["translate", "--run", str(tmp_path / run), "--images", mri, "--out",
                     str(out)]) == 0  # fmt: skip
    assert main(["predict", "--run", str(tmp_path / "joint"), "--images", ct, "--out",
                 str(tmp_path / "p")]) == 0  # fmt: skip
    assert (
        main(
            [
                "predict",
                "--run",
                str(tmp_path / "cg"),
                "--images",
                ct,
                "--out",
                str(tmp_path / "p2"),
            ]
        )
        == 1
    )
