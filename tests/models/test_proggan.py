"""prog-GAN modules: shapes, fade-in, the growing schedule, equalized lr, pixel norm, minibatch
stddev, the reference's auxiliary loss, both networks against a hand-written forward pass of the
reference's layers, gradients, conditioning, config errors.

Tolerance for float comparisons: 1e-5 (float32; a blend and its closed form round differently).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsyn.errors import ConfigError
from jaxsyn.models import proggan as model

TINY = model.ProgGANConfig.tiny()
TOL = dict(rtol=1e-5, atol=1e-5)
# Jitted: one compile per stage instead of one per primitive, op by op.
G = jax.jit(model.apply_generator, static_argnames=("config", "stage"))
D = jax.jit(model.apply_discriminator, static_argnames=("config", "stage"))


@pytest.fixture(scope="module")
def params():
    """Parameters of `init`'s shapes drawn on the host (kernels N(0, 1) as the equalized-lr
    storage; biases small, non-zero): no compiled init, which costs seconds on two cores."""
    rng = np.random.default_rng(0)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), TINY))
    return jax.tree_util.tree_map_with_path(
        lambda path, s: rng.normal(0, 1 if "kernel" in str(path) else 0.1, s.shape).astype(s.dtype),
        shapes,
    )


def _inputs(n=4, seed=1):
    kz, ky = jax.random.split(jax.random.key(seed))
    z = jax.random.normal(kz, (n, TINY.latent_dim))
    y = (jax.random.uniform(ky, (n, TINY.num_labels)) < 0.5).astype(jnp.float32)
    return z, y


def test_shapes_and_one_tree_for_every_stage(params):
    z, y = _inputs()
    for stage in (8, 16):
        x = G(params["g"], z, y, TINY, stage, 0.5)
        assert x.shape == (4, stage, stage, 1) and x.dtype == jnp.float32
        score, aux = D(params["d"], x, TINY, stage, 0.5)
        assert score.shape == (4,) and aux.shape == (4, TINY.num_labels + 1)
        assert bool(jnp.all(jnp.isfinite(x))) and bool(jnp.all(jnp.isfinite(score)))
    assert {f"torgb_{r}" for r in (4, 8, 16)} <= set(params["g"])
    assert {f"fromrgb_{r}" for r in (4, 8, 16)} <= set(params["d"])
    assert model.generate(params["g"], jax.random.key(0), y, TINY, 8).shape == (4, 16, 16, 1)
    # Karras et al.: widths min(8192 / 2^(log2 res - 1), 512); 512 up to 32 px, then halving.
    paper = model.ProgGANConfig(size=128)
    assert [paper.width(r) for r in (4, 8, 16, 32, 64, 128)] == [512, 512, 512, 512, 256, 128]
    assert paper.stages == (8, 16, 32, 64, 128) and paper.latent_dim == 512


def test_fade_in_blends_the_previous_stage(params):
    """G at stage 16 with alpha t = (1 - t) up(G at stage 8) + t G_16; D mirrors it."""
    z, y = _inputs()
    g, d = params["g"], params["d"]
    low = model.upsample(G(g, z, y, TINY, 8, 1.0))
    high = G(g, z, y, TINY, 16, 1.0)
    np.testing.assert_allclose(G(g, z, y, TINY, 16, 0.0), low, **TOL)
    blend = G(g, z, y, TINY, 16, 0.3)
    np.testing.assert_allclose(blend, 0.7 * low + 0.3 * high, **TOL)
    x = jax.random.normal(jax.random.key(2), (4, 16, 16, 1))
    d0 = D(d, x, TINY, 16, 0.0)
    d8 = D(d, model.downsample(x), TINY, 8, 1.0)
    np.testing.assert_allclose(d0[0], d8[0], **TOL)


def _reference_lod(kimg, res_log2, initial, train_kimg, trans_kimg):
    """The reference's TrainingSchedule (GAN_prog train.py), re-derived: lod counts down."""
    phase_dur = train_kimg + trans_kimg
    phase_idx = int(math.floor(kimg / phase_dur))
    phase_kimg = kimg - phase_idx * phase_dur
    lod = res_log2 - math.floor(math.log2(initial)) - phase_idx
    lod -= max(phase_kimg - train_kimg, 0.0) / trans_kimg
    return max(lod, 0.0)


