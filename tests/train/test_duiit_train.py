"""DUIIT training: LR decay, the history pool, where the predictor's gradient goes, MTL weights,
DANN's ramp, augmentations, 8 devices == 1 device, bitwise resume.

Tolerance of the sharded step: rtol = atol = 1e-4 (float32 convolutional networks; every loss and
gradient is summed per device, then across devices, so results agree to rounding, not bit for
bit), Adam's moments (the gradients) included. Parameters after the first step: within 2 lr,
as Adam's first update is +-lr whatever the gradient's size, so an element whose gradient is
at rounding level (a dead ReLU, a channel instance norm flattens: 0.1-4 % of the tiny
predictor's) moves by lr in a direction the summation order decides. The predictor's Adam
moments are not compared: its group norms at the 2 x 2 and 1 x 1 stages of a 16 px input
normalise over 2-8 values and amplify rounding into gradients that differ by up to 20 % in a
few elements (the translators' moments hold to 1e-4; the step's losses, predictor's included,
too).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsyn.data.labelled import LabelledImages
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.models import cyclegan
from jaxsyn.models import duiit as model
from jaxsyn.train import augment, duiit, duiit_data, loop
from tests.train.helpers import assert_trees_close, assert_trees_equal, host

pytestmark = pytest.mark.xdist_group("duiit")
TOL = dict(rtol=1e-4, atol=1e-4)


def cohort(n: int, seed: int, name: str) -> LabelledImages:
    """n labelled 16 x 16 images whose mean brightness grows with the label."""
    rng = np.random.default_rng(seed)
    labels = rng.uniform(20, 80, n).astype(np.float32)
    images = rng.uniform(-1, 1, (n, 16, 16, 1)) * 0.3 + (labels[:, None, None, None] - 50) / 40
    ids = [f"{name}{i}" for i in range(n)]
    return LabelledImages(np.clip(images, -1, 1).astype(np.float32), labels, ids, ids, name)


def test_linear_decay_values():
    """CycleGAN's policy: constant for the first half, then linearly to 0."""
    schedule = duiit.linear_decay(2e-4, 10)
    got = [float(schedule(jnp.asarray(c))) for c in range(11)]
    want = [2e-4] * 6 + [2e-4 * (1 - k / 5) for k in range(1, 6)]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # per component and phase: cyclegan's translators decay over the first phase only
    config = duiit.DUIITTrainConfig.tiny("cyclegan", steps=8)
    assert config.two_phases and config.phase_steps == 4
    opts = duiit.optimizers(config)
    assert set(opts) == {"gen", "disc", "p"}
    tl = duiit.optimizers(duiit.DUIITTrainConfig.tiny("tl", steps=8))
    assert set(tl) == {"p", "pre"}


def _values(n):
    return jnp.arange(1, n + 1, dtype=jnp.float32)[:, None, None, None]


def test_history_pool_semantics():
    """ImagePool: stored and returned until full; then each image either comes back (and the
    pool is unchanged) or swaps with a random stored one, about half the time."""
    pool = duiit.empty_pool(3, (1, 1, 1))
    pool, out = duiit.pool_query(pool, _values(2), jax.random.key(0))
    np.testing.assert_array_equal(out, _values(2))
    assert int(pool["count"]) == 2
    np.testing.assert_array_equal(pool["images"][:2], _values(2))
    pool, out = duiit.pool_query(pool, _values(1) + 2, jax.random.key(1))  # fills the last slot
    np.testing.assert_array_equal(out, _values(1) + 2)
    np.testing.assert_array_equal(np.sort(pool["images"].ravel()), [1, 2, 3])
    swaps, n = 0, 200
    fresh = 100 + _values(n)
    full, out = duiit.pool_query(pool, fresh, jax.random.key(2))
    again, out2 = duiit.pool_query(pool, fresh, jax.random.key(2))
    np.testing.assert_array_equal(out, out2)  # deterministic from the key
    assert_trees_equal(host(full), host(again))
    stored = {1.0, 2.0, 3.0}
    for i, v in enumerate(np.asarray(out).ravel()):
        if v != fresh[i, 0, 0, 0]:
            swaps += 1
            assert v in stored  # an image stored before it, now replaced by the new one
            stored.remove(v)
            stored.add(float(fresh[i, 0, 0, 0]))
    assert stored == set(np.asarray(full["images"]).ravel().tolist())
    assert 70 < swaps < 130, swaps  # Binomial(200, 0.5)
    untouched, out = duiit.pool_query(duiit.empty_pool(0, (1, 1, 1)), fresh, jax.random.key(3))
    np.testing.assert_array_equal(out, fresh)


