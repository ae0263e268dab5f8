"""cpD-GAN modules: shapes, conditional pixel norm, the projection output, output skips,
gradients, conditioning.

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
    p = jax.tree.map(lambda v: v + 0.1, p)  # move gamma's bias off 1 and beta's off 0
    got = np.asarray(jax.jit(layer.apply)(p, a, cond))
    an, c = np.asarray(a, np.float64), np.asarray(cond, np.float64)
    scale = 1 / math.sqrt(5)  # equalized lr, gain 1
    gamma = c @ np.asarray(p["params"]["gamma"]["kernel"]) * scale + p["params"]["gamma"]["bias"]
    beta = c @ np.asarray(p["params"]["beta"]["kernel"]) * scale + p["params"]["beta"]["bias"]
    b = an / np.sqrt((an**2).mean(-1, keepdims=True) + 1e-8)
    np.testing.assert_allclose(got, b * gamma[:, None, None] + beta[:, None, None], **TOL)
    fresh = jax.jit(layer.init)(jax.random.key(2), a, cond)
    np.testing.assert_array_equal(fresh["params"]["gamma"]["bias"], 1.0)  # starts as pixel norm


def test_projection_output_equals_the_inner_product(params):
    z, y = _inputs()
    x = G(params["g"], z, y, TINY)
    h = np.asarray(jax.jit(model.discriminator_features, static_argnums=2)(params["d"], x, TINY))
    d = params["d"]
    scale = 1 / math.sqrt(h.shape[1])
    linear = h @ np.asarray(d["out"]["kernel"])[:, 0] * scale + float(d["out"]["bias"][0])
    embed = np.asarray(y) @ (np.asarray(d["embed"]["kernel"]) * scale).T  # embed(y) = W y
    expected = linear + (embed * h).sum(-1)
    np.testing.assert_allclose(D(d, x, y, TINY), expected, rtol=1e-4, atol=1e-5)
    # Only the projection reads y: two label sets differ by <W (y1 - y2), h>.
    diff = D(d, x, y, TINY) - D(d, x, 1 - y, TINY)
    w = np.asarray(d["embed"]["kernel"]) * scale
    np.testing.assert_allclose(diff, ((h @ w) * (2 * np.asarray(y) - 1)).sum(-1), **TOL)


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
