"""cpD-GAN modules: shapes, conditional pixel norm, the label-conditioned output, output skips,
both networks against a hand-written forward pass of the reference's layers, gradients,
conditioning.

Tolerance for float comparisons: 1e-5 (float32; closed forms in numpy round differently).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsyn.errors import ConfigError
from jaxsyn.models import cpdgan as model

TINY = model.CPDGANConfig.tiny()
TOL = dict(rtol=1e-5, atol=1e-5)
G = jax.jit(model.apply_generator, static_argnames=("config",))
D = jax.jit(model.apply_discriminator, static_argnames=("config",))


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


def test_shapes_and_paper_widths(params):
    z, y = _inputs()
    x = G(params["g"], z, y, TINY)
    assert x.shape == (4, 16, 16, 1) and x.dtype == jnp.float32
    score = D(params["d"], x, y, TINY)
    assert score.shape == (4,) and bool(jnp.all(jnp.isfinite(score)))
    paper = model.CPDGANConfig(size=128)
    assert [paper.width(r) for r in (4, 32, 64, 128)] == [512, 512, 512, 256]
    assert {f"torgb_{r}" for r in (4, 8, 16)} <= set(params["g"])  # a to-RGB per resolution
    assert {"skip_16", "skip_8"} <= set(params["d"]["features"])  # residual D


def test_conditional_pixel_norm_equals_its_formula():
    a = jax.random.normal(jax.random.key(0), (3, 4, 4, 6))
    cond = jax.random.normal(jax.random.key(1), (3, 5))
    layer = model.CondPixelNorm()
    p = jax.jit(layer.init)(jax.random.key(2), a, cond)
    # the reference's gamma and beta start with zero biases: gamma is dense(cond), not 1 + ...
    for part in ("gamma", "beta"):
        np.testing.assert_array_equal(p["params"][part]["bias"], 0.0)
    p = jax.tree.map(lambda v: v + 0.1, p)  # move the biases off 0
    got = np.asarray(jax.jit(layer.apply)(p, a, cond))
    an, c = np.asarray(a, np.float64), np.asarray(cond, np.float64)
    scale = 1 / math.sqrt(5)  # equalized lr, gain 1
    gamma = c @ np.asarray(p["params"]["gamma"]["kernel"]) * scale + p["params"]["gamma"]["bias"]
    beta = c @ np.asarray(p["params"]["beta"]["kernel"]) * scale + p["params"]["beta"]["bias"]
    b = an / np.sqrt((an**2).mean(-1, keepdims=True) + 1e-8)
    np.testing.assert_allclose(got, b * gamma[:, None, None] + beta[:, None, None], **TOL)


def test_output_is_the_references_sum_over_labels(params):
    """D(x, y) = sum_l y_l (v_l^T h + b_l) (GAN_cpd D_paper's output), y with the implicit
    "no finding" slot: no unconditional term, and an all-zero row reads the slot."""
    z, y = _inputs()
    y = y.at[0].set(0.0).at[1].set(jnp.array([1.0, 1.0, 0.0]))
    x = G(params["g"], z, y, TINY)
    h = np.asarray(jax.jit(model.discriminator_features, static_argnums=2)(params["d"], x, TINY))
    out = params["d"]["out"]
    per_label = h @ (np.asarray(out["kernel"]) / math.sqrt(h.shape[1])) + np.asarray(out["bias"])
    yy = np.concatenate([np.asarray(y), np.asarray(y).sum(-1, keepdims=True) == 0], axis=1)
    np.testing.assert_allclose(D(params["d"], x, y, TINY), (per_label * yy).sum(-1), **TOL)
    assert set(params["d"]) == {"features", "out"}  # no separate linear(h) or embedding


def _eq(w, gain, fan_in=None):
    """The reference's get_weight: N(0, 1) storage times gain / sqrt(fan_in), fan_in the
    product of every dimension but the last (the output maps)."""
    return w * (gain / math.sqrt(fan_in or np.prod(w.shape[:-1])))


def _conv(x, w, b=None, stride=1, pad=1):
    """[B, H, W, C] * w [k, k, C, F] at `stride`, zero padding `pad` each side (TF's 'SAME' for
    the kernels used here), plus the bias b [F]."""
    y = jax.lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad), (pad, pad)],
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip
    return y if b is None else y + b


def _conv_down(x, w, b=None):
    """The reference's conv2d_downscale2d (gain sqrt(2)): the equalized kernel zero-padded by 1,
    its four shifted copies averaged into a (k + 1)^2 kernel applied at stride 2."""
    w = jnp.pad(_eq(w, math.sqrt(2)), ((1, 1), (1, 1), (0, 0), (0, 0)))
    w = (w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]) * 0.25
    return _conv(x, w, b, stride=2, pad=(w.shape[0] - 2) // 2)


def _dense(x, p, gain=1.0):
    y = x @ _eq(p["kernel"], gain)
    return y + p["bias"] if "bias" in p else y


def _lrelu(v):
    return jnp.maximum(v, 0.2 * v)


def _reference_generator(p, z, y):
    """GAN_cpd G_paper ('skip', conditional pixel norm) written out for TINY (16 px)."""
    pn = lambda v: v / jnp.sqrt(jnp.mean(v * v, -1, keepdims=True) + 1e-8)  # noqa: E731
    combo = jnp.concatenate([z, y], -1)

    def cpn(v, q):  # gamma, beta = dense(combo) + bias, gain 1, per channel
        gamma, beta = _dense(combo, q["gamma"]), _dense(combo, q["beta"])
        return pn(v) * gamma[:, None, None] + beta[:, None, None]

    h = _dense(pn(combo), p["dense_4"]).reshape(-1, 4, 4, TINY.width(4)) + p["bias_4"]
    h = cpn(_lrelu(h), p["cpn0_4"])
    h = cpn(_lrelu(_conv(h, _eq(p["conv_4"]["kernel"], 1), p["conv_4"]["bias"])), p["cpn1_4"])
    img = _conv(h, _eq(p["torgb_4"]["kernel"], 1), p["torgb_4"]["bias"], pad=0)
    for res in (8, 16):
        # fused upscale2d_conv2d == nearest upsampling, then the 3x3 conv; gain sqrt(2) over a
        # fan-in the reference counts from the kernel's *output* maps
        c0, c1, rgb = p[f"conv0_{res}"], p[f"conv1_{res}"], p[f"torgb_{res}"]
        w = _eq(c0["kernel"], math.sqrt(2), fan_in=9 * c0["kernel"].shape[-1])
        h = cpn(_lrelu(_conv(model.upsample(h), w, c0["bias"])), p[f"cpn0_{res}"])
        h = cpn(_lrelu(_conv(h, _eq(c1["kernel"], 1), c1["bias"])), p[f"cpn1_{res}"])
        img = model.upsample(img) + _conv(h, _eq(rgb["kernel"], 1), rgb["bias"], pad=0)
    return img


def _reference_features(p, x):
    """GAN_cpd D_paper ('resnet') up to the output's input h, for TINY (16 px)."""
    h = _lrelu(_conv(x, _eq(p["fromrgb"]["kernel"], 1), p["fromrgb"]["bias"], pad=0))
    for res in (16, 8):
        c0, c1 = p[f"conv0_{res}"], p[f"conv1_{res}"]
        t = _lrelu(_conv(h, _eq(c0["kernel"], 1), c0["bias"]))
        t = _lrelu(_conv_down(t, c1["kernel"], c1["bias"]))  # the activation after the pooling
        h = (t + _conv_down(h, p[f"skip_{res}"]["kernel"])) / math.sqrt(2)
    h = model.minibatch_stddev(h, TINY.mbstd_group)
    h = _lrelu(_conv(h, _eq(p["conv_4"]["kernel"], 1), p["conv_4"]["bias"]))
    return _lrelu(_dense(h.reshape(h.shape[0], -1), p["dense_4"]))


def test_networks_match_a_forward_pass_of_the_references_layers(params):
    """G: latents pixel-normalised before the dense layer, gains 1 except the upsampling conv
    (sqrt(2), fan-in from its output maps); D: activation after the fused conv + downscale,
    gains 1 except the downsampling and skip convs (sqrt(2))."""
    z, y = _inputs()
    ref = jax.jit(_reference_generator)(params["g"], z, y)
    np.testing.assert_allclose(G(params["g"], z, y, TINY), ref, rtol=1e-4, atol=1e-4)
    x = jax.random.normal(jax.random.key(5), (4, 16, 16, 1))
    h = jax.jit(model.discriminator_features, static_argnums=2)(params["d"], x, TINY)
    want = jax.jit(_reference_features)(params["d"]["features"], x)
    np.testing.assert_allclose(h, want, rtol=1e-4, atol=1e-4)


def test_output_skips_sum_every_resolution(params):
    """Zeroing the 16 px to-RGB leaves up(image at 8 px): the image is a sum over resolutions."""
    z, y = _inputs()
    g = dict(params["g"])
    g["torgb_16"] = jax.tree.map(jnp.zeros_like, g["torgb_16"])
    x = np.asarray(G(g, z, y, TINY))
    np.testing.assert_allclose(x[:, ::2, ::2], x[:, 1::2, 1::2], **TOL)  # nearest-upsampled
    assert float(np.abs(x - np.asarray(G(params["g"], z, y, TINY))).max()) > 1e-4


def test_every_parameter_gets_a_gradient_and_conditions_change_images(params):
    z, y = _inputs()

    def loss(p):
        return jnp.sum(model.apply_discriminator(p["d"], G(p["g"], z, y, TINY), y, TINY))

    grads = jax.jit(jax.grad(loss))(params)
    for path, leaf in jax.tree_util.tree_flatten_with_path(grads)[0]:
        assert float(jnp.abs(leaf).sum()) > 0, jax.tree_util.keystr(path)
    a = model.generate(params["g"], jax.random.key(3), y, TINY)
    b = model.generate(params["g"], jax.random.key(3), 1 - y, TINY)
    assert float(jnp.abs(a - b).mean()) > 1e-3
    with pytest.raises(ConfigError, match=r"expected \[B, 3\]"):
        model.generate(params["g"], jax.random.key(0), jnp.zeros((2, 4)), TINY)
    with pytest.raises(ConfigError, match="CPDGANConfig.size is 12"):
        model.CPDGANConfig(size=12)