def _batch(config, n=4):
    named = {"target": cohort(n, 0, "ct"), **{k: cohort(n, 1 + i, k) for i, k in
                                              enumerate(duiit.sources(config))}}  # fmt: skip
    return {k: {"image": jnp.asarray(v.images), "label": jnp.asarray(v.labels)}
            for k, v in named.items()}  # fmt: skip


@pytest.fixture(scope="module")
def joint_parts():
    config = duiit.DUIITTrainConfig.tiny("joint")
    params = jax.jit(duiit.init_params, static_argnums=1)(jax.random.key(0), config)
    return config, params, _batch(config)


def _g_grad(config, params, batch, joint):
    @jax.jit
    def grad(gen):
        return jax.grad(lambda g: duiit.translator_loss(g, params["disc"], params["p"], batch,
                                                        config, joint)[0])(gen)["g"]  # fmt: skip

    return grad(params["gen"])


def test_predictor_gradient_reaches_the_translator_in_joint(joint_parts):
    """joint: G's gradient is L_trans's plus lam times that of L_pred = MSE(P([x; G(y)])) (eq. 3),
    computed here by hand; lam = 0 leaves L_trans's alone. (lam 1 and 0.5 rather than the
    paper's 1e-3, so the predictor's part stands well above float32 rounding of the sum; atol
    2e-5 is that rounding: two compiled programs sum the gradients in different orders.)"""
    config, params, batch = joint_parts
    m = config.model
    trans = _g_grad(config, params, batch, joint=False)

    @jax.jit
    def pred_grad(gen):
        def l_pred(g):
            fake = cyclegan.translate(g["s0"], batch["s0"]["image"], m.translator)
            images = jnp.concatenate([batch["target"]["image"], fake])
            labels = jnp.concatenate([batch["target"]["label"], batch["s0"]["label"]])
            return jnp.mean((model.predict(params["p"], images, m.predictor) - labels) ** 2)

        return jax.grad(l_pred)(gen["g"])

    by_hand = pred_grad(params["gen"])
    for lam in (1.0,):  # (0.5 too measured the same; one compile each, so make test keeps one)
        lam_config = dataclasses.replace(config, model=dataclasses.replace(m, lam=lam))
        joint = _g_grad(lam_config, params, batch, joint=True)
        for j, t, h in zip(jax.tree.leaves(joint), jax.tree.leaves(trans),
                           jax.tree.leaves(by_hand), strict=True):  # fmt: skip
            np.testing.assert_allclose(j - t, lam * h, rtol=1e-3, atol=2e-5)
    assert max(float(jnp.abs(h).max()) for h in jax.tree.leaves(by_hand)) > 1e-3
    lam0 = dataclasses.replace(config, model=dataclasses.replace(m, lam=0.0))
    assert_trees_equal(host(_g_grad(lam0, params, batch, joint=True)), host(trans))


def test_no_predictor_gradient_reaches_the_translator_in_cyclegan(joint_parts):
    """CycleGAN then train: the predictor's loss depends on the translated images, but no
    gradient goes back into G (it was trained before, alone)."""
    _, params, batch = joint_parts
    config = duiit.DUIITTrainConfig.tiny("cyclegan", steps=4)

    @jax.jit
    def loss_and_grad(gen):
        f = lambda g: duiit.predictor_loss(params["p"], g, batch, None, 3, config, 2)[0]  # noqa: E731
        return jax.value_and_grad(f)(gen)

    loss, grads = loss_and_grad(params["gen"])
    assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(grads))
    moved = jax.tree.map(lambda x: x * 1.5, params["gen"])
    assert float(loss_and_grad(moved)[0]) != float(loss)


