"""AC-GAN training: data, 8 devices == 1 device, bitwise resume, learning, reading a run back.

Tolerance of the sharded step: rtol = atol = 1e-4 (float32, convolutional networks with
BatchNorm: every loss, gradient and batch statistic is summed per device, then across devices,
so results agree to rounding, not bit for bit; Adam's first steps amplify that rounding).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsyn.data.phantoms import vertebra
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.models import acgan as model
from jaxsyn.train import acgan, loop, parallel
from tests.train.helpers import assert_trees_close, assert_trees_equal, host

TINY = acgan.ACGANTrainConfig.tiny()
TOL = dict(rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def cohort() -> acgan.Cohort:
    return acgan.load_cohort("phantom:vertebra:48", TINY)


@pytest.fixture(scope="module")
def meshes():
    devices = jax.devices()
    assert len(devices) == 8, "tests/conftest.py sets 8 CPU devices"
    return {1: parallel.make_mesh(devices[:1]), 8: parallel.make_mesh(devices)}


def test_phantom_cohort(cohort):
    assert cohort.images.shape == (48, 16, 16, 9) and cohort.images.dtype == np.float32
    assert cohort.images.min() >= -1 and cohort.images.max() <= 1
    assert cohort.classes == ("cervical", "thoracic", "lumbar")  # the reference's one-hot order
    table = vertebra.labels(48, TINY.seed)
    assert [cohort.classes[k] for k in cohort.labels] == table["region"].tolist()


def test_folder_cohort_equals_phantom(tmp_path, cohort):
    vertebra.write_cohort(tmp_path, 48, 16, TINY.seed, progress=False)
    folder = acgan.load_cohort(tmp_path, TINY)
    np.testing.assert_allclose(folder.images, cohort.images, atol=1e-6)
    np.testing.assert_array_equal(folder.labels, cohort.labels)
    with pytest.raises(DataError, match="no column 'site'"):
        acgan.load_cohort(tmp_path, TINY, class_column="site")
    with pytest.raises(DataError, match="expected ACGANConfig.num_classes = 2"):
        acgan.load_cohort(
            tmp_path, dataclasses.replace(TINY, model=model.ACGANConfig.tiny(num_classes=2))
        )
    with pytest.raises(ConfigError, match="phantom:vertebra:N"):
        acgan.load_cohort("phantom:cxr:4", TINY)


def test_dataset_is_seeded_and_sharded_by_process(cohort):
    first = [next(iter(acgan.dataset(cohort, TINY)))["index"] for _ in range(2)]
    np.testing.assert_array_equal(first[0], first[1])
    it = iter(acgan.dataset(cohort, TINY))
    whole = np.concatenate([next(it)["index"] for _ in range(2)])
    parts = [iter(acgan.dataset(cohort, TINY, process_index=i, process_count=2)) for i in range(2)]
    stacked = np.concatenate([next(p)["index"] for p in parts] + [next(p)["index"] for p in parts])
    np.testing.assert_array_equal(stacked, whole)


def test_weighted_class_loss_matches_pytorch_nll():
    config = dataclasses.replace(TINY, class_weights=(1.0, 2.0, 0.5))
    logits = jax.random.normal(jax.random.key(0), (6, 3))
    labels = jnp.array([0, 1, 2, 1, 1, 0])
    nll = -np.asarray(jax.nn.log_softmax(logits))[np.arange(6), labels]
    w = np.array([1.0, 2.0, 0.5])[labels]
    got = acgan.class_loss(logits, labels, config, axis_name=None)
    np.testing.assert_allclose(got, (w * nll).sum() / w.sum(), rtol=1e-6)
    np.testing.assert_allclose(
        acgan.balanced_weights(np.array([0, 0, 1, 2]), 3), (2 / 3, 4 / 3, 4 / 3)
    )
    with pytest.raises(ConfigError, match="class_weights"):
        dataclasses.replace(TINY, class_weights=(1.0, 2.0))
    with pytest.raises(ConfigError, match="fake_class_prior"):
        dataclasses.replace(TINY, fake_class_prior=(1.0, -1.0, 1.0))
    assert dataclasses.replace(TINY, fake_class_prior=(1, 2, 1)).fake_class_prior == (
        0.25,
        0.5,
        0.25,
    )


def _steps(mesh, config, batches):
    step = acgan.make_step(config, mesh)
    with jax.set_mesh(mesh):
        state = acgan.make_state(config, mesh)
        history = []
        for batch in batches:
            state, metrics = step(state, parallel.shard_batch(batch, mesh))
            history.append((host(state), host(metrics)))
    return history


# Unweighted is the weighted case's special one (the weighted mean over devices is the harder
# all-reduce): it runs in the slow target, for the default suite's 10-minute budget.
@pytest.mark.parametrize("weights", [pytest.param(None, marks=pytest.mark.slow), (1.0, 0.5, 2.0)])
def test_sharded_step_matches_single_device(meshes, cohort, weights):
    config = dataclasses.replace(TINY, class_weights=weights)
    it = iter(acgan.dataset(cohort, config))
    batches = [next(it) for _ in range(2)]
    one = _steps(meshes[1], config, batches)
    eight = _steps(meshes[8], config, batches)
    for (s1, m1), (s8, m8) in zip(one, eight, strict=True):
        assert_trees_close(s8, s1, **TOL)
        assert_trees_close(m8, m1, **TOL)
    start = host(acgan.init_state(config))
    for part in (".params['g']", ".params['d']", ".stats['batch_stats']"):
        keys = [k for k in start if k.startswith(part)]
        assert keys and all(not np.array_equal(start[k], one[-1][0][k]) for k in keys), part


def test_each_update_draws_its_own_fakes(meshes, monkeypatch):
    """As the reference's train_region.py (noise_gen before the D update and again before the G
    update): the G update's labels and z are new draws, not the D update's fakes, and the labels
    follow `fake_class_prior`, not the real batch's labels."""
    draws, fakes = [], acgan.fakes

    def spy(key, n, config):
        labels, z = fakes(key, n, config)
        jax.debug.callback(lambda *a: draws.append([np.asarray(x) for x in a]), labels, z)
        return labels, z

    monkeypatch.setattr(acgan, "fakes", spy)
    small = model.ACGANConfig.tiny(size=8, batch_norm=False)  # the smallest step to compile
    config = acgan.ACGANTrainConfig.tiny(model=small, fake_class_prior=(0.0, 1.0, 1.0))
    mesh = meshes[1]
    step = parallel.data_parallel(functools.partial(acgan.train_step, config=config), mesh)
    images = jax.random.uniform(jax.random.key(0), (16, 8, 8, 9), minval=-1, maxval=1)
    batch = {"image": np.asarray(images), "label": np.arange(16, dtype=np.int32) % 3}
    with jax.set_mesh(mesh):  # the real batch has class 0; the fakes must not
        state = acgan.make_state(config, mesh)
        jax.block_until_ready(step(state, parallel.shard_batch(batch, mesh)))
    (d_labels, d_z), (g_labels, g_z) = draws  # one draw per update
    assert d_z.shape == g_z.shape == (16, TINY.model.latent_dim)
    assert not np.allclose(d_z, g_z) and not np.array_equal(d_labels, g_labels)
    for labels in (d_labels, g_labels):
        assert set(labels.tolist()) == {1, 2}


