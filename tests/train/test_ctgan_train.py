"""CTGAN training: data parallel == single device, bitwise resume, determinism, the optimiser,
and a short run that learns a known conditional structure (sampled exactly, several columns)."""

import copy
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

from jaxsyn.data.phantoms.ct import clinical_table
from jaxsyn.data.tabular import ConditionSampler, TableTransformer
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.infer.ctgan import TableSynthesizer
from jaxsyn.models.ctgan import CTGANConfig
from jaxsyn.train import ctgan, parallel


def structured(n=3000, seed=0):
    """a uniform over x/y/z; P(b=1 | a) = 0.9 / 0.5 / 0.1; c ~ N(0/10/20 + 3b, 1); d has NaNs."""
    rng = np.random.default_rng(seed)
    a = rng.choice(["x", "y", "z"], n)
    b = (rng.random(n) < np.select([a == "x", a == "y"], [0.9, 0.5], 0.1)).astype(int)
    c = np.select([a == "x", a == "y"], [0.0, 10.0], 20.0) + 3.0 * b + rng.normal(0, 1, n)
    d = np.where(rng.random(n) < 0.3, np.nan, rng.integers(0, 50, n).astype(float))
    return pd.DataFrame({"a": a, "b": b, "c": c.round(2), "d": pd.array(d, "Int64")})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """1500 steps of a small CTGAN on `structured()` (about 13 s on 2 cores)."""
    out = tmp_path_factory.mktemp("ctgan") / "run"
    small = CTGANConfig(embedding_dim=64, generator_dim=(128, 128), discriminator_dim=(128, 128))
    config = ctgan.CTGANTrainConfig(model=small, batch_size=80, g_lr=1e-3, d_lr=1e-3)
    df = structured()
    ctgan.run(out, df, steps=1500, config=config, checkpoint_every=1500, progress=False,
              devices=jax.devices()[:1])  # fmt: skip
    return df, TableSynthesizer.load(out)


# A GAN this short is a random draw: P(b=1 | a) over seeds 0-3 (real 0.9 / 0.1), measured
# 2026-12-07 under the suite's XLA flags on an AVX2 EPYC: x 0.61-0.87, z 0.07-0.36; at 3000 steps
# still x 0.71-0.91, z 0.03-0.37. An AVX-512 machine passed the old per-value bound (0.25) with
# seed 0, this one gave x 0.61. So the check is the gap a model that learnt nothing would not
# have (0.0 +- 0.03 sampling noise; real 0.8; measured 0.25-0.72), and the free category
# frequencies within 0.15 of 1/3 (measured deviations <= 0.13; a collapse onto one is 0.67).
MIN_CONDITIONAL_GAP = 0.2
FREE_TOLERANCE = 0.15


def test_learns_the_conditional_distribution(trained):
    df, synth = trained
    means, p_b = {}, {}
    for value in ("x", "z"):
        out = synth.sample(2000, conditions={"a": value}, key=1)
        assert (out["a"] == value).all()  # exact, no rejection
        p_b[value], means[value] = out["b"].mean(), out["c"].mean()
    assert p_b["x"] - p_b["z"] >= MIN_CONDITIONAL_GAP, p_b
    assert means["z"] - means["x"] > 10, means  # real: 20.3 - 2.7
    # two columns at once: c | (a = y, b = 1) ~ N(13, 1)
    both = synth.sample(1000, conditions={"a": "y", "b": 1}, key=2)
    assert (both["a"] == "y").all() and (both["b"] == 1).all()
    real = df["c"][(df["a"] == "y") & (df["b"] == 1)].mean()
    assert abs(both["c"].mean() - real) < 3, (both["c"].mean(), real)


def test_samples_keep_missingness_bounds_and_dtypes(trained):
    df, synth = trained
    out = synth.sample(3000, key=3)
    assert len(out) == 3000 and list(out.columns) == list(df.columns)
    assert 0.1 < out["d"].isna().mean() < 0.5  # real: 0.3
    assert str(out["d"].dtype) == "Int64" and out["b"].dtype == df["b"].dtype
    assert out["d"].min() >= 0 and out["d"].max() <= 49
    assert out["c"].min() >= df["c"].min() and out["c"].max() <= df["c"].max()
    assert set(out["a"]) <= {"x", "y", "z"}
    free = out["a"].value_counts(normalize=True)
    assert (abs(free - 1 / 3) < FREE_TOLERANCE).all(), free