def test_mtl_weights_and_dann_ramp():
    config = duiit.setting_defaults("mtl", sources=2, tiny=True)
    assert config.model.predictor.heads == 3
    assert (config.batch_size, config.p_lr) == (4, 1e-4)  # tiny batch; appendix A.8's lr
    params = jax.jit(duiit.init_params, static_argnums=1)(jax.random.key(0), config)
    batch = _batch(config)
    loss, _ = jax.jit(duiit.predictor_loss, static_argnums=(5, 6))(
        params["p"], None, batch, None, 0, config, 1
    )
    outputs = {k: np.asarray(model.apply(params["p"], v["image"], config.model.predictor)[1])
               for k, v in batch.items()}  # fmt: skip
    y = {k: np.asarray(duiit.standardise(v["label"], config)) for k, v in batch.items()}
    want = 0.95 * np.mean((outputs["target"][:, 0] - y["target"]) ** 2)
    want += 0.05 * np.mean((outputs["s0"][:, 1] - y["s0"]) ** 2)
    want += 0.05 * np.mean((outputs["s1"][:, 2] - y["s1"]) ** 2)
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    pet = duiit.setting_defaults("mtl", pet=True)  # appendix A.12
    assert (pet.model.mtl_target_weight, pet.model.mtl_source_weight) == (0.9, 0.1)
    dann = duiit.setting_defaults("dann", steps=100)  # appendix A.7
    assert (dann.p_lr, dann.weight_decay, dann.batch_size) == (1e-5, 1e-3, 64)
    ramp = [float(duiit.dann_factor(jnp.asarray(s), dann)) for s in (0, 10, 100)]
    np.testing.assert_allclose(ramp, [0.0, 2 / (1 + np.exp(-1.0)) - 1, 2 / (1 + np.exp(-10)) - 1],
                               rtol=1e-6)  # fmt: skip
    assert duiit.setting_defaults("joint", pet=True).model.predictor.depth == 18  # A.4
    with pytest.raises(ConfigError, match="first_phase is 1.0"):
        duiit.DUIITTrainConfig(first_phase=1.0)


@pytest.mark.parametrize("name", sorted(augment.AUGMENTATIONS))
def test_augmentations(name):
    fn = jax.jit(jax.vmap(augment.AUGMENTATIONS[name]))
    x = jnp.asarray(cohort(16, 0, "ct").images)
    keys = jax.random.split(jax.random.key(0), 16)
    out = fn(keys, x)
    assert out.shape == x.shape and float(jnp.abs(out).max()) <= 1.0
    np.testing.assert_array_equal(fn(keys, x), out)  # the key decides
    changed = np.asarray(jnp.any(out != x, axis=(1, 2, 3)))
    assert 0 < changed.sum() <= 16
    if name == "erasing":  # a rectangle of 2-40 % of the image, in about half of the images
        area = np.asarray(jnp.mean(out != x, axis=(1, 2, 3)))[changed]
        assert 3 <= changed.sum() <= 13 and area.min() > 0.01 and area.max() <= 0.41


def _run(out, config, steps, devices, resume=False):
    return duiit.run(out, cohort(16, 0, "ct"), [cohort(16, 1, "mri")], label="age", steps=steps,
                     config=config, resume=resume, checkpoint_every=2, progress=False,
                     devices=devices)  # fmt: skip


