"""`jaxsyn generate` for prog-GAN / cpD-GAN runs, and `jaxsyn train proggan|cpdgan` end to end.

The generate tests read a run folder holding an *untrained* cpD-GAN (random generator weights and
a different moving average of them saved as a checkpoint, its config.json as `run` writes it):
generation's plumbing without compiling a WGAN-GP training step, which takes minutes on two
cores; the full CLI round trips are `slow`.
"""

import functools
import json
import shutil

import jax
import numpy as np
import pandas as pd
import pytest

from jaxsyn import files
from jaxsyn.checkpoint import Checkpointer
from jaxsyn.cli import main
from jaxsyn.data.images import load_images
from jaxsyn.data.phantoms import headct
from jaxsyn.infer.acgan import load_gan2d
from jaxsyn.models import cpdgan
from jaxsyn.train import gan2d


def _generators(model: cpdgan.CPDGANConfig):
    """(G, its moving average): random weights made on the host, no compiled init (seconds on
    two cores)."""
    shapes = jax.eval_shape(functools.partial(cpdgan.init, config=model), jax.random.key(0))
    rng = np.random.default_rng(0)
    return [jax.tree.map(lambda s: rng.normal(0, 0.3, s.shape).astype(s.dtype), shapes["g"])
            for _ in range(2)]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("cpdgan") / "run"
    config = gan2d.CPDGANTrainConfig.tiny(batch_size=8)
    cohort = gan2d.load_cohort("phantom:headct:24", config)
    config = gan2d.fit_labels(config, cohort)
    g, ema = _generators(config.model)
    with Checkpointer(run / "checkpoints", config) as checkpointer:
        checkpointer.save(1, {"params": {"g": g}, "stats": {"g_ema": ema}})
    files.write_json(run / "config.json", gan2d.run_info(config, cohort))
    return run


def test_generate_writes_the_loader_layout(run_dir, tmp_path):
    out = tmp_path / "gen"
    argv = ["generate", "--run", str(run_dir), "--n", "8", "--out", str(out)]
    assert main([*argv, "--condition", "subdural=1", "--condition", "epidural=0"]) == 0
    images, labels = load_images(out, progress=False)
    assert images.shape == (8, 16, 16, 1)
    # the written PNGs are the averaged generator's images for these labels and seed 0, to 8-bit
    # rounding (a writer that clipped or scrambled them would pass a range check)
    config, g, _, _ = load_gan2d(run_dir)
    raw, ema = _generators(config)
    y = labels[list(headct.TYPES)].to_numpy()
    key = jax.random.fold_in(jax.random.key(0), 0)  # sample_gan2d's key of its first batch
    want = np.clip((np.asarray(cpdgan.generate(ema, key, y, config)) + 1) / 2, 0, 1)
    assert want.std() > 0.05  # the comparison is not between constant images
    np.testing.assert_allclose(images, want, atol=0.5 / 255 + 1e-6)
    other = np.clip((np.asarray(cpdgan.generate(raw, key, y, config)) + 1) / 2, 0, 1)
    assert np.abs(images - other).max() > 0.1  # not G's own images
    assert list(labels.columns) == ["image_id", *headct.TYPES]
    assert (labels["subdural"] == 1).all() and (labels["epidural"] == 0).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["family"] == "cpdgan" and "syn_000007.png" in manifest["files"]
    free = tmp_path / "free"
    assert main(["generate", "--run", str(run_dir), "--n", "8", "--out", str(free)]) == 0
    rows = {tuple(r) for r in pd.read_csv(free / "labels.csv")[list(headct.TYPES)].to_numpy()}
    info = json.loads((run_dir / "config.json").read_text())
    assert len(rows) > 1 and rows <= {tuple(c) for c, _ in info["label_combinations"]}


def test_without_smoothing_generate_reads_g(run_dir, tmp_path):
    """A run trained with g_smoothing = 0 keeps no average: `generate` reads G itself."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    info = json.loads((run / "config.json").read_text())
    files.write_json(run / "config.json", {**info, "g_smoothing": 0.0})
    config, g, _, _ = load_gan2d(run)
    raw, ema = _generators(config)
    for got, want in zip(jax.tree.leaves(g), jax.tree.leaves(raw), strict=True):
        np.testing.assert_array_equal(got, want)
    _, g, _, _ = load_gan2d(run_dir)
    for got, want in zip(jax.tree.leaves(g), jax.tree.leaves(ema), strict=True):
        np.testing.assert_array_equal(got, want)


def test_generate_and_train_errors(run_dir, tmp_path, capsys):
    gen = ["generate", "--run", str(run_dir), "--n", "2", "--out", str(tmp_path / "g")]
    assert main([*gen, "--condition", "nodule=1"]) == 1
    assert "FINDING=0 or FINDING=1" in capsys.readouterr().err
    assert main([*gen, "--condition", "subdural=2"]) == 1
    train = ["train", "proggan", "--tiny", "--out", str(tmp_path / "r"), "--steps", "1"]
    assert main(train) == 1
    assert "--data is required for proggan" in capsys.readouterr().err
    assert main([*train, "--data", "phantom:vertebra:8"]) == 1
    assert "phantom:cxr:N or phantom:headct:N" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(
    "family,data", [("proggan", "phantom:cxr:12"), ("cpdgan", "phantom:headct:12")]
)
def test_train_and_generate_end_to_end(family, data, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", family, "--tiny", "--data", data, "--out", str(run), "--steps", "2"]
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert "batch size 16 > 12 examples: using 8" in said and f"trained {family}" in said
    out = tmp_path / "gen"
    assert main(["generate", "--run", str(run), "--n", "4", "--out", str(out)]) == 0
    images, labels = load_images(out, progress=False)
    assert images.shape == (4, 16, 16, 1) and np.isfinite(images).all() and len(labels) == 4
    assert main([*argv, "--resume", "--steps", "3"]) == 0  # resumes from the checkpoint at 2


def test_generate_from_given_latents(run_dir, tmp_path):
    """--latents: image i's noise is row i; the noise the seed would draw gives the same images,
    other noise other images, with the same labels (drawn from --seed)."""
    config, _, _, _ = load_gan2d(run_dir)
    z = np.asarray(cpdgan.latents(jax.random.fold_in(jax.random.key(0), 0), 4, config.latent_dim))
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "r.npy", z[::-1])
    cond = ["--condition", "subdural=1", "--condition", "epidural=0"]
    for name, extra in (("seeded", ["--n", "4"]), ("z", ["--latents", str(tmp_path / "z.npy")]),
                        ("r", ["--latents", str(tmp_path / "r.npy")])):  # fmt: skip
        argv = ["generate", "--run", str(run_dir), "--out", str(tmp_path / name), *extra, *cond]
        assert main(argv) == 0
    seeded, given, rev = (load_images(tmp_path / d, progress=False) for d in ("seeded", "z", "r"))
    np.testing.assert_array_equal(given[0], seeded[0])  # same labels (same seed), same noise
    pd.testing.assert_frame_equal(given[1], seeded[1])
    pd.testing.assert_frame_equal(rev[1], seeded[1])
    assert not np.array_equal(rev[0], seeded[0])  # the noise reaches the images
    manifest = json.loads((tmp_path / "z" / "manifest.json").read_text())
    assert manifest["n"] == 4 and manifest["latents_sha256"]
