"""Remat policies (jaxsyn.nn.remat) on the 2D families' blocks (prog-GAN, cpD-GAN, AC-GAN): the
config field and its errors, the same parameter tree as without remat, each block under the policy
its resolution names; and (slow) one real training step (`parallel.data_parallel`, compiled with
`jaxsyn.nn.remat.compiler_options` as the training loop compiles it) with the same initial
parameters, losses and gradients and less compiled temporary memory.

The gradients are read from Adam's first moment after the step: it starts at zero, so after one
step it is (1 - b1) g exactly (b1 = 0 for prog-GAN and cpD-GAN, 0.5 for AC-GAN), the same multiple
of the gradient under both policies. The compiled steps are slow: a cold compile of one family's
step takes 5-8 s here (the WGAN-GP step differentiates through D twice), two policies each, far
past this file's share of `make test`; the default suite checks what a trace shows.
"""

from __future__ import annotations

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsyn.cli.common import apply_overrides
from jaxsyn.errors import ConfigError
from jaxsyn.models import acgan as acgan_model
from jaxsyn.models import cpdgan, proggan
from jaxsyn.train import acgan, gan2d, parallel
from tests.bench.remat_trace import policies

pytestmark = pytest.mark.xdist_group("bench_remat2d")

BATCH = 8


def family(name: str, remat: str):
    """(train module, train config, static step arguments, host batch) of `name`'s tiny preset
    under `remat`; prog-GAN grown to its last stage (16 px, alpha 1)."""
    rng = np.random.default_rng(0)
    if name == "acgan":
        model = acgan_model.ACGANConfig.tiny(remat=remat)
        config = acgan.ACGANTrainConfig.tiny(model=model, batch_size=BATCH)
        labels = (np.arange(BATCH) % model.num_classes).astype(np.int32)
        module, static = acgan, {}
    else:
        if name == "proggan":
            model = proggan.ProgGANConfig.tiny(initial_size=16, remat=remat)
            config = gan2d.ProgGANTrainConfig.tiny(model=model, batch_size=BATCH)
        else:
            model = cpdgan.CPDGANConfig.tiny(remat=remat)
            config = gan2d.CPDGANTrainConfig.tiny(model=model, batch_size=BATCH)
        labels = (rng.random((BATCH, model.num_labels)) < 0.4).astype(np.float32)
        module, static = gan2d, {"stage": model.size}
    image = np.tanh(rng.standard_normal((BATCH, model.size, model.size, model.channels)))
    return module, config, static, {"image": image.astype(np.float32), "label": labels}


def run_step(name: str, remat: str):
    """One training step of `name` under `remat` on one device: (params before, the step's
    outputs (state, metrics) on the host, compiled temp bytes)."""
    module, config, static, host = family(name, remat)
    mesh = parallel.make_mesh(jax.devices()[:1])
    step = parallel.data_parallel(
        lambda state, batch, key: module.train_step(state, batch, key, config=config, **static),
        mesh,
    )
    state, batch = module.make_state(config, mesh), parallel.shard_batch(host, mesh)
    compiled = step.lower(state, batch).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes
    params = jax.device_get(state.params)
    new_state, metrics = compiled(state, batch)
    return params, jax.device_get((new_state.params, new_state.opt_state, metrics)), temp


FAMILIES = ("proggan", "cpdgan", "acgan")


@pytest.fixture(scope="module")
def steps():
    return {
        (name, remat): run_step(name, remat)
        for name in FAMILIES
        for remat in ("none", "nothing_saveable")
    }


def first_moments(opt_state) -> dict:
    """{component: Adam's mu tree} of a state's optimiser states."""
    return {k: next(s.mu for s in v if hasattr(s, "mu")) for k, v in opt_state.items()}