def test_resume_is_bitwise(tmp_path):
    """joint: a run of 4 planned steps stopped at 2, then resumed to 4 == 4 straight (bitwise),
    the pools included."""
    config = duiit.DUIITTrainConfig.tiny("joint", batch_size=8, steps=4)  # planned: 4
    one = _run(tmp_path / "one", config, 4, jax.devices()[:1])
    _run(tmp_path / "half", config, 2, jax.devices()[:1])
    resumed = _run(tmp_path / "half", config, 4, jax.devices()[:1], resume=True)
    assert_trees_equal(host(resumed), host(one))
    rows = loop.read_metrics(tmp_path / "one" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for name in ("g_ab", "g_ba", "d_a", "d_b", "cyc", "pred"):
        assert all(np.isfinite(r[name]) for r in rows), name
    assert rows[0]["idt"] is None and rows[0]["dom"] is None  # not trained: null
    assert int(one.stats["pool"]["b"]["s0"]["count"]) == 32  # 8 fakes a step
    first = loop.read_metrics(tmp_path / "half" / "metrics.jsonl")
    assert [r["cyc"] for r in first] == [r["cyc"] for r in rows]


# make test is at its 10-minute limit (11 min 1 s on 2026-12-07's AVX-512 machine): sharding is
# checked in the default suite on HA-GAN, AC-GAN, the toy GAN and jaxsyn.train.parallel
@pytest.mark.slow
def test_eight_devices_equal_one(tmp_path):
    """joint: its first step on 8 devices == on 1 (to TOL; parameters within Adam's +-lr)."""
    config = duiit.DUIITTrainConfig.tiny("joint", batch_size=8, steps=4)
    # one step on 8 devices == on 1 (later steps add the parameters' Adam flips to the fakes)
    eight = _run(tmp_path / "eight", config, 1, jax.devices())
    a, b = host(eight), host(_run(tmp_path / "one1", config, 1, jax.devices()[:1]))
    params = [k for k in a if k.startswith(".params")]
    p_moments = [k for k in a if k.startswith(".opt_state['p']")]
    rest = [k for k in a if k not in params and k not in p_moments]
    assert_trees_close({k: a[k] for k in rest}, {k: b[k] for k in rest}, **TOL)

    flip = 2 * max(config.g_lr, config.d_lr, config.p_lr)  # Adam: +-lr per step
    for k in params:
        assert np.all(np.abs(a[k] - b[k]) <= flip * (1 + 1e-4)), k  # (float rounding of 1 +- lr)
    metrics = [loop.read_metrics(tmp_path / d / "metrics.jsonl")[0] for d in ("eight", "one1")]
    for name in ("g_ab", "g_ba", "d_a", "d_b", "cyc", "pred"):
        np.testing.assert_allclose(metrics[0][name], metrics[1][name], **TOL)


def test_cohort_batches_are_seeded_and_split_by_process():
    cohorts = duiit_data.Cohorts(cohort(10, 0, "ct"), (cohort(7, 1, "mri"),))
    whole = iter(duiit_data.dataset(cohorts, 4, seed=3))
    batches = [next(whole) for _ in range(3)]
    parts = [iter(duiit_data.dataset(cohorts, 4, 3, process_index=i, process_count=2))
             for i in range(2)]  # fmt: skip
    for b in batches:
        halves = [next(p) for p in parts]
        for name in ("target", "s0"):
            joined = np.concatenate([h[name]["label"] for h in halves])
            np.testing.assert_array_equal(joined, b[name]["label"])
    # an epoch of the 7 MRI images is one batch of 4 (the remainder dropped), then a new order
    assert len(set(batches[0]["s0"]["label"].tolist())) == 4
    assert duiit_data.fit_batch(16, cohorts, 2) == 6 and duiit_data.fit_batch(4, cohorts, 4) == 4
    with pytest.raises(DataError, match="mri: 7 examples; expected at least one per device"):
        duiit_data.fit_batch(4, cohorts, 8)


@pytest.mark.slow
@pytest.mark.parametrize("setting", model.SETTINGS)
def test_every_setting_trains(tmp_path, setting):
    """3 steps of each setting on 1 device: finite metrics for what it trains, null for the rest;
    the two-phase settings switch phase (cyclegan: translators, then the predictor)."""
    config = duiit.DUIITTrainConfig.tiny(setting, steps=3, first_phase=0.5)
    sources = [cohort(16, 1, "mri")]
    state = duiit.run(tmp_path, cohort(16, 0, "ct"), sources, label="age", steps=3, config=config,
                      progress=False, devices=jax.devices()[:1])  # fmt: skip
    rows = loop.read_metrics(tmp_path / "metrics.jsonl")
    trains_g = setting == "joint" or (setting == "cyclegan")
    assert (rows[0]["g_ab"] is not None) == trains_g
    assert (rows[-1]["pred"] is not None) and np.isfinite(rows[-1]["pred"])
    if setting == "cyclegan":
        assert rows[0]["pred"] is None and rows[-1]["g_ab"] is None
    assert (rows[-1]["dom"] is not None) == (setting == "dann")
    assert int(state.step) == 3


@pytest.mark.parametrize("setting", ["tl", "cyclegan"])
def test_two_phase_settings_compile_one_step_per_phase(setting, monkeypatch):
    """tl and cyclegan-then-train: the host picks each step's phase from the step count (read
    from the state once, also when resuming mid-run), never a lax.cond on the device."""
    from jaxsyn.train import parallel

    config = duiit.DUIITTrainConfig.tiny(setting, steps=6)  # phase 1: steps 0-2
    picked = []

    def cached_step(fn, cfg, mesh, **static):
        assert fn is duiit.train_step and cfg is config
        return lambda state, batch: picked.append(static["phase"]) or (state.step + 1, {})

    monkeypatch.setattr(parallel, "cached_step", cached_step)

    class State:
        def __init__(self, step):
            self.step = jnp.asarray(step)

    mesh = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
    step = duiit.make_step(config, mesh)
    assert isinstance(step, duiit.PhasedStep) and config.phase_steps == 3
    state = State(0)
    for _ in range(6):
        state = State(step(state, None)[0])
    assert picked == [1, 1, 1, 2, 2, 2]
    picked.clear()
    resumed = duiit.make_step(config, mesh)  # from a checkpoint at step 2
    for _ in range(3):
        resumed(State(2), None)
    assert picked == [1, 2, 2]
