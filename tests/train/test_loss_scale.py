"""Dynamic loss scaling for float16 compute (jaxsyn.train.loss_scale; issue 21.3).

The mechanism is tested on a toy loss whose float16 gradient underflows to zero without scaling,
and on a loss whose gradient overflows (the step is skipped bit for bit and the scale halves).
The families that offer float16 (AC-GAN, prog-GAN, cpD-GAN) are checked in the slow target: one
float16 step within the bfloat16 bounds of tests/train/test_bf16.py of the float32 step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsyn.train import loss_scale, parallel


def test_scale_halves_on_overflow_and_doubles_after_a_period_of_finite_steps():
    s = loss_scale.initial(("g",))["g"]
    assert float(s["scale"]) == loss_scale.INITIAL and int(s["good_steps"]) == 0
    s = loss_scale.next_scale(s, jnp.bool_(True))
    assert (float(s["scale"]), int(s["good_steps"])) == (loss_scale.INITIAL, 1)
    s = loss_scale.next_scale(s, jnp.bool_(False))  # an overflow: halved, the count restarts
    assert (float(s["scale"]), int(s["good_steps"])) == (loss_scale.INITIAL / 2, 0)
    for _ in range(loss_scale.PERIOD - 1):
        s = loss_scale.next_scale(s, jnp.bool_(True))
    assert float(s["scale"]) == loss_scale.INITIAL / 2  # one finite step short of a period
    s = loss_scale.next_scale(s, jnp.bool_(True))
    assert (float(s["scale"]), int(s["good_steps"])) == (loss_scale.INITIAL, 0)
    low = {"scale": jnp.float32(1.0), "good_steps": jnp.zeros((), jnp.int32)}
    assert float(loss_scale.next_scale(low, jnp.bool_(False))["scale"]) == loss_scale.MINIMUM


def _on_one_device(fn):
    mesh = parallel.make_mesh(jax.devices()[:1])
    return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=(), out_specs=jax.P()))


def _toy_loss(w, x):
    """A float16 layer with a small loss (1e-5 of a mean over 4096 values): its output's
    cotangents are 2.4e-9, below float16's smallest subnormal (6e-8); scaled by 2^15, 8e-5, a
    normal float16."""
    y = x.astype(jnp.float16) * w.astype(jnp.float16)
    return 1e-5 * jnp.mean(y.astype(jnp.float32))


def test_scaling_recovers_a_float16_gradient_that_underflows_without_it():
    x = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.5, (64, 64)), jnp.float32)
    w = jnp.ones((64,), jnp.float32)
    exact = np.asarray(jax.grad(lambda w: 1e-5 * jnp.mean(x * w))(w))  # float32 throughout

    def grads(scale):
        value, g, finite = loss_scale.mean_value_and_grad(_toy_loss, scale)(w, x)
        return value, g, finite

    plain_value, plain, ok = _on_one_device(lambda: grads(None))()
    assert bool(ok) and not np.any(np.asarray(plain))  # every gradient flushed to zero
    scale = loss_scale.initial(("w",))["w"]
    value, scaled, ok = _on_one_device(lambda: grads(scale))()
    assert bool(ok) and scaled.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(scaled), exact, rtol=2e-3)
    assert float(value) == float(plain_value)  # the loss is reported unscaled


def test_an_overflowing_step_is_skipped_bit_for_bit():
    opt = optax.adam(1e-3)
    w = jnp.asarray([1.0, -2.0, 3.0], jnp.float32)
    opt_state = opt.init(w)
    scale = loss_scale.initial(("w",))["w"]

    def step(x):
        def loss(w, x):  # float16: 1e3 * 2^15 overflows in the backward pass
            return jnp.sum((w.astype(jnp.float16) * x.astype(jnp.float16)).astype(jnp.float32))

        _, g, finite = loss_scale.mean_value_and_grad(loss, scale)(w, x)
        new_w, new_opt = loss_scale.apply_gradients(w, opt_state, g, opt, finite, scaled=True)
        return new_w, new_opt, finite, loss_scale.next_scale(scale, finite)

    new_w, new_opt, finite, new_scale = _on_one_device(lambda: step(jnp.full(3, 1e3)))()
    assert not bool(finite)
    np.testing.assert_array_equal(np.asarray(new_w), np.asarray(w))
    for a, b in zip(jax.tree.leaves(new_opt), jax.tree.leaves(opt_state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(new_scale["scale"]) == loss_scale.INITIAL / 2
    new_w, _, finite, _ = _on_one_device(lambda: step(jnp.full(3, 1e-1)))()
    assert bool(finite) and not np.array_equal(np.asarray(new_w), np.asarray(w))


@pytest.mark.slow
@pytest.mark.parametrize("family", ["acgan", "proggan", "cpdgan"])
def test_float16_step_with_loss_scaling_is_within_tolerance_of_float32(family):
    """One SGD step in float16 (loss-scaled) against float32, under test_bf16's bounds (float16
    keeps 11 mantissa bits to bfloat16's 8, so the bfloat16 floor is a loose bound); the state
    carries the scale, the step was not skipped, and nothing float16 leaks into the state."""
    from tests.train import test_bf16 as bf16

    f32, f16 = bf16.CASES[family]("float32"), bf16.CASES[family]("float16")
    (m32, d32, _), (_, dfloor, _) = bf16.run_steps(f32, floor=True)
    ((m16, d16, state16),) = bf16.run_steps(f16)
    scales = state16.stats["loss_scale"]
    assert set(scales) == {"d", "g"} and "loss_scale" not in f32.init().stats
    for c in ("d", "g"):
        assert float(m16[f"{c}_skipped"]) == 0.0
        assert float(scales[c]["scale"]) == loss_scale.INITIAL
        assert int(scales[c]["good_steps"]) == 1
    leaves = jax.tree.leaves((state16.params, state16.opt_state, state16.stats, m16))
    assert not any(x.dtype == jnp.float16 for x in leaves)
    for name in m32:
        if "acc" in name or np.isnan(m32[name]):
            continue
        a, b = float(m32[name]), float(m16[name])
        assert abs(a - b) <= bf16.LOSS_RTOL * max(abs(a), 1.0), (family, name, a, b)
    for component in d32:
        rel = bf16._relative(d32[component], d16[component])
        floor = bf16._relative(d32[component], dfloor[component])
        print(f"{family} float16 update {component}: {rel:.3g} (bfloat16 floor {floor:.3g})")
        assert rel <= bf16.UPDATE_FLOOR_FACTOR * floor + bf16.UPDATE_ATOL, (component, rel)


@pytest.mark.slow
def test_float16_run_resumes_bitwise_with_its_loss_scale(tmp_path):
    """3 straight float16 AC-GAN steps == 2 steps, then resumed to 3: the scale state travels in
    the checkpoint (a fresh one would count 1 finite step, not 3)."""
    import dataclasses

    from jaxsyn.train import acgan
    from tests.train.helpers import assert_trees_equal, host

    tiny = acgan.ACGANTrainConfig.tiny(batch_size=8)
    config = dataclasses.replace(tiny, model=dataclasses.replace(tiny.model, dtype="float16"))
    cohort = acgan.load_cohort("phantom:vertebra:12", config)
    kw = dict(config=config, checkpoint_every=2, progress=False, devices=jax.devices()[:1])
    straight = acgan.run(tmp_path / "a", cohort, steps=3, **kw)
    acgan.run(tmp_path / "b", cohort, steps=2, **kw)
    resumed = acgan.run(tmp_path / "b", cohort, steps=3, resume=True, **kw)
    assert_trees_equal(host(resumed), host(straight))
    assert [int(resumed.stats["loss_scale"][c]["good_steps"]) for c in ("d", "g")] == [3, 3]
