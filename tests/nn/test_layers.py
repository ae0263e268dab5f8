"""The shared 3D blocks against plain references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsyn.nn.layers import GroupNorm, UpConv3d, group_stats, upsample2


def test_upsample2_is_nearest_neighbour():
    x = jnp.arange(8.0).reshape(1, 2, 2, 2, 1)
    y = upsample2(x)
    assert y.shape == (1, 4, 4, 4, 1)
    np.testing.assert_array_equal(
        y[0, ..., 0], np.kron(np.asarray(x[0, ..., 0]), np.ones((2, 2, 2)))
    )


@pytest.mark.parametrize("shape", [(2, 5, 6, 7, 3), (1, 1, 2, 3, 8)])
def test_fused_upconv_equals_upsample_then_conv(shape):
    x = jax.random.normal(jax.random.key(0), shape)
    fused, plain = UpConv3d(4), UpConv3d(4, fused=False)
    params = fused.init(jax.random.key(1), x)
    reference = jax.lax.conv_general_dilated(
        upsample2(x), params["params"]["kernel"], (1, 1, 1), [(1, 1)] * 3,
        dimension_numbers=("NDHWC", "DHWIO", "NDHWC"),
    ) + params["params"]["bias"]  # fmt: skip
    np.testing.assert_allclose(plain.apply(params, x), reference, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused.apply(params, x), reference, rtol=1e-5, atol=1e-5)

    def loss(module):
        return lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))

    g_fused = jax.grad(loss(fused), argnums=(0, 1))(params, x)
    g_plain = jax.grad(loss(plain), argnums=(0, 1))(params, x)
    for a, b in zip(jax.tree.leaves(g_fused), jax.tree.leaves(g_plain), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_group_norm_matches_a_numpy_reference_and_external_stats():
    x = jax.random.normal(jax.random.key(0), (2, 3, 4, 5, 16)) * 3 + 1
    norm = GroupNorm(16, groups=8)
    params = norm.init(jax.random.key(1), x)
    g = np.asarray(x).reshape(2, 3, 4, 5, 8, 2)
    mean = g.mean(axis=(1, 2, 3, 5), keepdims=True)
    var = g.var(axis=(1, 2, 3, 5), keepdims=True)
    expected = ((g - mean) / np.sqrt(var + 1e-5)).reshape(x.shape)
    np.testing.assert_allclose(norm.apply(params, x), expected, rtol=1e-5, atol=1e-5)
    m, v = group_stats(x, 8)
    split = norm.apply(params, x, m, v, method=GroupNorm.normalize)
    np.testing.assert_array_equal(split, norm.apply(params, x))


def test_group_norm_refuses_channels_that_do_not_split():
    with pytest.raises(ValueError, match="12 channels do not split into 8 groups"):
        GroupNorm(12, 8).init(jax.random.key(0), jnp.zeros((1, 2, 2, 2, 12)))
