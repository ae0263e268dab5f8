"""AC-GAN (pGAN) modules: shapes, gradients, conditioning, morphing, config errors.

Tolerance for float comparisons: 1e-5 (float32; the same convolutions over batches of different
sizes may be tiled differently by XLA, so equal inputs agree to rounding, not bit for bit).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsyn.errors import ConfigError
from jaxsyn.models import acgan as model

TINY = model.ACGANConfig.tiny()
TOL = dict(rtol=1e-5, atol=1e-5)
# jitted: one compilation per config instead of one per eager operation
init = jax.jit(model.init, static_argnums=1)


@pytest.fixture(scope="module")
def params():
    return init(jax.random.key(0), TINY)


@pytest.fixture(scope="module")
def stats():
    return model.init_stats(TINY)


@pytest.mark.parametrize("size", [8, 16, 32])
def test_shapes_and_dtypes(size):
    """Shapes and dtypes at every size by abstract evaluation (nothing compiled); values at the
    tiny size in the tests below."""
    config = model.ACGANConfig.tiny(size=size)

    def forward(key):
        p = model.init(key, config)
        x = model.generate(p["g"], key, jnp.array([0, 1, 2]), config, model.init_stats(config))
        return x, model.apply_discriminator(p["d"], x, config)

    x, (real, classes) = jax.eval_shape(forward, jax.random.key(0))
    assert x.shape == (3, size, size, config.channels) and x.dtype == jnp.float32
    assert real.shape == (3,) and classes.shape == (3, config.num_classes)
    assert real.dtype == classes.dtype == jnp.float32


def test_generated_values_are_finite_and_in_range(params, stats):
    x = model.generate(params["g"], jax.random.key(1), jnp.array([0, 1, 2]), TINY, stats)
    assert x.shape == (3, TINY.size, TINY.size, TINY.channels)
    assert bool(jnp.all(jnp.abs(x) <= 1)) and bool(jnp.all(jnp.isfinite(x)))
    assert float(jnp.std(x)) > 0  # not a constant image


def test_paper_architecture_at_64():
    """Section 6.2: G 512-256-128-64-9 from 103 inputs, D 64-128-256-512-64, 4x4 kernels."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), model.ACGANConfig()))
    g = [shapes["g"][f"ConvTranspose_{i}"]["kernel"].shape for i in range(5)]
    assert g == [
        (4, 4, 103, 512),
        (4, 4, 512, 256),
        (4, 4, 256, 128),
        (4, 4, 128, 64),
        (4, 4, 64, 9),
    ]
    d = [shapes["d"][f"Conv_{i}"]["kernel"].shape[-1] for i in range(5)]
    assert d == [64, 128, 256, 512, 64]
    # the reference's D: no bias on the first and last convolutions, PyTorch's on the middle ones
    biases = [shapes["d"][f"Conv_{i}"].get("bias") for i in range(5)]
    assert [None if b is None else b.shape for b in biases] == [None, (128,), (256,), (512,), None]
    assert shapes["d"]["class_head"]["Dense_0"]["kernel"].shape == (64, 3)
    assert model.ACGANConfig().batch_norm is False  # the reference's default
    assert not model.init_stats(model.ACGANConfig())


def test_discriminator_bias_has_pytorchs_initialisation(params):
    """The middle convolution's bias (Conv_1 at 16 px) ~ U(+-1/sqrt(fan_in)), fan_in = 4 * 4 * 8:
    PyTorch's Conv2d default, which the reference's N(0, 0.02) initialisation leaves alone."""
    bias = np.asarray(params["d"]["Conv_1"]["bias"])
    bound = 1 / np.sqrt(4 * 4 * TINY.width)
    assert bias.shape == (2 * TINY.width,) and np.abs(bias).max() <= bound
    assert np.abs(bias).max() > bound / 2  # drawn over the range, not zeros
    assert "bias" not in params["d"]["Conv_0"] and "bias" not in params["d"]["Conv_2"]