def test_resume_is_bitwise_and_batch_is_clamped(tmp_path, capsys):
    """4 straight steps == 2 steps, then resumed to 4; a 12-example cohort clamps batch 16 to 8."""
    small = acgan.load_cohort("phantom:vertebra:12", TINY)
    kw = dict(config=TINY, checkpoint_every=2, progress=False, devices=jax.devices())
    straight = acgan.run(tmp_path / "a", small, steps=4, **kw)
    assert "batch size 16 > 12 examples: using 8" in capsys.readouterr().out
    acgan.run(tmp_path / "b", small, steps=2, **kw)
    resumed = acgan.run(tmp_path / "b", small, steps=4, resume=True, **kw)
    assert int(resumed.step) == 4
    assert_trees_equal(host(resumed), host(straight))
    a = loop.read_metrics(tmp_path / "a" / "metrics.jsonl")
    b = loop.read_metrics(tmp_path / "b" / "metrics.jsonl")
    assert [r["d_loss"] for r in a] == [r["d_loss"] for r in b]


def test_training_learns_the_classes_and_reads_back(tmp_path, cohort):
    """60 steps on the vertebra phantom: the fakes of each class become recognisable as that class
    (G's class loss under D falls); the run reads back.

    (D's class loss on *real* units falls too, but only after ~150 steps at width 8: with the
    reference's N(0, 0.02) initialisation and no BatchNorm in D, a width-8 D's features start
    ~1e-3 in size.)
    """
    out = tmp_path / "run"
    state = acgan.run(out, cohort, steps=60, config=TINY, checkpoint_every=60, progress=False,
                      devices=jax.devices()[:2])  # fmt: skip
    rows = loop.read_metrics(out / "metrics.jsonl")
    early = np.mean([r["g_class"] for r in rows[:5]])
    late = np.mean([r["g_class"] for r in rows[-5:]])
    assert late < 0.8 * early, (early, late)
    assert np.isfinite([r["g_loss"] + r["d_loss"] for r in rows]).all()

    config, g, stats, info = acgan.load_generator(out)
    assert config == TINY.model and info["classes"] == ["cervical", "thoracic", "lumbar"]
    assert np.isclose(sum(info["class_prior"]), 1)
    # fakes' labels were drawn with the data's class frequencies (run filled them in)
    np.testing.assert_allclose(info["fake_class_prior"], info["class_prior"], rtol=1e-12)
    assert_trees_equal(host(g), host(state.params["g"]))
    assert_trees_equal(host(stats), host(state.stats["batch_stats"]))
    k = acgan.class_index(info, "lumbar")
    assert k == 2 and acgan.class_index(info, "0") == 0
    frames = model.morph(
        g, jax.random.key(0), config, acgan.class_index(info, "cervical"), k, 3, stats
    )
    assert frames.shape == (4, 16, 16, 9) and bool(jnp.all(jnp.isfinite(frames)))
    with pytest.raises(ConfigError, match="class is 'sacral'"):
        acgan.class_index(info, "sacral")


def test_bad_train_config_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="batch_size is 0"):
        acgan.ACGANTrainConfig(batch_size=0)
    with pytest.raises(ConfigError, match="multiple of the 8 devices"):
        acgan.make_step(dataclasses.replace(TINY, batch_size=12), parallel.make_mesh())
    with pytest.raises(ConfigError, match="family"):
        (tmp_path / "config.json").write_text('{"family": "hagan"}')
        acgan.load_generator(tmp_path)