def check_same(result, reference):
    (params, (new, opt, metrics), _), (ref_params, (ref_new, ref_opt, ref_metrics), _) = (
        result,
        reference,
    )
    assert jax.tree.structure(params) == jax.tree.structure(ref_params)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params), strict=True):
        np.testing.assert_array_equal(a, b)  # remat changes neither the tree nor the init
    assert metrics.keys() == ref_metrics.keys() and {"d_loss", "g_loss"} <= metrics.keys()
    for k in metrics:
        np.testing.assert_allclose(metrics[k], ref_metrics[k], rtol=1e-5, atol=1e-6, err_msg=k)
    grads, ref_grads = first_moments(opt), first_moments(ref_opt)
    flat, ref = jax.tree.leaves(grads), jax.tree.leaves(ref_grads)
    assert jax.tree.structure(grads) == jax.tree.structure(ref_grads) and len(flat) > 10
    for a, b in zip(flat, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert max(float(np.abs(b).max()) for b in ref) > 1e-4  # gradients that are not all zero
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(ref_new), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_same_step(steps, name):
    check_same(steps[name, "nothing_saveable"], steps[name, "none"])


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_nothing_saveable_compiles_to_less_temp_memory(steps, name):
    none, remat = steps[name, "none"][2], steps[name, "nothing_saveable"][2]
    print(f"{name}: temp {none} B without remat, {remat} B with nothing_saveable")
    assert remat < none


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_dots_saveable_same_step(steps, name):
    check_same(run_step(name, "dots_saveable"), steps[name, "none"])


CONFIGS = {
    "ProgGANConfig": proggan.ProgGANConfig.tiny,
    "CPDGANConfig": cpdgan.CPDGANConfig.tiny,
    "ACGANConfig": acgan_model.ACGANConfig.tiny,
}


@pytest.mark.parametrize("name", CONFIGS)
def test_config_field(name):
    tiny = CONFIGS[name]  # 16 px: blocks at 4, 8 and 16
    assert tiny().remat == "none"
    stages = ("none", "dots_saveable", "nothing_saveable")
    assert tiny(remat=stages).remat == stages
    assert tiny(remat="none, dots_saveable,nothing_saveable").remat == stages  # --config.remat=
    assert tiny(remat=list(stages)).remat == stages  # read back from a run's JSON
    with pytest.raises(ConfigError, match=f"{name}.remat is 'all'; expected one of"):
        tiny(remat="all")
    with pytest.raises(ConfigError, match=rf"{name}.remat is \('none', 'none'\).* or 3 of them"):
        tiny(remat=("none", "none"))
    with pytest.raises(ConfigError, match="or 4 of them"):
        tiny(size=32, remat=stages)


@pytest.mark.parametrize(
    "train", [gan2d.ProgGANTrainConfig, gan2d.CPDGANTrainConfig, acgan.ACGANTrainConfig]
)
def test_set_from_the_command_line(train):
    """`jaxsyn train FAMILY --config.remat=...` (the overrides every train verb applies)."""
    stages = ("nothing_saveable", "none", "dots_saveable")
    config = apply_overrides(train.tiny(), ["remat=nothing_saveable,none,dots_saveable"])
    assert config.model.remat == stages and hash(config)  # hashable: cached_step's key
    name = type(config.model).__name__
    with pytest.raises(ConfigError, match=f"{name}.remat is 'nothing'"):
        apply_overrides(train.tiny(), ["remat=nothing"])


# --- what a trace shows (default suite) ------------------------------------------------------

BLOCKS = ("none", "nothing_saveable", "dots_saveable")  # at 4, 8 and 16 px


def networks(name: str, remat):
    """(init() -> params, G(params) -> images, D(params, images) -> outputs) of `name`'s tiny
    16 px preset under `remat`, on a batch of 4 (prog-GAN at its last stage)."""
    z = jnp.zeros((4, 16))
    if name == "acgan":
        c = acgan_model.ACGANConfig.tiny(remat=remat)
        shapes = jax.eval_shape(lambda: acgan_model.init_stats(c))  # unread in training mode
        stats = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        inputs = jnp.zeros((4, c.num_classes + c.latent_dim))
        return (
            lambda: acgan_model.init(jax.random.key(0), c),
            lambda p: acgan_model.apply_generator(p["g"], inputs, c, stats=stats, update=True)[0],
            lambda p, x: acgan_model.apply_discriminator(p["d"], x, c),
        )
    module = proggan if name == "proggan" else cpdgan
    c = (proggan.ProgGANConfig if name == "proggan" else cpdgan.CPDGANConfig).tiny(remat=remat)
    y = jnp.zeros((4, c.num_labels))
    stage = (16,) if name == "proggan" else ()
    disc = (
        (lambda p, x: proggan.apply_discriminator(p["d"], x, c, 16))
        if name == "proggan"
        else (lambda p, x: cpdgan.apply_discriminator(p["d"], x, y, c))
    )
    return (
        lambda: module.init(jax.random.key(0), c),
        lambda p: module.apply_generator(p["g"], z, y, c, *stage),
        disc,
    )


@pytest.mark.parametrize("name", FAMILIES)
def test_same_tree_and_each_block_under_its_policy(name):
    init, _, _ = networks(name, "none")
    shapes = jax.eval_shape(init)
    for remat in (BLOCKS, "nothing_saveable"):
        init_r, gen, disc = networks(name, remat)
        # a checkpoint saved without remat loads with it: the same paths, shapes and dtypes
        assert jax.tree.structure(jax.eval_shape(init_r)) == jax.tree.structure(shapes)
        assert jax.tree.leaves(jax.eval_shape(init_r)) == jax.tree.leaves(shapes)
        images = jax.eval_shape(gen, shapes)
        assert images.shape == (4, 16, 16, 9 if name == "acgan" else 1)
        per_block = remat if isinstance(remat, tuple) else (remat,) * 3
        kept = [r for r in per_block if r != "none"]
        # G makes 4, 8, 16 px in turn; D reads 16, 8, 4 px
        assert policies(gen, shapes) == kept
        assert policies(disc, shapes, images) == kept[::-1]
    assert policies(networks(name, "none")[1], shapes) == []
