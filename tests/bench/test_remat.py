"""Remat policies (jaxsyn.nn.remat) on HA-GAN's generator stages: the same parameters, loss and
gradients as without, and less compiled memory, compiled as the training loop compiles a step
(`jaxsyn.nn.remat.compiler_options`; without them XLA:CPU merges the recomputation back into the
forward pass and a policy saves nothing)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsyn.errors import ConfigError
from jaxsyn.models import hagan
from jaxsyn.nn import remat

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
    lowered = jax.jit(jax.value_and_grad(loss)).lower(abstract)
    exe = lowered.compile(compiler_options=remat.compiler_options(jax.default_backend()))
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


def test_nothing_saveable_compiles_to_less_temp_memory(compiled):
    # measured: 1.07 MiB with nothing_saveable against 1.61 MiB without (tiny config, 2 x 16-d
    # latents; by default XLA:CPU plans 1.61 MiB for both)
    assert compiled["nothing_saveable"][1] < 0.8 * compiled["none"][1]


def test_xla_cpu_needs_the_options_to_honour_a_policy():
    """Compiled by default, XLA:CPU's plan for the remat'd program is no smaller (the reason the
    training loop passes the options): 16 two-layer tanh blocks, batch 256 x 256."""

    def loss(ws, x, block):
        for w in ws:
            x = block(w, x)
        return jnp.sum(x**2)

    def layer(w, x):
        return jnp.tanh(jnp.tanh(x @ w) @ w)

    ws = [jax.ShapeDtypeStruct((256, 256), jnp.float32)] * 16
    x = jax.ShapeDtypeStruct((256, 256), jnp.float32)
    temp = {}
    for name, block in (("none", layer), ("remat", jax.checkpoint(layer))):
        lowered = jax.jit(jax.grad(lambda w, x, b=block: loss(w, x, b))).lower(ws, x)
        for options in ("default", "jaxsyn"):
            opts = remat.compiler_options("cpu") if options == "jaxsyn" else None
            stats = lowered.compile(compiler_options=opts).memory_analysis()
            temp[name, options] = stats.temp_size_in_bytes
    act = 256 * 256 * 4  # one activation
    assert temp["remat", "default"] >= temp["none", "default"]
    assert temp["none", "jaxsyn"] == temp["none", "default"]  # no barriers: the same program
    # without remat two activations per block are kept, with it one (its input)
    assert temp["none", "jaxsyn"] - temp["remat", "jaxsyn"] >= 14 * act