def test_every_gradient_finite_and_nonzero(params, stats):
    labels = jnp.array([0, 1, 2, 1])
    inputs = model.generator_input(
        jax.nn.one_hot(labels, 3), jax.random.normal(jax.random.key(2), (4, TINY.latent_dim))
    )
    real = jax.random.uniform(jax.random.key(3), (4, 16, 16, 9), minval=-1, maxval=1)

    def d_loss(d):
        fake, _ = model.apply_generator(params["g"], inputs, TINY, stats=stats, update=True)
        total = 0.0
        for x, target in ((real, 1.0), (fake, 0.0)):
            logit, cls = model.apply_discriminator(d, x, TINY)
            total += jnp.mean(jax.nn.softplus(-logit if target else logit))
            total += jnp.mean(-jax.nn.log_softmax(cls)[jnp.arange(4), labels])
        return total

    def g_loss(g):
        fake, _ = model.apply_generator(g, inputs, TINY, stats=stats, update=True)
        logit, cls = model.apply_discriminator(params["d"], fake, TINY)
        return jnp.mean(jax.nn.softplus(-logit)) + jnp.mean(
            -jax.nn.log_softmax(cls)[jnp.arange(4), labels]
        )

    both = jax.jit(lambda g, d: {"d": jax.grad(d_loss)(d), "g": jax.grad(g_loss)(g)})
    for name, grads in both(params["g"], params["d"]).items():
        for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
            where = f"{name}{jax.tree_util.keystr(path)}"
            assert bool(jnp.all(jnp.isfinite(g))), where
            assert float(jnp.max(jnp.abs(g))) > 0, where


def test_running_stats_update_and_eval_mode(params, stats):
    inputs = model.generator_input(
        jax.nn.one_hot(jnp.array([0, 1, 2, 0]), 3), jnp.ones((4, TINY.latent_dim))
    )
    _, new = model.apply_generator(params["g"], inputs, TINY, stats=stats, update=True)
    assert jax.tree.structure(new) == jax.tree.structure(stats)
    assert any(
        not np.allclose(a, b)
        for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(stats), strict=True)
    )
    with pytest.raises(ConfigError, match="batch_norm"):
        model.generate(params["g"], jax.random.key(0), jnp.array([0]), TINY)


def test_generation_is_deterministic_and_per_example(params, stats):
    key = jax.random.key(5)
    a = model.generate(params["g"], key, jnp.array([0, 1, 2]), TINY, stats)
    b = model.generate(params["g"], key, jnp.array([0, 1, 2]), TINY, stats)
    np.testing.assert_array_equal(a, b)
    # eval-mode BatchNorm and per-example noise: image 0 does not depend on the rest of the batch
    first = model.generate(params["g"], key, jnp.array([0]), TINY, stats)
    np.testing.assert_allclose(first[0], a[0], **TOL)


def test_conditions_change_the_output(params, stats):
    key = jax.random.key(6)
    outs = [model.generate(params["g"], key, jnp.array([k]), TINY, stats) for k in range(3)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert float(jnp.max(jnp.abs(outs[i] - outs[j]))) > 1e-4, (i, j)
    onehot = model.generate(params["g"], key, jax.nn.one_hot(jnp.array([1]), 3), TINY, stats)
    np.testing.assert_array_equal(onehot, outs[1])  # indices and one-hot vectors agree


def test_morph_conditions_follow_the_formula():
    n = 4
    c = np.asarray(model.morph_conditions(TINY, 0, 2, n))
    expected = np.array([[(n - t) / n, 0, t / n] for t in range(n + 1)], np.float32)
    np.testing.assert_allclose(c, expected, rtol=0, atol=1e-7)
    np.testing.assert_allclose(c.sum(1), 1, atol=1e-7)


def test_morph_endpoints_equal_generate(params, stats):
    key = jax.random.key(7)
    frames = model.morph(params["g"], key, TINY, 0, 2, 4, stats)
    assert frames.shape == (5, 16, 16, 9)
    start = model.generate(params["g"], key, jnp.array([0]), TINY, stats)[0]
    end = model.generate(params["g"], key, jnp.array([2]), TINY, stats)[0]
    np.testing.assert_allclose(frames[0], start, **TOL)
    np.testing.assert_allclose(frames[-1], end, **TOL)
    # the middle frame is G at the 50/50 condition with the same z
    mid = model.generate(params["g"], key, jnp.array([[0.5, 0.0, 0.5]]), TINY, stats)[0]
    np.testing.assert_allclose(frames[2], mid, **TOL)
    assert float(jnp.max(jnp.abs(frames[0] - frames[2]))) > 1e-5


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        (dict(size=48), "size is 48; expected a power of two"),
        (dict(size=4), "size is 4"),
        (dict(num_classes=1), "num_classes is 1"),
        (dict(width=0), "width is 0"),
        (dict(dtype="int8"), "dtype"),
    ],
)
def test_bad_config_is_a_config_error(fields, match):
    with pytest.raises(ConfigError, match=match):
        model.ACGANConfig(**fields)


def test_bad_arguments_are_config_errors(params, stats):
    with pytest.raises(ConfigError, match="to_class is 3"):
        model.morph_conditions(TINY, 0, 3, 4)
    with pytest.raises(ConfigError, match="frames is 0"):
        model.morph_conditions(TINY, 0, 1, 0)
    with pytest.raises(ConfigError, match="conditions of shape"):
        model.generate(params["g"], jax.random.key(0), jnp.ones((2, 4)), TINY, stats)
