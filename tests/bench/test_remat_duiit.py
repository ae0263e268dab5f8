"""Remat policies (jaxsyn.nn.remat) on DUIIT's networks: CycleGAN's generator (encoder, each
residual block, decoder) and the predictor's ResNet (stem, 4 stages). The config fields and their
errors, the same parameter tree as without remat, each block under the policy its group names;
and (slow) one joint training step (`parallel.data_parallel`, compiled with
`jaxsyn.nn.remat.compiler_options` as the training loop compiles it) with the same initial
parameters, losses and gradients and less compiled temporary memory.

The gradients are read from Adam's first moment after the step: it starts at zero, so after one
step it is (1 - b1) g exactly, the same multiple of the gradient under both policies. A cold
compile of the joint step (two generators, two PatchGANs, the predictor) takes several seconds
per policy here: the default suite checks what a trace shows.
"""

from __future__ import annotations

import argparse
import dataclasses

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsyn.bench import cases
from jaxsyn.cli import bench
from jaxsyn.cli.common import apply_overrides
from jaxsyn.errors import ConfigError
from jaxsyn.models import cyclegan
from jaxsyn.models import duiit as model
from jaxsyn.nn import remat as remat_lib
from jaxsyn.train import duiit, parallel
from tests.bench.remat_trace import policies

pytestmark = pytest.mark.xdist_group("bench_remat_duiit")

SIZE, BATCH = 32, 4


def joint_config(remat) -> duiit.DUIITTrainConfig:
    """The tiny joint setting at 32 px under `remat` (the translators' and predictor's alike)."""
    config = duiit.DUIITTrainConfig.tiny("joint", steps=100, batch_size=BATCH)
    m = config.model
    m = dataclasses.replace(
        m,
        translator=dataclasses.replace(m.translator, size=SIZE, remat=remat),
        predictor=dataclasses.replace(m.predictor, remat=remat),
    )
    return dataclasses.replace(config, model=m)


def run_step(remat: str):
    """One joint step under `remat` on one device: (params before, (params, opt state, metrics)
    after on the host, compiled temp bytes)."""
    config = joint_config(remat)
    rng = np.random.default_rng(0)
    shape = (BATCH, SIZE, SIZE, 1)
    host = {
        k: {
            "image": np.tanh(rng.standard_normal(shape)).astype(np.float32),
            "label": rng.standard_normal(BATCH).astype(np.float32),
        }
        for k in ("target", *duiit.sources(config))
    }
    mesh = parallel.make_mesh(jax.devices()[:1])
    step = parallel.data_parallel(
        lambda state, batch, key: duiit.train_step(state, batch, key, config=config), mesh
    )
    state, batch = duiit.make_state(config, mesh), parallel.shard_batch(host, mesh)
    compiled = step.lower(state, batch).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes
    params = jax.device_get(state.params)
    new_state, metrics = compiled(state, batch)
    return params, jax.device_get((new_state.params, new_state.opt_state, metrics)), temp


@pytest.fixture(scope="module")
def steps():
    return {remat: run_step(remat) for remat in ("none", "nothing_saveable")}


def first_moments(opt_state) -> dict:
    """{component: Adam's mu tree} of the state's optimisers (the predictor's is in a chain)."""
    out = {}
    for name, state in opt_state.items():
        found = jax.tree.leaves(state, is_leaf=lambda s: isinstance(s, optax.ScaleByAdamState))
        out[name] = next(s.mu for s in found if isinstance(s, optax.ScaleByAdamState))
    return out