def test_range_conditions_reject_within_bounds(trained):
    _, synth = trained
    out = synth.sample(200, conditions={"a": "z", "c": (18.0, 22.0)}, key=4)
    assert len(out) == 200 and out["c"].between(18, 22).all() and (out["a"] == "z").all()
    with pytest.raises(DataError, match="produced only .* rows with c in \\[5, 5.01\\]"):
        synth.sample(500, conditions={"a": "z", "c": (5.0, 5.01)}, key=5, max_batches=2)
    with pytest.raises(ConfigError, match="outside the training range"):
        synth.sample(10, conditions={"c": (100.0, 200.0)})


@pytest.mark.parametrize(
    "conditions, words",
    [({"e": 1}, "not a column"), ({"a": "w"}, "unknown value"), ({"c": "high"}, "a range")],
)
def test_condition_errors(trained, conditions, words):
    with pytest.raises(ConfigError, match=words):
        trained[1].sample(10, conditions=conditions)


def test_sampling_is_deterministic(trained):
    _, synth = trained
    a = synth.sample(300, conditions={"b": 0}, key=7)
    pd.testing.assert_frame_equal(a, synth.sample(300, conditions={"b": 0}, key=7))
    assert not a.equals(synth.sample(300, conditions={"b": 0}, key=8))


# --- the step -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup():
    df = clinical_table(300, seed=1)  # the CT phantom's table: 4 kinds, missing values
    config = ctgan.CTGANTrainConfig.tiny()
    transformer = TableTransformer.fit(df, progress=False)
    data = np.asarray(transformer.transform(df, 0, progress=False), np.float32)
    config = dataclasses.replace(config, model=config.model.bind(transformer.layout))
    sampler = ConditionSampler.from_data(transformer.layout, data)
    return config, ctgan.TableArrays(jnp.asarray(data), jax.tree.map(jnp.asarray, sampler.arrays))


def run_steps(config, table, devices, n):
    mesh = parallel.make_mesh(devices)
    step = ctgan.make_step(config, mesh, table)
    with jax.set_mesh(mesh):
        state = jax.jit(lambda: ctgan.init_state(config))()
        for _ in range(n):
            state, metrics = step(state, None)
    return jax.device_get(state), jax.device_get(metrics)


# make test is at its 10-minute limit (11 min 1 s on 2026-12-07's AVX-512 machine): sharding is
# checked in the default suite on HA-GAN, AC-GAN, the toy GAN and jaxsyn.train.parallel
@pytest.mark.slow
def test_eight_devices_equal_one(setup):
    config, table = setup
    one, m1 = run_steps(config, table, jax.devices()[:1], 3)
    eight, m8 = run_steps(config, table, jax.devices()[:8], 3)
    for k in m1:
        np.testing.assert_allclose(m1[k], m8[k], rtol=1e-5, atol=1e-7)
    flat8 = dict(jax.tree_util.tree_leaves_with_path((eight.params, eight.stats)))
    for path, a in jax.tree_util.tree_leaves_with_path((one.params, one.stats)):
        name = jax.tree_util.keystr(path)
        if "['g']" in name and "bias" in name and "TorchDense_2" not in name:
            # The biases before BatchNorm (the reference keeps them) have a true gradient of 0:
            # Adam turns float32 rounding noise into +-lr steps that differ with the reduction
            # order, and the running means carry them. Everything else must agree.
            continue
        atol = 5e-4 if "mean" in name else 2e-6
        np.testing.assert_allclose(a, flat8[path], rtol=2e-4, atol=atol, err_msg=name)
    moved = jax.tree.map(
        lambda x, y: np.abs(x - y).max(), one.stats, ctgan.init_state(config).stats
    )
    assert max(jax.tree.leaves(moved)) > 0  # running statistics advance


def test_batch_must_split_over_devices_and_pac(setup):
    config, table = setup
    with pytest.raises(ConfigError, match="multiple of 8 devices x pac 10 = 80"):
        ctgan.make_step(dataclasses.replace(config, batch_size=40), parallel.make_mesh(), table)
    with pytest.raises(ConfigError, match="multiple of pac"):
        ctgan.CTGANTrainConfig(batch_size=55)


def test_adam_with_coupled_l2_as_torch():
    # torch.optim.Adam(weight_decay=wd) adds wd * p to the gradient before the moments: with a
    # zero loss gradient the first step is -lr * sign(p) (AdamW would move by lr * wd * p).
    opt = ctgan.optimizers(ctgan.CTGANTrainConfig())["g"]
    p = {"w": jnp.array([0.5, -2.0, 3.0])}
    updates, _ = opt.update({"w": jnp.zeros(3)}, opt.init(p), p)
    g0 = 1e-6 * np.asarray(p["w"])
    np.testing.assert_allclose(updates["w"], -2e-4 * g0 / (np.abs(g0) + 1e-8), rtol=1e-5)
    g = {"w": jnp.array([1.0, 1.0, 1.0])}
    ref = optax.adam(2e-4, b1=0.5, b2=0.9, eps=1e-8)
    coupled = {"w": g["w"] + 1e-6 * p["w"]}
    np.testing.assert_allclose(opt.update(g, opt.init(p), p)[0]["w"],
                               ref.update(coupled, ref.init(p), p)[0]["w"], rtol=1e-6)  # fmt: skip


