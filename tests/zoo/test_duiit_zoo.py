"""The shipped translator (00007, DUIIT MRI -> CT on head phantoms) in the model library: generate
writes the bytes `jaxsyn translate` writes for the same inputs (a folder, an array, or phantoms
drawn from the seed), arrays are what the files hold, `test_model` passes on it and fails on a
translator that outputs a constant or its input, the explorer shows sources beside their
translations, the card validates and the schema refuses an unknown output kind."""

import copy
import json

import numpy as np
import pandas as pd
import pytest

from jaxsyn.cli import main
from jaxsyn.data.images import load_images
from jaxsyn.data.labelled import load_labelled
from jaxsyn.data.phantoms import head
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.infer import duiit
from jaxsyn.zoo import Generators, cards, library
from jaxsyn.zoo.explorer import render

pytestmark = pytest.mark.xdist_group("zoo")

MODEL = "00007_DUIIT_MRI2CT_HEAD_PHANTOM_32"


@pytest.fixture
def gens(monkeypatch):
    monkeypatch.delenv("JAXSYN_MODELS", raising=False)
    return Generators()


def run_dir():
    return library.shipped() / MODEL / "run"


def same_files(a, b) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_translations_are_the_bytes_of_jaxsyn_translate(gens, tmp_path):
    mri = tmp_path / "mri"
    head.write_cohort(mri, "mri", 5, 32, seed=4, progress=False)
    out = gens.generate("7", 4, tmp_path / "zoo", images=mri)
    argv = ["translate", "--run", str(run_dir()), "--images", str(mri), "--n", "4"]
    assert main([*argv, "--out", str(tmp_path / "cli")]) == 0
    same_files(out, tmp_path / "cli")  # PNGs, labels.csv and manifest.json
    assert len(list(out.glob("*.png"))) == 4
    labels = pd.read_csv(out / "labels.csv")
    assert list(labels["image_id"]) == [f"mri-{i:05d}" for i in range(4)] and "age" in labels
    argv = ["models", "generate", MODEL, "--n", "4", "--images", str(mri)]
    assert main([*argv, "--out", str(tmp_path / "models-cli")]) == 0
    same_files(out, tmp_path / "models-cli")
    # arrays: what the files hold; an array of the same source images translates the same
    images, table = load_images(out, progress=False)
    sources, _ = load_images(mri, progress=False)
    arrays = gens.generate(7, 4, save_images=False, images=sources)
    assert arrays["images"].shape == (4, 32, 32, 1) and arrays["images"].dtype == np.float32
    assert arrays["images"].min() >= 0.0 and arrays["images"].max() <= 1.0
    np.testing.assert_array_equal(arrays["images"], images)
    assert list(arrays["labels"]["image_id"]) == [f"src_{i:06d}" for i in range(4)]
    # no images: source phantoms drawn from the seed, as `translate --images phantom:...`
    out = gens.generate(7, 3, tmp_path / "drawn", seed=5)
    argv = ["translate", "--run", str(run_dir()), "--images", "phantom:head-mri:3", "--seed", "5"]
    assert main([*argv, "--out", str(tmp_path / "drawn-cli")]) == 0
    same_files(out, tmp_path / "drawn-cli")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["images"] == "phantom:head-mri:3" and manifest["seed"] == 5
    ages = load_labelled("phantom:head-mri:3", "age", 32, 5, progress=False).labels
    np.testing.assert_allclose(pd.read_csv(out / "labels.csv")["age"], ages, rtol=1e-6)


