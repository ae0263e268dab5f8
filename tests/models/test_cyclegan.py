"""CycleGAN's translator: shapes, the 9/6 block rule, the PatchGAN's 70 x 70 receptive field."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsyn.errors import ConfigError
from jaxsyn.models import cyclegan

TINY = cyclegan.CycleGANConfig.tiny()


def _shapes(config):
    return jax.eval_shape(functools.partial(cyclegan.init, config=config), jax.random.key(0))


def test_shapes_range_and_determinism():
    params = jax.jit(cyclegan.init, static_argnums=1)(jax.random.key(0), TINY)
    x = jax.random.uniform(jax.random.key(1), (3, 16, 16, 1), minval=-1, maxval=1)
    g = jax.jit(cyclegan.translate, static_argnums=2)
    y = g(params["g"], x, TINY)
    assert y.shape == x.shape and y.dtype == jnp.float32
    assert float(jnp.abs(y).max()) <= 1.0 and float(jnp.std(y)) > 0
    scores = cyclegan.discriminate(params["d"], x, TINY)
    p = cyclegan.patch_size(16, TINY.d_layers)
    assert scores.shape == (3, p, p, 1) and p == 2
    again = jax.jit(cyclegan.init, static_argnums=1)(jax.random.key(0), TINY)
    np.testing.assert_array_equal(g(again["g"], x, TINY), y)
    # each image is translated on its own (instance norm): batch-independent
    np.testing.assert_allclose(g(params["g"], x[::-1], TINY), y[::-1], atol=1e-6)
    half = g(params["g"], x, cyclegan.CycleGANConfig.tiny(dtype="bfloat16"))
    assert half.dtype == jnp.float32 and float(jnp.abs(half - y).max()) < 0.1


def test_residual_blocks_follow_the_size():
    """Appendix 7.2 of CycleGAN: 9 residual blocks at 256 px, 6 at 128 px and below."""
    for size, blocks in ((256, 9), (128, 6), (64, 6)):
        config = cyclegan.CycleGANConfig(size=size)
        assert config.blocks == blocks
        g = _shapes(config)["g"]
        # c7s1, 2 down, 2 per block, c7s1 out: convolutions; 2 transposed
        convs = [k for k in g if k.startswith("Conv_")]
        assert len(convs) == 3 + 2 * blocks + 1, size
        assert sum(k.startswith("ConvTranspose_") for k in g) == 2
    assert cyclegan.CycleGANConfig(size=256, n_blocks=3).blocks == 3
    g = _shapes(cyclegan.CycleGANConfig())["g"]
    widths = [g[f"Conv_{i}"]["kernel"].shape for i in range(3)]
    assert widths == [(7, 7, 1, 64), (3, 3, 64, 128), (3, 3, 128, 256)]  # c7s1-64, d128, d256
    d = _shapes(cyclegan.CycleGANConfig())["d"]
    assert [d[f"Conv_{i}"]["kernel"].shape[-1] for i in range(5)] == [64, 128, 256, 512, 1]


def test_patchgan_sees_70_by_70(monkeypatch):
    assert cyclegan.receptive_field(3) == 70 and cyclegan.receptive_field(2) == 34
    # measured: the input pixels one central output depends on span 70 x 70 (through the
    # convolutions; instance norm's statistics reach the whole image, so it is taken out here)
    monkeypatch.setattr(cyclegan, "instance_norm", lambda x: x)
    config = cyclegan.CycleGANConfig(size=96, d_width=1, d_layers=3)
    d = cyclegan.init(jax.random.key(0), config)["d"]
    x = jax.random.normal(jax.random.key(1), (1, 96, 96, 1))
    p = cyclegan.patch_size(96, 3)
    assert p == 10
    grad = jax.jit(jax.grad(lambda x: cyclegan.discriminate(d, x, config)[0, p // 2, p // 2, 0]))(x)
    rows, cols = np.nonzero(np.asarray(grad[0, ..., 0]))
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


def test_config_errors():
    with pytest.raises(ConfigError, match="size is 30"):
        cyclegan.CycleGANConfig(size=30)
    with pytest.raises(ConfigError, match="d_layers is 3 at size 16"):
        cyclegan.CycleGANConfig.tiny(d_layers=3)
    with pytest.raises(ConfigError, match="dtype"):
        cyclegan.CycleGANConfig(dtype="int8")