def test_resume_is_bitwise_and_runs_are_deterministic(tmp_path):
    df = structured(400)
    config = ctgan.CTGANTrainConfig.tiny(batch_size=40)
    kw = dict(config=config, checkpoint_every=2, progress=False, devices=jax.devices()[:1])
    ctgan.run(tmp_path / "full", df, steps=4, **kw)
    ctgan.run(tmp_path / "again", df, steps=4, **kw)
    ctgan.run(tmp_path / "cut", df, steps=2, **kw)
    with pytest.raises(ConfigError, match="already holds a run"):
        ctgan.run(tmp_path / "cut", df, steps=4, **kw)
    ctgan.run(tmp_path / "cut", df, steps=4, resume=True, **kw)
    runs = [TableSynthesizer.load(tmp_path / name) for name in ("full", "again", "cut")]
    for other in runs[1:]:
        for a, b in zip(jax.tree.leaves((runs[0].params, runs[0].stats)),
                        jax.tree.leaves((other.params, other.stats)), strict=True):  # fmt: skip
            np.testing.assert_array_equal(a, b)
        pd.testing.assert_frame_equal(runs[0].sample(50, key=1), other.sample(50, key=1))
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4


def test_free_conditions_follow_the_empirical_frequencies(trained):
    """Free samples name a column uniformly and its category with the training frequencies (the
    reference: log-frequency). On a skewed column (900 / 90 / 10 rows) the two differ by far more
    than the sampling error, so this fails on a log-frequency draw."""
    _, synth = trained
    synth = copy.copy(synth)
    synth.counts = {**synth.counts, "a": [900, 90, 10]}
    n = 200_000
    cond = np.asarray(synth.free_conditions(jax.random.key(0), n))
    assert cond.shape == (n, 5) and (cond.sum(1) == 1).all()
    b = np.asarray(synth.counts["b"], float)
    want = np.concatenate([np.array([900, 90, 10]) / 1000, b / b.sum()]) / 2
    sigma = np.sqrt(want * (1 - want) / n)
    np.testing.assert_array_less(np.abs(cond.mean(0) - want), 5 * sigma)
    log = np.log1p([900, 90, 10]) / np.log1p([900, 90, 10]).sum() / 2
    assert np.abs(cond.mean(0)[:3] - log).max() > 50 * sigma[:3].max()


def test_auto_batch_by_table_size():
    assert ctgan.CTGANTrainConfig().batch_size == 500  # opt-in: the default is ctgan's
    """The largest multiple of pac x devices giving 30 steps an epoch, within [50, 500]."""
    assert [ctgan.auto_batch(n, 10) for n in (10, 331, 1604, 3000, 6000, 15000, 200000)] == [
        50, 50, 50, 100, 200, 500, 500]  # fmt: skip
    assert ctgan.auto_batch(331, 10, 8) == 80 and ctgan.auto_batch(200000, 10, 8) == 480
    assert ctgan.auto_batch(6000, 1) == 200 and ctgan.auto_batch(1000, 1) == 50


def test_auto_batch_is_decided_once_and_kept_on_resume(tmp_path):
    """A run with batch_size None (auto_batch) records what it used, and resuming with None
    keeps the run's own batch even where the rule would say otherwise."""
    df = structured(300)
    config = ctgan.CTGANTrainConfig.tiny(batch_size=None)
    kw = dict(config=config, checkpoint_every=2, progress=False, devices=jax.devices()[:1])
    ctgan.run(tmp_path / "auto", df, epochs=1, **kw)
    info = json.loads((tmp_path / "auto" / "config.json").read_text())
    assert info["batch_size"] == 50 and info["steps_per_epoch"] == 6
    old = tmp_path / "old"
    ctgan.run(old, df, steps=2, **{**kw, "config": dataclasses.replace(config, batch_size=100)})
    ctgan.run(old, df, steps=3, resume=True, **kw)  # batch_size None resumes at 100
    assert json.loads((old / "config.json").read_text())["batch_size"] == 100
    assert TableSynthesizer.load(old).batch_size == 100
