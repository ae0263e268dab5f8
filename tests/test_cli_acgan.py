"""`jaxsyn train acgan`, `generate` and `morph` on the vertebra phantom, end to end."""

import json

import jax
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from jaxsyn.cli import main
from jaxsyn.data.images import load_images
from jaxsyn.infer.acgan import load_generator
from jaxsyn.models import acgan


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("acgan") / "run"
    argv = ["train", "acgan", "--tiny", "--data", "phantom:vertebra:24", "--out", str(run)]
    assert main([*argv, "--steps", "2", "--config.batch_size=8"]) == 0
    return run


def test_generate_writes_the_loader_layout(run_dir, tmp_path):
    out = tmp_path / "gen"
    argv = ["generate", "--run", str(run_dir), "--n", "6", "--out", str(out)]
    assert main([*argv, "--condition", "region=thoracic"]) == 0
    images, labels = load_images(out, progress=False)
    assert images.shape == (6, 16, 16, 9)
    assert (labels["region"] == "thoracic").all() and (labels["thoracic"] == 1).all()
    # the written arrays are the generator's images for this class and seed 0, mapped to [0, 1]
    config, g, stats, info = load_generator(run_dir)
    thoracic = info["classes"].index("thoracic")
    want = acgan.generate(g, jax.random.key(0), np.full(6, thoracic), config, stats)
    want = np.clip((np.asarray(want) + 1) / 2, 0, 1)
    assert want.std() > 1e-4  # an untrained G's images vary far beyond the tolerance
    np.testing.assert_allclose(images, want, atol=1e-6)
    manifest = json.loads((out / "manifest.json").read_text())
    assert "syn_000005.npy" in manifest["files"] and manifest["conditions"] == {
        "region": "thoracic"
    }
    free = tmp_path / "free"
    assert main(["generate", "--run", str(run_dir), "--n", "30", "--out", str(free)]) == 0
    assert pd.read_csv(free / "labels.csv")["region"].nunique() > 1  # drawn from the prior


def test_morph_strip_and_errors(run_dir, tmp_path, capsys):
    out = tmp_path / "strip.png"
    argv = ["morph", "--run", str(run_dir), "--from", "cervical", "--to", "lumbar"]
    assert main([*argv, "--frames", "4", "--out", str(out)]) == 0
    assert "5 images, cervical to lumbar in 4 steps" in capsys.readouterr().out
    strip = np.asarray(Image.open(out))
    assert strip.shape == (24 + 48, 5 * 48)  # 5 frames of a 3 x 3 mosaic of 16 px slices
    # two labelled bands on top (issue 22.6): the classes, then each frame's t = 0..4
    assert strip[:12].max() > 128 and all(strip[12:24, 48 * t : 48 * (t + 1)].max() > 128
                                          for t in range(5))  # fmt: skip
    assert main(["morph", "--run", str(run_dir), "--from", "sacral", "--to", "lumbar",
                 "--out", str(out)]) == 1  # fmt: skip
    assert "class is 'sacral'" in capsys.readouterr().err
    gen = ["generate", "--run", str(run_dir), "--n", "2", "--out", str(tmp_path / "g")]
    assert main([*gen, "--condition", "bmi=3"]) == 1
    assert "conditioned on 'region' only" in capsys.readouterr().err


def test_generate_from_given_latents(run_dir, tmp_path):
    """--latents: image i's noise is row i of the file (the seed's own draws give its images)."""
    config, _, _, _ = load_generator(run_dir)
    z = np.asarray(acgan.latents(jax.random.key(0), 3, config))
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "r.npy", z[::-1])
    cond = ["--condition", "region=thoracic"]
    for name, extra in (("seeded", ["--n", "3"]), ("z", ["--latents", str(tmp_path / "z.npy")]),
                        ("r", ["--latents", str(tmp_path / "r.npy")])):  # fmt: skip
        argv = ["generate", "--run", str(run_dir), "--out", str(tmp_path / name), *extra, *cond]
        assert main(argv) == 0
    seeded, given, rev = (
        load_images(tmp_path / d, progress=False)[0] for d in ("seeded", "z", "r")
    )
    np.testing.assert_array_equal(given, seeded)
    np.testing.assert_array_equal(rev, seeded[::-1])
    assert not np.array_equal(seeded[0], seeded[1])