def test_translator_arguments_are_checked(gens, tmp_path):
    with pytest.raises(ConfigError, match=r"images of shape \[2, 32, 32, 3\]; expected"):
        gens.generate(7, 2, save_images=False, images=np.zeros((2, 32, 32, 3)))
    with pytest.raises(ConfigError, match=r"images in \[255.0, 255.0\]; expected \[0, 1\]"):
        gens.generate(7, 2, save_images=False, images=np.full((2, 32, 32), 255.0))
    with pytest.raises(ConfigError, match="latents given; a translator has none"):
        gens.generate(7, 2, save_images=False, latents=np.zeros((2, 4)))
    with pytest.raises(ConfigError, match=r"n is 9; expected 1 .. 2"):
        gens.generate(7, 9, save_images=False, images=np.zeros((2, 32, 32)))
    with pytest.raises(ConfigError, match="images= given to a cpdgan model"):
        gens.generate(6, 2, save_images=False, images=np.zeros((2, 32, 32)))
    with pytest.raises(ConfigError, match=r"conditions \['age'\] unknown"):
        gens.generate(7, 2, save_images=False, conditions={"age": 50})


def test_test_model_passes_and_refuses_constant_and_identity_translators(gens, monkeypatch):
    report = gens.test_model(MODEL, num_samples=3, seed=0)
    assert report["n"] == 16 and report["checks"][:3] == ["shape", "finite", "range"]
    assert "16 different source images give different translations" in report["checks"]
    d = report["distances"]
    for name in ("mean_image_rms", "intensity_w1"):
        assert d["translations"][name] < d["sources"][name]
    # a translator that outputs a constant, then one that returns its input (the source MRI)
    monkeypatch.setattr(duiit, "_translate_fn", lambda config: lambda g, x: x * 0 + 0.2)
    with pytest.raises(DataError, match=rf"model {MODEL}: the same translation for all 16"):
        gens.test_model(7)
    monkeypatch.setattr(duiit, "_translate_fn", lambda config: lambda g, x: x)
    with pytest.raises(
        DataError, match=r"translations lie 0\.\d+ from real phantom:head-ct:16 \(mean_image_rms\)"
    ):
        gens.test_model(7)


def test_explorer_shows_sources_beside_translations_and_dataset(gens):
    f = gens.get_generate_function(7)
    assert f.latent_dim == 0 and f.conditions_schema == {}
    out = f.generate(None, 3, {})
    assert out["images"].shape == (4, 32, 64, 1) and out["latents"].shape == (0,)
    sources = load_labelled("phantom:head-mri:4", None, 32, 3, progress=False).images
    np.testing.assert_allclose(out["images"][:, :, :32], (sources + 1) / 2, atol=1e-6)
    fake = gens.generate(7, 4, save_images=False, seed=3)["images"]
    np.testing.assert_array_equal(out["images"][:, :, 32:], fake)
    page = render(out)
    assert [p["title"] for p in page["panels"]][0] == "mri-00000: source | translation"
    assert page["columns"] == ["image_id", "patient_id", "age"] and len(page["rows"]) == 4
    other = f.generate(None, 4, {})["images"]
    assert np.abs(other[:, :, :32] - out["images"][:, :, :32]).max() > 0.1  # the seed's sources
    # the translations of seeded phantoms with their ages: a dataset for an age predictor
    ds = gens.get_as_dataset(7, 4, seed=3)
    assert len(ds) == 4 and set(ds[0]) == {"image", "age"}
    np.testing.assert_array_equal(ds[2]["image"], fake[2])


def test_card_validates_and_the_schema_refuses_an_unknown_output_kind():
    card = cards.read(library.shipped() / MODEL)
    cards.check_files(library.shipped() / MODEL, card)
    assert card["execution"]["family"] == "duiit"
    assert card["execution"]["output"] == {
        "kind": "translations",
        "shape": [32, 32, 1],
        "labels": ["age"],
        "source": "phantom:head-mri:256",
        "target": "phantom:head-ct:64",
    }
    assert isinstance(card["selection"]["performance"]["FID"], float)
    bad = copy.deepcopy(card)
    bad["execution"]["output"]["kind"] = "sounds"
    with pytest.raises(ConfigError, match=r"field execution.output.kind: \"sounds\"; expected one"):
        cards.validate(bad)
    pure = {"family": "duiit", "model": {"setting": "pure", "translator": {"size": 32}}}
    with pytest.raises(ConfigError, match="field model.setting is 'pure'; expected joint or"):
        cards.output_of({**pure, "sources": []})
