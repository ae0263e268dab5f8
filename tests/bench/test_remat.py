"""Remat policies (jaxsyn.nn.remat) on HA-GAN's generator stages: the same parameters, loss and
gradients as without, and what XLA:CPU's compiled memory makes of them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsyn.errors import ConfigError
from jaxsyn.models import hagan

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


ZC = jax.random.normal(jax.random.key(1), (2, 16))


def compile_policy(name: str, params=None):
    """The generator's training forward (low + slab) under remat `name` and its gradient,
    compiled ahead of time from abstract inputs, run on `params` (default: its own init):
    ((loss, grads), compiled temp bytes, params)."""
    g = hagan.Generator(hagan.HAGANConfig.tiny(remat=name))
    if params is None:
        params = jax.jit(lambda k: g.init(k, ZC, 0))(jax.random.key(0))
    else:  # a tree saved without remat is the tree with it (shapes here: no compile)
        shapes = jax.eval_shape(lambda k: g.init(k, ZC, 0), jax.random.key(0))
        assert jax.tree.structure(shapes) == jax.tree.structure(params)
        assert jax.tree.map(lambda s: s.shape, shapes) == jax.tree.map(jnp.shape, params)

    def loss(p):
        low, slab = g.apply(p, ZC, 8)
        return jnp.mean(jnp.square(low - 0.1)) + jnp.mean(jnp.abs(slab))

    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    exe = jax.jit(jax.value_and_grad(loss)).lower(abstract).compile()
    return exe(params), exe.memory_analysis().temp_size_in_bytes, params


@pytest.fixture(scope="module")
def compiled():
    out = {"none": compile_policy("none")}
    out["nothing_saveable"] = compile_policy("nothing_saveable", out["none"][2])
    return out


def check_same(result, reference):
    (value, grads), (ref_value, ref_grads) = result[0], reference[0]
    np.testing.assert_allclose(value, ref_value, rtol=1e-6)
    flat, ref = jax.tree.leaves(grads), jax.tree.leaves(ref_grads)
    assert len(flat) == len(ref) > 10
    for a, b in zip(flat, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert max(float(jnp.abs(b).max()) for b in ref) > 1e-4  # gradients that are not all zero


def test_same_loss_and_gradients(compiled):
    check_same(compiled["nothing_saveable"], compiled["none"])


@pytest.mark.slow
def test_dots_saveable_same_loss_and_gradients(compiled):
    check_same(compile_policy("dots_saveable", compiled["none"][2]), compiled["none"])


@pytest.mark.xfail(
    strict=True,
    reason="XLA:CPU's buffer assignment keeps the activations whatever the policy (measured: "
    "20 remat'd 512x512 layers 58.0 vs 59.0 MiB; HA-GAN tiny 64³ generator gradient "
    "12.7 MB nothing_saveable vs 10.5 MB none); the saving is a GPU/TPU figure "
    "(benchmarks/device_check.sh runs jaxsyn bench --memory there)",
)
def test_nothing_saveable_compiles_to_less_temp_memory(compiled):
    assert compiled["nothing_saveable"][1] < compiled["none"][1]