@pytest.mark.parametrize("images", [0, 999, 1400_000, 1750_000, 2800_000, 4500_000, 9000_000])
def test_schedule_follows_the_reference(images):
    config = model.ProgGANConfig(size=32)
    lod = _reference_lod(images / 1000, 5, 8, 1400, 1400)
    level = 5 - lod
    assert model.fade_level(images, config, 1400_000, 1400_000) == pytest.approx(level)
    stage = model.stage_at(images, config, 1400_000, 1400_000)
    assert stage == 2 ** math.ceil(level - 1e-9)
    alpha = float(model.fade_alpha(jnp.int32(images), config, stage, 1400_000, 1400_000))
    assert alpha == pytest.approx(1.0 if level == int(level) else level - math.floor(level))


def test_equalized_lr_pixel_norm_and_minibatch_stddev():
    x = jax.random.normal(jax.random.key(0), (8, 3, 3, 5))
    layer = model.EqDense(7)
    p = jax.jit(layer.init)(jax.random.key(1), x)
    w = np.asarray(p["params"]["kernel"])
    assert abs(w.std() - 1) < 0.5  # N(0, 1) storage; the scale lives in the forward pass
    expected = np.asarray(x) @ w * math.sqrt(2 / 5)
    np.testing.assert_allclose(jax.jit(layer.apply)(p, x), expected, **TOL)
    a = np.asarray(x, np.float64)
    pn = a / np.sqrt((a**2).mean(-1, keepdims=True) + 1e-8)
    np.testing.assert_allclose(jax.jit(model.pixel_norm)(x), pn, **TOL)
    out = np.asarray(jax.jit(model.minibatch_stddev, static_argnums=1)(x, 4))
    assert out.shape == (8, 3, 3, 6)
    for grp in range(2):  # consecutive groups of 4
        sl = a[4 * grp : 4 * grp + 4]
        expected = np.sqrt(sl.var(0) + 1e-8).mean()
        np.testing.assert_allclose(out[4 * grp : 4 * grp + 4, ..., 5], expected, **TOL)
    np.testing.assert_allclose(out[..., :5], a, **TOL)
    with pytest.raises(ConfigError, match="multiple of the group"):
        model.minibatch_stddev(x[:6], 4)