def check_same(result, reference):
    (params, (new, opt, metrics), _), (ref_params, (ref_new, ref_opt, ref_metrics), _) = (
        result,
        reference,
    )
    assert jax.tree.structure(params) == jax.tree.structure(ref_params)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params), strict=True):
        np.testing.assert_array_equal(a, b)  # remat changes neither the tree nor the init
    assert {"g_ab", "g_ba", "cyc", "d_a", "d_b", "pred"} <= metrics.keys()
    for k in metrics:
        np.testing.assert_allclose(metrics[k], ref_metrics[k], rtol=1e-5, atol=1e-6, err_msg=k)
    grads, ref_grads = first_moments(opt), first_moments(ref_opt)
    assert grads.keys() == {"gen", "disc", "p"}
    flat, ref = jax.tree.leaves(grads), jax.tree.leaves(ref_grads)
    assert jax.tree.structure(grads) == jax.tree.structure(ref_grads) and len(flat) > 30
    for a, b in zip(flat, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
    for name in grads:  # gradients that are not all zero, in every component
        assert max(float(np.abs(b).max()) for b in jax.tree.leaves(ref_grads[name])) > 1e-6, name
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(ref_new), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_same_step(steps):
    check_same(steps["nothing_saveable"], steps["none"])


@pytest.mark.slow
def test_nothing_saveable_compiles_to_less_temp_memory(steps):
    none, remat = steps["none"][2], steps["nothing_saveable"][2]
    print(f"duiit: temp {none} B without remat, {remat} B with nothing_saveable")
    assert remat < none


@pytest.mark.slow
def test_dots_saveable_same_step(steps):
    check_same(run_step("dots_saveable"), steps["none"])


# --- the config fields (default suite) ----------------------------------------------------------


def test_translator_config_field():
    tiny = cyclegan.CycleGANConfig.tiny
    assert tiny().remat == "none"
    groups = ("none", "dots_saveable", "nothing_saveable")
    assert tiny(remat=groups).remat == groups
    assert tiny(remat="none, dots_saveable,nothing_saveable").remat == groups  # --config.
    assert tiny(remat=list(groups)).remat == groups  # read back from a run's JSON
    assert tiny(remat="dots_saveable").remat_groups == ("dots_saveable",) * 3
    with pytest.raises(ConfigError, match="CycleGANConfig.remat is 'all'; expected one of"):
        tiny(remat="all")
    with pytest.raises(ConfigError, match=r"CycleGANConfig.remat is \('none', 'none'\).* or 3"):
        tiny(remat=("none", "none"))


def test_predictor_config_field():
    tiny = model.PredictorConfig.tiny
    assert tiny().remat == "none"
    stages = ("nothing_saveable", "none", "dots_saveable", "none", "nothing_saveable")
    assert tiny(remat=stages).remat == stages
    assert tiny(remat=",".join(stages)).remat == stages
    assert tiny(remat=list(stages)).remat == stages
    with pytest.raises(ConfigError, match="PredictorConfig.remat is 'all'; expected one of"):
        tiny(remat="all")
    with pytest.raises(ConfigError, match=r"or 5 of them \(the stem, then each of the 4 stages"):
        tiny(remat=stages[:4])
    with pytest.raises(ConfigError, match="PredictorConfig.dtype is 'int8'"):
        tiny(dtype="int8")


def test_set_from_the_command_line_and_read_back():
    """`jaxsyn train duiit --config.model.translator.remat=... --config.model.predictor.remat=...`
    and a run's config.json read back (lists) give the same, hashable config."""
    config = apply_overrides(
        duiit.DUIITTrainConfig.tiny(),
        [
            "model.translator.remat=nothing_saveable,none,dots_saveable",
            "model.predictor.remat=dots_saveable",
        ],
    )
    m = config.model
    assert m.translator.remat == ("nothing_saveable", "none", "dots_saveable")
    assert m.predictor.remat == "dots_saveable" and hash(config)  # hashable: cached_step's key
    as_json = dataclasses.asdict(m)
    as_json["translator"]["remat"] = list(m.translator.remat)
    assert model.DUIITConfig.from_json(as_json) == m
    with pytest.raises(ConfigError, match="CycleGANConfig.remat is 'nothing'"):
        apply_overrides(duiit.DUIITTrainConfig.tiny(), ["model.translator.remat=nothing"])


# --- what a trace shows (default suite) ----------------------------------------------------------


GROUPS = ("nothing_saveable", "dots_saveable", "none")  # encoder, residual blocks, decoder
STAGES = ("dots_saveable", "none", "nothing_saveable", "none", "dots_saveable")


def test_translator_same_tree_and_each_block_under_its_policy():
    x = jnp.zeros((2, 16, 16, 1))
    base = cyclegan.CycleGANConfig.tiny()  # 2 residual blocks
    shapes = jax.eval_shape(lambda: cyclegan.init(jax.random.key(0), base))
    for remat in (GROUPS, "nothing_saveable"):
        c = cyclegan.CycleGANConfig.tiny(remat=remat)
        got = jax.eval_shape(lambda c=c: cyclegan.init(jax.random.key(0), c))
        # a checkpoint saved without remat loads with it: the same paths, shapes and dtypes
        assert jax.tree.structure(got) == jax.tree.structure(shapes)
        assert jax.tree.leaves(got) == jax.tree.leaves(shapes)
        encoder, blocks, decoder = c.remat_groups
        expected = [r for r in (encoder, blocks, blocks, decoder) if r != "none"]
        assert policies(lambda p, c=c: cyclegan.translate(p, x, c), shapes["g"]) == expected
    assert policies(lambda p: cyclegan.translate(p, x, base), shapes["g"]) == []


def test_predictor_same_tree_and_each_block_under_its_policy():
    x = jnp.zeros((2, 32, 32, 1))
    base = model.PredictorConfig.tiny(domains=2)  # ResNet-18: 2 blocks a stage
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), base, 32))
    for remat in (STAGES, "nothing_saveable"):
        c = model.PredictorConfig.tiny(domains=2, remat=remat)
        got = jax.eval_shape(lambda c=c: model.init(jax.random.key(0), c, 32))
        assert jax.tree.structure(got) == jax.tree.structure(shapes)
        assert jax.tree.leaves(got) == jax.tree.leaves(shapes)
        stem, *stages = c.remat_stages
        expected = [r for r in (stem, *(s for s in stages for _ in range(2))) if r != "none"]
        assert policies(lambda p, c=c: model.apply(p, x, c), shapes) == expected


