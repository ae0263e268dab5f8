"""DUIIT's predictor: ResNet depths, heads, gradient reversal, the settings' config."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsyn.errors import ConfigError
from jaxsyn.models import cyclegan
from jaxsyn.models import duiit as model


def _blocks(config, size=32):
    shapes = jax.eval_shape(functools.partial(model.init, config=config, size=size),
                            jax.random.key(0))  # fmt: skip
    return shapes, sorted(k for k in shapes if k.startswith("Block_"))


def test_resnet_depths():
    """ResNet-18: 8 basic blocks of 2 convolutions; ResNet-50: 16 bottlenecks of 3, widths
    x4 at the output (He et al. table 1); one projection per stage (4 in ResNet-50, whose first
    block widens 64 -> 256, 3 in ResNet-18)."""
    for depth, n, convs, proj in ((18, 8, 2, 3), (50, 16, 3, 4)):
        shapes, blocks = _blocks(model.PredictorConfig(depth=depth))
        assert len(blocks) == n
        assert all(sum(k.startswith("Conv_") for k in shapes[b]) == convs for b in blocks)
        assert sum("proj" in shapes[b] for b in blocks) == proj
        features = 512 if depth == 18 else 2048
        assert shapes["heads"]["kernel"].shape == (features, 1)
        weights = sum(x.size for x in jax.tree.leaves(shapes))
        # He et al.: 11.7 M and 25.6 M parameters with a 1000-way head on 3 channels
        expected = {18: 11.7e6 - 512 * 1000 + 512, 50: 25.6e6 - 2048 * 1000 + 2048}[depth]
        assert abs(weights - expected) / expected < 0.03, (depth, weights)


def test_shapes_and_batch_independence():
    config = model.PredictorConfig.tiny(heads=3, domains=3)
    params = jax.jit(model.init, static_argnums=(1, 2))(jax.random.key(0), config, 16)
    x = jax.random.uniform(jax.random.key(1), (4, 16, 16, 1), minval=-1, maxval=1)
    features, outputs, domain = jax.jit(model.apply, static_argnums=2)(params, x, config)
    assert features.shape == (4, 4 * 8) and outputs.shape == (4, 3) and domain.shape == (4, 3)
    assert float(jnp.std(outputs[:, 0])) > 1e-3  # the images matter (a 1 x 1 last stage too)
    # group norm: an image's prediction does not depend on the rest of the batch
    predict = jax.jit(model.predict, static_argnums=2)
    np.testing.assert_allclose(predict(params, x[::-1], config), outputs[::-1, 0], atol=1e-6)


def test_gradient_reversal_flips_and_scales():
    x = jnp.array([0.5, -1.0, 2.0])
    f = lambda v: jnp.sum(jnp.sin(v) * v)  # noqa: E731
    g = jax.grad(f)(x)
    np.testing.assert_array_equal(model.reverse_gradient(x, 0.3), x)
    np.testing.assert_allclose(jax.grad(lambda v: f(model.reverse_gradient(v, 0.3)))(x), -0.3 * g,
                               rtol=1e-6)  # fmt: skip
    np.testing.assert_allclose(jax.grad(lambda v: f(model.scale_gradient(v, 2.5)))(x), 2.5 * g,
                               rtol=1e-6)  # fmt: skip
    # in the predictor: the domain loss's gradient reaches the trunk reversed, the domain
    # classifier's own gradient is not
    config = model.PredictorConfig.tiny(domains=2)
    params = jax.jit(model.init, static_argnums=(1, 2))(jax.random.key(0), config, 16)
    x = jax.random.normal(jax.random.key(1), (2, 16, 16, 1))

    @jax.jit
    def domain_grad(p, factor):  # the factor traced, as DANN's schedule passes it
        return jax.grad(lambda p: jnp.sum(model.apply(p, x, config, factor)[2][:, 0]))(p)

    plus, minus = domain_grad(params, 1.0), domain_grad(params, -1.0)
    np.testing.assert_allclose(plus["Conv_0"]["kernel"], -minus["Conv_0"]["kernel"], rtol=1e-5)
    np.testing.assert_array_equal(plus["domain_out"]["kernel"], minus["domain_out"]["kernel"])


def test_settings_shape_the_predictor():
    mtl = model.DUIITConfig(setting="mtl", sources=2, predictor=model.PredictorConfig.tiny())
    assert (mtl.predictor.heads, mtl.predictor.domains) == (3, 0)
    dann = model.DUIITConfig(setting="dann", sources=1)
    assert (dann.predictor.heads, dann.predictor.domains) == (1, 2)
    assert model.DUIITConfig(setting="pure", sources=0).predictor.heads == 1
    assert (mtl.mtl_target_weight, mtl.mtl_source_weight) == (0.95, 0.05)  # appendix A.8
    assert (dann.lam, dann.lam_cyc, dann.pool_size) == (1e-3, 10.0, 50)  # section 4.2
    saved = {**vars(mtl), "translator": vars(mtl.translator), "predictor": vars(mtl.predictor)}
    assert model.DUIITConfig.from_json(saved) == mtl
    with pytest.raises(ConfigError, match="setting is 'gan'"):
        model.DUIITConfig(setting="gan")
    with pytest.raises(ConfigError, match="sources is 0 for setting 'joint'"):
        model.DUIITConfig(sources=0)
    with pytest.raises(ConfigError, match="predict is False for setting 'joint'"):
        model.DUIITConfig(predict=False)
    with pytest.raises(ConfigError, match="depth is 34"):
        model.PredictorConfig(depth=34)
    with pytest.raises(ConfigError, match="channels"):
        model.DUIITConfig(translator=cyclegan.CycleGANConfig(channels=3))
