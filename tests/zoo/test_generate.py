"""Generating from the library: pack (a run + a card template + an evaluate report) and add, then
generate to files (the layout and bytes of `jaxsyn generate --run`) and to arrays (what the files
hold), the explorer's protocol, `test_model`'s rules, and the Grain dataset (deterministic from
its seed; mixed batches hold the asked synthetic count).

Two tiny models: a cpD-GAN run with random generator weights written as a checkpoint (no
training step to compile, as tests/test_cli_gan2d.py) and a CTGAN trained one step on sklearn's
diabetes table.
"""

import functools
import json
import shutil

import jax
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes

from jaxsyn import files
from jaxsyn.checkpoint import Checkpointer
from jaxsyn.cli import main
from jaxsyn.data.images import load_images
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.models import cpdgan
from jaxsyn.train import gan2d
from jaxsyn.zoo import Generators, library

pytestmark = pytest.mark.xdist_group("zoo")

REPORT = {  # the fields of a `jaxsyn evaluate` report.json that a card takes
    "title": "jaxsyn evaluation: synthetic vs real",
    "inputs": {"n_real": 24, "n_synthetic": 24, "seed": 0},
    "fidelity": {
        "pixels": {
            "raw": {
                "fid": 12.5,
                "fid_ratio": 1.25,
                "precision": 0.75,
                "settings": {"extractor": "pixels"},
            }
        }
    },  # fmt: skip
    "utility": {"auc_syn": [0.6, 0.8], "auc_real": [0.9, 0.9], "auc_augmented": None},
    "privacy": {"pairwise_attack_auc": 0.52, "distribution_attack_auc": None},
}