def test_bench_lists_duiit_rows_per_policy():
    """`jaxsyn bench --family duiit --memory` lists a row for each policy and dtype."""
    args = argparse.Namespace(family="duiit", workload="train,generate", size="16", batch="2",
                              dtype="float32,bfloat16", steps=1, peak_flops=None, memory=True,
                              remat=None, tiny=True)  # fmt: skip
    rows = {(s["workload"], s["dtype"], s["remat"]) for s in bench.specs(args)}
    assert rows == {("train", d, r) for d in ("float32", "bfloat16") for r in remat_lib.POLICIES}


@pytest.mark.slow
def test_bench_row_passes_dtype_and_remat():
    """`jaxsyn bench --family duiit --dtype bfloat16 --remat ...` builds its row (it refused
    both before): the traced step has the translators' and the predictor's blocks under the
    policy and convolutions in bfloat16 (slow: tracing the joint step takes 3-5 s here)."""
    case = cases.build("duiit", "train", 16, 2, "bfloat16", "nothing_saveable", tiny=True,
                       devices=jax.devices()[:1])  # fmt: skip
    state, batch = case.make_args(True)
    jaxpr = jax.make_jaxpr(case.make_fn())(state, batch).jaxpr  # traced once: ~2 s
    found = policies(None, jaxpr=jaxpr)
    # G and F: encoder, 2 blocks, decoder each; the predictor: stem and 8 blocks
    assert len(found) >= 2 * 4 + 9 and set(found) == {"nothing_saveable"}, found
    assert "bf16[" in str(jaxpr)
