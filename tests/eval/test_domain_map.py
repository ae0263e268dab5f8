"""Issue 17.7's attack-only domain space: `features.lowpass` and `classifiers.embed_map` (the
last feature map before global pooling, averaged to at most a grid of cells)."""

import jax
import numpy as np
import pytest

from jaxsyn.errors import ConfigError, DataError
from jaxsyn.eval import classifiers as C
from jaxsyn.eval import features as feats


def test_lowpass_is_a_normalised_gaussian_per_image_and_channel():
    x = np.zeros((2, 15, 15, 2), np.float32)
    x[0, 7, 7, 0] = 1.0  # a delta: the blurred image is the kernel itself
    x[1] = 0.25  # a constant stays constant (mirrored edges)
    y = feats.lowpass(x, 1.0)
    # scipy's kernel: exp(-k^2 / (2 sigma^2)) at the integer offsets |k| <= 4 sigma, normalised,
    # applied along H and W (separable)
    k = np.exp(-0.5 * np.arange(-4, 5) ** 2)
    k /= k.sum()
    np.testing.assert_allclose(y[0, 3:12, 3:12, 0], np.outer(k, k), rtol=1e-5, atol=1e-7)
    assert y[0, ..., 1].max() == 0.0  # channels are blurred apart
    assert y[0].sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(y[1], 0.25, rtol=1e-6)
    with pytest.raises(ConfigError, match="sigma: got 0"):
        feats.lowpass(x, 0)
    with pytest.raises(DataError, match=r"shape \(15, 15\)"):
        feats.lowpass(x[0, ..., 0])


# the tiny models' last maps on 32 x 32 are 8 x 8: DenseNet's stem and one transition halve it,
# ResNet's stem and second stage; ResNet (2 s) in the slow target only
@pytest.mark.parametrize(
    "make, side",
    [(C.DenseNetConfig.tiny, 8), pytest.param(C.ResNetConfig.tiny, 8, marks=pytest.mark.slow)],
)
def test_embed_map_averages_the_map_that_embed_pools(make, side):
    config = make(in_channels=1, num_outputs=2)
    variables = C.init(jax.random.key(0), config, 32)
    x = np.random.default_rng(0).uniform(size=(5, 32, 32, 1)).astype(np.float32)
    pooled = C.embed(variables, config, x)
    # one cell: the global average pool, i.e. the penultimate features
    np.testing.assert_allclose(C.embed_map(variables, config, x, grid=1), pooled, rtol=1e-5,
                               atol=1e-6)  # fmt: skip
    full = C.embed_map(variables, config, x, grid=32)  # the map as it is
    assert full.shape == (5, side * side * pooled.shape[1])
    maps = full.reshape(5, side, side, -1)
    np.testing.assert_allclose(maps.mean((1, 2)), pooled, rtol=1e-5, atol=1e-6)
    # 3 cells per side: np.array_split bins, e.g. rows 0-2, 3-5, 6-7 of 8
    bins = np.array_split(np.arange(side), 3)
    want = np.stack([np.stack([maps[:, r][:, :, c].mean((1, 2)) for c in bins], 1)
                     for r in bins], 1)  # fmt: skip
    got = C.embed_map(variables, config, x, grid=3)
    np.testing.assert_allclose(got, want.reshape(5, -1), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(C.embed_map(variables, config, x[:3], grid=3), got[:3])


def test_embed_map_errors():
    from jaxsyn.eval import classifiers3d

    config = C.DenseNetConfig.tiny(in_channels=1, num_outputs=2)
    variables = C.init(jax.random.key(0), config, 32)
    with pytest.raises(ConfigError, match="grid: got 0, expected a positive integer"):
        C.embed_map(variables, config, np.zeros((1, 32, 32, 1), np.float32), grid=0)
    config3d = classifiers3d.ResNet3DConfig.tiny(in_channels=1, num_outputs=2)
    with pytest.raises(ConfigError, match="embed_map: got ResNet3DConfig, expected a 2D"):
        C.embed_map({}, config3d, np.zeros((1, 8, 8, 8, 1), np.float32))