def test_aux_loss_is_the_references_softmax_over_normalised_labels():
    labels = jnp.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]], jnp.float32)
    t = np.asarray(model.aux_targets(labels))
    np.testing.assert_allclose(t, [[0.5, 0, 0.5, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
    logits = jax.random.normal(jax.random.key(0), (3, 4))
    logp = np.asarray(jax.nn.log_softmax(logits))
    expected = -(t * logp).sum(-1).mean()  # softmax cross-entropy against y / sum(y)
    got = jax.jit(lambda lg, lb: jnp.mean(optax.softmax_cross_entropy(lg, model.aux_targets(lb))))(
        logits, labels
    )
    np.testing.assert_allclose(got, expected, **TOL)


def _eq(w, gain=model.SQRT2):
    """The reference's get_weight: N(0, 1) storage times gain / sqrt(prod(shape[:-1]))."""
    return w * (gain / math.sqrt(np.prod(w.shape[:-1])))


def _conv(x, w, b, stride=1, pad=1):
    y = jax.lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad), (pad, pad)],
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip
    return y + b


def _lrelu(v):
    return jnp.maximum(v, 0.2 * v)


def _pn(v):
    return v / jnp.sqrt(jnp.mean(v * v, -1, keepdims=True) + 1e-8)


def _reference_generator_8(p, z, y):
    """GAN_prog G_paper at 8 px (lod 1, fully faded in), written out."""
    x = _pn(jnp.concatenate([z, y], -1))
    h = x @ _eq(p["dense_4"]["kernel"], math.sqrt(2) / 4)
    h = _pn(_lrelu(h.reshape(-1, 4, 4, TINY.width(4)) + p["bias_4"]))  # bias per channel
    h = _pn(_lrelu(_conv(h, _eq(p["conv_4"]["kernel"]), p["conv_4"]["bias"])))
    h = model.upsample(h)  # fused upscale2d_conv2d == nearest upsampling, then the conv
    h = _pn(_lrelu(_conv(h, _eq(p["conv0_8"]["kernel"]), p["conv0_8"]["bias"])))
    h = _pn(_lrelu(_conv(h, _eq(p["conv1_8"]["kernel"]), p["conv1_8"]["bias"])))
    return _conv(h, _eq(p["torgb_8"]["kernel"], 1), p["torgb_8"]["bias"], pad=0)


def _reference_discriminator_16(p, x):
    """GAN_prog D_paper at 16 px (lod 0): the activation after the fused conv2d_downscale2d,
    whose kernel is the 3x3 one zero-padded, its four shifted copies averaged, at stride 2."""
    h = _lrelu(_conv(x, _eq(p["fromrgb_16"]["kernel"]), p["fromrgb_16"]["bias"], pad=0))
    for res in (16, 8):
        h = _lrelu(_conv(h, _eq(p[f"conv0_{res}"]["kernel"]), p[f"conv0_{res}"]["bias"]))
        w = jnp.pad(_eq(p[f"conv1_{res}"]["kernel"]), ((1, 1), (1, 1), (0, 0), (0, 0)))
        w = (w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]) * 0.25
        h = _lrelu(_conv(h, w, p[f"conv1_{res}"]["bias"], stride=2))
    h = model.minibatch_stddev(h, TINY.mbstd_group)
    h = _lrelu(_conv(h, _eq(p["conv_4"]["kernel"]), p["conv_4"]["bias"]))
    h = h.reshape(h.shape[0], -1)
    h = _lrelu(h @ _eq(p["dense_4"]["kernel"]) + p["dense_4"]["bias"])
    out = h @ _eq(p["out"]["kernel"], 1) + p["out"]["bias"]
    return out[:, 0], out[:, 1:]


def test_networks_match_a_forward_pass_of_the_references_layers(params):
    z, y = _inputs()
    want = jax.jit(_reference_generator_8)(params["g"], z, y)
    np.testing.assert_allclose(G(params["g"], z, y, TINY, 8, 1.0), want, rtol=1e-4, atol=1e-4)
    x = jax.random.normal(jax.random.key(5), (4, 16, 16, 1))
    score, aux = jax.jit(_reference_discriminator_16)(params["d"], x)
    got_score, got_aux = D(params["d"], x, TINY, 16, 1.0)
    np.testing.assert_allclose(got_score, score, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_aux, aux, rtol=1e-4, atol=1e-4)


def test_every_parameter_gets_a_gradient_and_conditions_change_images(params):
    z, y = _inputs()

    def loss(p):
        x = G(p["g"], z, y, TINY, 16, 0.5)
        score, aux = D(p["d"], x, TINY, 16, 0.5)
        return jnp.sum(score) + jnp.sum(aux)

    grads = jax.jit(jax.grad(loss))(params)
    unused = {"torgb_4", "fromrgb_4"}  # read only at stage 8 while it fades in from 4
    for part in ("g", "d"):
        for name, leaves in grads[part].items():
            norm = sum(float(jnp.abs(v).sum()) for v in jax.tree.leaves(leaves))
            assert (norm == 0) == (name in unused), (part, name)
    a = model.generate(params["g"], jax.random.key(3), y, TINY)
    b = model.generate(params["g"], jax.random.key(3), 1 - y, TINY)
    assert float(jnp.abs(a - b).mean()) > 1e-3
    np.testing.assert_array_equal(a, model.generate(params["g"], jax.random.key(3), y, TINY))


def test_config_errors():
    with pytest.raises(ConfigError, match="size is 24"):
        model.ProgGANConfig(size=24)
    with pytest.raises(ConfigError, match="initial_size is 64"):
        model.ProgGANConfig(size=32, initial_size=64)
    with pytest.raises(ConfigError, match="expected one of"):
        model.apply_generator({}, jnp.zeros((1, 16)), jnp.zeros((1, 3)), TINY, 32)
    with pytest.raises(ConfigError, match=r"expected \[B, 3\]"):
        model.generate({}, jax.random.key(0), jnp.zeros((2, 4)), TINY)
