"""Remat policies (jaxsyn.nn.remat) on HA-GAN's generator stages: the same parameters, loss and
gradients as without, and what XLA:CPU's compiled memory makes of them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsyn.errors import ConfigError
from jaxsyn.models import hagan
from jaxsyn.nn.remat import POLICIES

pytestmark = pytest.mark.xdist_group("bench_remat")


def test_config_field():
    assert hagan.HAGANConfig.tiny().remat_stages == ("none",) * 7
    stages = ("none",) * 5 + ("dots_saveable", "nothing_saveable")
    assert hagan.HAGANConfig.tiny(remat=stages).remat_stages == stages
    # from the command line (--config.remat=...), a comma-separated list is one per stage
    listed = ",".join(stages)
    assert hagan.HAGANConfig.tiny(remat=listed).remat_stages == stages
    with pytest.raises(ConfigError, match="HAGANConfig.remat is 'all'"):
        hagan.HAGANConfig.tiny(remat="all")
    with pytest.raises(ConfigError, match="7 of them"):
        hagan.HAGANConfig.tiny(remat=("none",) * 5)


@pytest.fixture(scope="module")
def compiled():
    """Per policy: the generator's training forward (low + slab) and its gradient, compiled
    ahead of time from abstract inputs, then run on the same parameters."""
    out = {}
    zc = jax.random.normal(jax.random.key(1), (2, 16))
    params = None
    for name in POLICIES:
        g = hagan.Generator(hagan.HAGANConfig.tiny(remat=name))
        variables = jax.jit(lambda k, g=g: g.init(k, zc, 0))(jax.random.key(0))
        if params is None:
            params = variables
        else:  # a tree saved without remat is the tree with it
            assert jax.tree.structure(variables) == jax.tree.structure(params)
            jax.tree.map(np.testing.assert_array_equal, variables, params)

        def loss(p, g=g):
            low, slab = g.apply(p, zc, 8)
            return jnp.mean(jnp.square(low - 0.1)) + jnp.mean(jnp.abs(slab))

        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
        exe = jax.jit(jax.value_and_grad(loss)).lower(abstract).compile()
        out[name] = (exe(params), exe.memory_analysis().temp_size_in_bytes)
    return out


@pytest.mark.parametrize("name", ["nothing_saveable", "dots_saveable"])
def test_same_loss_and_gradients(compiled, name):
    (value, grads), _ = compiled[name]
    (ref_value, ref_grads), _ = compiled["none"]
    np.testing.assert_allclose(value, ref_value, rtol=1e-6)
    flat, ref = jax.tree.leaves(grads), jax.tree.leaves(ref_grads)
    assert len(flat) == len(ref) > 10
    for a, b in zip(flat, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert max(float(jnp.abs(b).max()) for b in ref) > 1e-4  # gradients that are not all zero


@pytest.mark.xfail(
    strict=True,
    reason="XLA:CPU's buffer assignment keeps the activations whatever the policy (measured: "
    "20 remat'd 512x512 layers 58.0 vs 59.0 MiB; HA-GAN tiny 64³ generator gradient "
    "12.7 MB nothing_saveable vs 10.5 MB none); the saving is a GPU/TPU figure "
    "(benchmarks/device_check.sh runs jaxsyn bench --memory there)",
)
def test_nothing_saveable_compiles_to_less_temp_memory(compiled):
    assert compiled["nothing_saveable"][1] < compiled["none"][1]