def template(model_id: str, modality: str) -> dict:
    return {
        "model_id": model_id,
        "selection": {
            "modality": modality,
            "anatomy": "head",
            "dimensionality": "2D",
            "dataset": "phantom",
            "tags": ["test"],
        },  # fmt: skip
        "description": {
            "title": model_id,
            "authors": ["tests"],
            "licence": "Apache-2.0",
            "training_data": "phantoms",
            "intended_use": "tests",
        },  # fmt: skip
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo-runs")
    # cpD-GAN: random generator and moving average, saved as `gan2d.run` saves them
    run = root / "cpdgan"
    config = gan2d.CPDGANTrainConfig.tiny(batch_size=8)
    cohort = gan2d.load_cohort("phantom:headct:24", config)
    config = gan2d.fit_labels(config, cohort)
    shapes = jax.eval_shape(functools.partial(cpdgan.init, config=config.model), jax.random.key(0))
    rng = np.random.default_rng(0)
    g, ema = [jax.tree.map(lambda s: rng.normal(0, 0.3, s.shape).astype(s.dtype), shapes["g"])
              for _ in range(2)]  # fmt: skip
    with Checkpointer(run / "checkpoints", config) as checkpointer:
        checkpointer.save(1, {"params": {"g": g}, "stats": {"g_ema": ema}})
    files.write_json(run / "config.json", gan2d.run_info(config, cohort))
    (run / "metrics.jsonl").write_text("{}\n")  # logs stay behind when packed
    # CTGAN: one training step on the diabetes table
    table = root / "diabetes.csv"
    load_diabetes(as_frame=True, scaled=False).frame.to_csv(table, index=False)
    argv = ["train", "ctgan", "--tiny", "--data", str(table), "--steps", "1", "--discrete", "sex"]
    assert main([*argv, "--out", str(root / "ctgan")]) == 0
    (root / "report").mkdir()
    files.write_json(root / "report" / "report.json", REPORT)
    for name, model_id, modality in (("cpdgan", "00101_CPDGAN", "CT"),
                                     ("ctgan", "00105_CTGAN", "clinical table")):  # fmt: skip
        files.write_json(root / f"{name}.card.json", template(model_id, modality))
    return root


@pytest.fixture(scope="module")
def lib(runs, tmp_path_factory):
    """A library holding both models, each packed with the report's metrics and added."""
    folder = tmp_path_factory.mktemp("lib")
    for name in ("cpdgan", "ctgan"):
        argv = ["models", "pack", str(runs / name), "--card", str(runs / f"{name}.card.json")]
        assert (
            main([*argv, "--report", str(runs / "report"), "--out", str(runs / f"{name}.zip")]) == 0
        )
        assert main(["models", "validate", str(runs / f"{name}.zip")]) == 0
        assert main(["models", "add", str(runs / f"{name}.zip"), "--library", str(folder)]) == 0
    return folder


@pytest.fixture
def gens(lib, monkeypatch):
    monkeypatch.delenv("JAXSYN_MODELS", raising=False)
    monkeypatch.setattr(library, "shipped", lambda: lib.parent / "no-shipped-models")
    return Generators(library=lib)


def test_pack_takes_the_reports_metrics_and_hashes_every_file(gens, runs, lib):
    card = gens.get_config_by_id(101)
    assert card["model_id"] == "00101_CPDGAN" and card["execution"]["family"] == "cpdgan"
    perf = card["selection"]["performance"]
    assert perf["FID"] == 12.5 and perf["FID_ratio"] == 1.25 and perf["precision"] == 0.75
    assert perf["CLF"]["trained_on_fake"]["auc"] == pytest.approx(0.7)  # the seeds' mean
    assert perf["CLF"]["trained_on_real"]["auc"] == pytest.approx(0.9)
    assert perf["privacy"] == {"pairwise_attack_auc": 0.52}  # None is no metric
    settings = card["selection"]["performance_settings"]
    assert settings["metrics"]["FID"] == {
        "from": "fidelity.pixels.raw.fid",
        "settings": {"extractor": "pixels"},
    }
    assert settings["report"]["inputs"]["n_real"] == 24 and settings["date"].endswith("Z")
    assert card["execution"]["conditions"]["subdural"] == {"type": "binary", "values": [0, 1]}
    assert card["execution"]["output"]["shape"] == [16, 16, 1]
    listed = card["files"]
    assert "run/config.json" in listed and "run/metrics.jsonl" not in listed
    assert all(k.startswith("run/checkpoints/1/") for k in listed if "checkpoints" in k)
    folder = lib / "00101_CPDGAN"
    assert listed == {k: v for k, v in files.tree_files(folder).items() if k != "model.json"}
    ranked = gens.rank_models_by_performance(metric="CLF.trained_on_fake.auc", order="desc")
    assert [r["model_id"] for r in ranked] == ["00101_CPDGAN", "00105_CTGAN"]  # equal: by id


def test_generate_files_match_jaxsyn_generate_and_arrays_match_files(gens, runs, tmp_path):
    out = gens.generate("101", 6, tmp_path / "zoo", seed=3, conditions={"subdural": 1})
    assert main(["generate", "--run", str(runs / "cpdgan"), "--n", "6", "--seed", "3",
                 "--condition", "subdural=1", "--out", str(tmp_path / "run")]) == 0  # fmt: skip
    for name in ["labels.csv", *(f"syn_{i:06d}.png" for i in range(6))]:
        assert (out / name).read_bytes() == (tmp_path / "run" / name).read_bytes(), name
    arrays = gens.generate(101, 6, save_images=False, seed=3, conditions={"subdural": "1"})
    images, labels = load_images(out, progress=False)
    np.testing.assert_array_equal(arrays["images"], images)
    pd.testing.assert_frame_equal(arrays["labels"], labels)
    assert arrays["images"].shape == (6, 16, 16, 1) and (labels["subdural"] == 1).all()
    argv = ["models", "generate", "00101_CPDGAN", "--n", "6", "--seed", "3", "--condition",
            "subdural=1", "--out", str(tmp_path / "cli"), "--library", str(gens.folders)]  # fmt: skip
    assert main(argv) == 0
    assert (tmp_path / "cli" / "syn_000005.png").read_bytes() == (
        out / "syn_000005.png"
    ).read_bytes()
    other = gens.generate(101, 6, save_images=False, seed=4)
    assert np.abs(other["images"] - images).max() > 0.1
    with pytest.raises(ConfigError, match=r"condition subdural=2; expected one of \[0, 1\]"):
        gens.generate(101, 2, save_images=False, conditions={"subdural": 2})
    with pytest.raises(ConfigError, match=r"conditions \['age'\] unknown"):
        gens.generate(101, 2, save_images=False, conditions={"age": 2})


def test_generate_function_follows_the_explorer_protocol(gens):
    f = gens.get_generate_function("00101")
    assert f.latent_dim == 16
    assert f.conditions_schema["subdural"] == {"type": "integer", "enum": [0, 1]}
    conditions = dict.fromkeys(f.conditions_schema, 0)
    a = f.generate(None, 7, conditions)
    assert a["latents"].shape == (16,) and a["images"].shape == (1, 16, 16, 1)
    b = f.generate(a["latents"], 7, conditions)
    np.testing.assert_array_equal(a["images"], b["images"])  # the same latents: the same image
    z = a["latents"].copy()
    z[:10] += 1.0  # one slider group moved
    assert np.abs(f.generate(z, 7, conditions)["images"] - a["images"]).max() > 0.02


def test_table_model_generates_and_honours_a_condition(gens, tmp_path):
    arrays = gens.generate(105, 40, save_images=False, seed=0, conditions={"sex": "2"})
    table = arrays["table"]
    assert len(table) == 40 and list(table.columns)[:3] == ["age", "sex", "bmi"]
    assert (table["sex"] == 2.0).all()
    out = gens.generate("105", 40, tmp_path / "t", seed=0, conditions={"sex": 2})
    pd.testing.assert_frame_equal(pd.read_parquet(out / "synthetic.parquet"), table)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["family"] == "ctgan" and manifest["conditions"] == {"sex": 2.0}


def test_test_model_checks_rules_and_refuses_a_broken_model(gens, lib, tmp_path, capsys):
    report = gens.test_model(105, num_samples=8)
    assert "conditioned column sex equals the condition (sex=2.0)" in report["checks"]
    assert "sex=1.0 and sex=2.0 give different outputs" in report["checks"]
    assert main(["models", "test", "101", "--n", "4", "--library", str(lib)]) == 0
    out = capsys.readouterr().out
    assert "labels.csv carries epidural (epidural=1)" in out and "checks passed" in out
    # a card whose output shape disagrees with what the model makes fails the shape check
    broken = tmp_path / "lib2"
    shutil.copytree(lib / "00101_CPDGAN", broken / "00109_BROKEN")
    card = json.loads((broken / "00109_BROKEN" / "model.json").read_text())
    card["model_id"], card["execution"]["output"]["shape"] = "00109_BROKEN", [32, 32, 1]
    files.write_json(broken / "00109_BROKEN" / "model.json", card)
    with pytest.raises(
        DataError,
        match=r"00109_BROKEN: generated shape \[2, 16, 16, 1\]; expected \[2, 32, 32, 1\]",
    ):
        Generators(library=[lib, broken]).test_model(109, num_samples=2)


def test_grain_dataset_is_deterministic_and_mixes_at_the_fraction(gens):
    ds = gens.get_as_dataset(101, 8, seed=1)
    again = gens.get_as_dataset(101, 8, seed=1)
    assert len(ds) == 8 and set(ds[0]) >= {"image", "subdural"} and "image_id" not in ds[0]
    for i in range(8):
        np.testing.assert_array_equal(ds[i]["image"], again[i]["image"])
    assert np.abs(gens.get_as_dataset(101, 8, seed=2)[0]["image"] - ds[0]["image"]).max() > 0.1
    real = [
        {k: (np.zeros_like(v) if k == "image" else v) for k, v in ds[i].items()} for i in range(8)
    ]
    mixed = gens.get_as_dataset(
        101, 12, seed=1, mix_with=real, synthetic_fraction=0.25, batch_size=4
    )
    assert len(mixed) == 2  # 8 real examples fill two batches of 3 real + 1 synthetic
    for batch in (mixed[0], mixed[1]):
        assert batch["image"].shape == (4, 16, 16, 1)
        assert batch["synthetic"].tolist() == [True, False, False, False]
        assert batch["image"][0].max() > 0 and batch["image"][1:].max() == 0
    first = gens.get_as_dataset(
        101, 12, seed=1, mix_with=real, synthetic_fraction=0.25, batch_size=4
    )
    np.testing.assert_array_equal(first[1]["image"], mixed[1]["image"])
    with pytest.raises(ConfigError, match="mix_with needs batch_size"):
        gens.get_as_dataset(101, 4, mix_with=real)


@pytest.mark.slow
@pytest.mark.parametrize("model_id", [1, 2, 3, 4, 5, 6])
def test_shipped_models_pass_their_own_test(model_id):
    """Every shipped model generates what its card says, through `test_model` (volumes and
    paired patients read back from NIfTI included): ~1 min each on two loaded cores."""
    report = Generators().test_model(model_id, num_samples=2)
    assert any("give different outputs" in c for c in report["checks"]), report
