"""HA-GAN networks (jaxsyn.models.hagan) and chunked generation (jaxsyn.infer.hagan).

Tolerance: chunked vs one-pass generation agree within 1e-5 (float32, simple module): the chunked
path sums G^H's GroupNorm statistics per chunk and combines them, a different summation order.
"""

from __future__ import annotations

import dataclasses
import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorstore as ts

from jaxsyn.errors import ConfigError
from jaxsyn.infer import hagan as infer
from jaxsyn.models import hagan
from jaxsyn.models.hagan import (
    Discriminator,
    EncoderGlobal,
    EncoderHigh,
    Generator,
    HAGANConfig,
)

TOL = dict(rtol=1e-5, atol=1e-5)
N_CLASSES, N_CONTINUOUS = 4, 2
# The models most tests share: both kinds of condition, and groups=4, two channels per GroupNorm
# group. tiny()'s 8 groups over width-8 layers make each group one channel, whose mean subtraction
# cancels the preceding conv's bias: those biases get no gradient (test_tiny_preset_...).
CONFIGS = {
    s: HAGANConfig.tiny(size=s, groups=4, num_classes=N_CLASSES, num_continuous=N_CONTINUOUS)
    for s in (32, 64)
}
init = jax.jit(hagan.init, static_argnames="config")  # eager init compiles op by op: slower
generate = jax.jit(hagan.generate, static_argnames=("config", "n"))


def counts(config: HAGANConfig) -> dict[str, int]:
    shapes = jax.eval_shape(functools.partial(hagan.init, config=config), jax.random.key(0))
    return {name: hagan.param_count(v["params"]) for name, v in shapes.items()}


@pytest.mark.parametrize(
    "size, expected",
    [
        (256, dict(g=52_518_210, d=7_402_258, eh=161_152, eg=19_663_264)),
        (128, dict(g=52_518_210, d=7_241_442, eh=161_152, eg=19_663_168)),
    ],
)
def test_parameter_counts_match_the_reference(size, expected):
    """Counts of github batmanlab/HA-GAN's Model_HA_GAN_{256,128}.py, unconditional."""
    assert counts(HAGANConfig(size=size)) == expected


# --- forward shapes ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models() -> dict[int, tuple[HAGANConfig, dict]]:
    """{size: (config, variables)} of CONFIGS, initialised once for the module.

    RBG keys: the same init, but XLA compiles RBG's bits about 3x faster than threefry's."""
    return {s: (c, init(jax.random.key(s, impl="rbg"), c)) for s, c in CONFIGS.items()}


def _inputs(config: HAGANConfig, batch: int, seed: int = 0) -> dict:
    """Inputs of every network: noise and conditions, slabs and volumes in [-1, 1]."""
    rng, s, q = np.random.default_rng(seed), config.size, config.size // 4
    f = np.float32
    return dict(
        zc=rng.standard_normal((batch, config.latent_dim + config.cond_dim)).astype(f),
        slab=rng.uniform(-1, 1, (batch, config.slab_depth, s, s, 1)).astype(f),
        low=rng.uniform(-1, 1, (batch, q, q, q, 1)).astype(f),
        hyper=rng.standard_normal((batch, q, q, q, config.hypercube_channels)).astype(f),
        start=np.full((batch,), config.max_slab_start // 8 * 4, np.int32),  # a multiple of 4
    )


def _forward(variables, x, config: HAGANConfig) -> dict:
    g, gv = Generator(config), {"params": variables["g"]["params"]}
    h = g.apply(gv, x["zc"], method=Generator.hypercube)
    low, slab = g.apply(gv, x["zc"], x["start"][0])  # the training forward
    full = g.apply(gv, h, method=Generator.high_res)
    logit, cls, reg = Discriminator(config).apply(
        variables["d"], x["slab"], x["low"], x["start"], update_stats=False
    )
    return dict(
        hypercube=h,
        low=low,
        slab=slab,
        full=full,
        logit=logit,
        cls=cls,
        reg=reg,
        eh=EncoderHigh(config).apply(variables["eh"], x["slab"]),
        eg=EncoderGlobal(config).apply(variables["eg"], x["hyper"]),
        z=hagan.encode(variables, full, config),
    )


@pytest.mark.parametrize("size, batch", [(32, 2), (64, 1)])
def test_shapes_dtypes_and_ranges(models, size, batch):
    config, variables = models[size]
    out = jax.jit(functools.partial(_forward, config=config))(variables, _inputs(config, batch))
    s, q, c = size, size // 4, 8
    assert config.hypercube_channels == c
    expected = dict(
        hypercube=(batch, q, q, q, c),
        low=(batch, q, q, q, 1),
        slab=(batch, s // 8, s, s, 1),
        full=(batch, s, s, s, 1),
        logit=(batch,),
        cls=(batch, N_CLASSES),
        reg=(batch, N_CONTINUOUS),
        eh=(batch, s // 32, q, q, c),
        eg=(batch, config.latent_dim),
        z=(batch, config.latent_dim),  # encode(full volume): E^H slab by slab, then E^G
    )
    assert {k: v.shape for k, v in out.items()} == expected
    for name, value in out.items():
        assert value.dtype == jnp.float32, name
        assert np.isfinite(value).all(), name
    for name in ("low", "slab", "full"):  # tanh images
        assert np.abs(out[name]).max() <= 1.0, name
        assert np.std(out[name]) > 0.01, name  # not a constant picture
    if batch > 1:  # every example its own: noise in, volume out, latent back
        assert not np.allclose(out["full"][0], out["full"][1], **TOL)
        assert not np.allclose(out["z"][0], out["z"][1], **TOL)


def test_encode_high_is_the_reference_slab_by_slab_encoding(models):
    """E^G's input (training and `encode`): E^H applied to each of the 8 depth slabs on its own,
    concatenated along depth, as the reference's train.py does. A whole-volume pass differs
    (GroupNorm statistics and zero padding per extent), so the two must not agree."""
    config, variables = models[32]
    volume = np.random.default_rng(3).uniform(-1, 1, (2, 32, 32, 32, 1)).astype(np.float32)
    eh = EncoderHigh(config)
    d = config.slab_depth
    by_hand = np.concatenate(
        [eh.apply(variables["eh"], volume[:, k * d : (k + 1) * d]) for k in range(8)], axis=1
    )
    got = hagan.encode_high(variables["eh"], volume, config)
    np.testing.assert_allclose(got, by_hand, rtol=1e-5, atol=1e-6)
    whole = dataclasses.replace(config, encode_slabs=False)
    one_pass = hagan.encode_high(variables["eh"], volume, whole)
    np.testing.assert_allclose(one_pass, eh.apply(variables["eh"], volume), rtol=1e-5, atol=1e-5)
    assert np.abs(one_pass - by_hand).max() > 0.1  # the two encodings are not the same function
    z = hagan.encode(variables, volume, config)
    z_hand = EncoderGlobal(config).apply(variables["eg"], by_hand)
    np.testing.assert_allclose(z, z_hand, rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # an opt-in layer (off by default); 12 s of make test's budget
def test_minibatch_std_lets_d_l_see_the_rest_of_the_batch(models):
    """Off (the reference): an example's logit does not depend on the rest of its batch. On:
    D^L gets the batch's feature spread, so the same example scores differently beside a copy
    of itself than beside another volume."""
    config, _ = models[32]
    x = _inputs(config, 2)
    pair = lambda a, b: {k: np.stack([x[k][a], x[k][b]]) for k in ("slab", "low", "start")}  # noqa: E731
    for on in (False, True):
        c = dataclasses.replace(config, minibatch_std=on)
        d = Discriminator(c)
        v = d.init(jax.random.key(1), x["slab"], x["low"], x["start"])
        scores = [d.apply(v, *pair(0, k).values(), update_stats=False)[0][0] for k in (0, 1)]
        same, varied = (float(t) for t in scores)
        if on:
            assert abs(same - varied) > 1e-4
        else:
            assert same == pytest.approx(varied, rel=1e-6, abs=1e-6)


# --- gradients -----------------------------------------------------------------------------------


def _projection(fn, *args):
    """A scalar function of `fn(*args)`: every output times fixed random weights, summed."""
    rng = np.random.default_rng(0)
    shapes = jax.tree.leaves(jax.eval_shape(fn, *args))
    weights = [rng.standard_normal(s.shape).astype(np.float32) for s in shapes]
    return lambda *a: sum(
        jnp.vdot(w, v) for w, v in zip(weights, jax.tree.leaves(fn(*a)), strict=True)
    )


def _gradients(config: HAGANConfig, variables: dict, networks=("g", "d", "eh", "eg")) -> dict:
    """{network: gradient of a random projection of its outputs w.r.t. its params}."""
    x = _inputs(config, 2)
    forwards = {  # params -> outputs; D's include its class and regression heads
        "g": lambda p: Generator(config).apply({"params": p}, x["zc"], x["start"][0]),
        "d": lambda p: Discriminator(config).apply(
            {"params": p, "spectral": variables["d"]["spectral"]},
            *(x["slab"], x["low"], x["start"]),
            update_stats=False,
        ),
        "eh": lambda p: EncoderHigh(config).apply({"params": p}, x["slab"]),
        "eg": lambda p: EncoderGlobal(config).apply({"params": p}, x["hyper"]),
    }
    params = {n: variables[n]["params"] for n in networks}
    losses = {n: _projection(forwards[n], params[n]) for n in networks}
    return jax.jit(lambda p: {n: jax.grad(losses[n])(p[n]) for n in networks})(params)


def _dead_leaves(grads: dict) -> list[str]:
    """Leaves whose largest |gradient| is below 1e-5 of their network's largest: float32
    rounding of a gradient that is zero, not a learning signal."""
    dead = []
    for name, tree in grads.items():
        leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
        top = max(float(np.abs(g).max()) for _, g in leaves)
        for path, grad in leaves:
            assert np.isfinite(grad).all(), (name, path)
            if not np.abs(grad).max() > 1e-5 * top:
                dead.append(f"{name}{jax.tree_util.keystr(path)}")
    return dead


def test_every_parameter_gets_a_gradient(models):
    config, variables = models[32]
    grads = _gradients(config, variables)
    assert _dead_leaves(grads) == []
    checked = {n: len(jax.tree.leaves(g)) for n, g in grads.items()}
    assert checked == {n: len(jax.tree.leaves(variables[n]["params"])) for n in grads}
    # D^H's logit, class and regression heads (Dense kernels [dh_hidden, 1 | N | M]) and D^L's
    # joint output conv are among them
    kernels = {k.shape for k in jax.tree.leaves(grads["d"]) if k.ndim == 2}
    assert {(8, 1), (8, N_CLASSES), (8, N_CONTINUOUS)} <= kernels
    assert grads["d"]["dl_out"]["kernel"].shape[-1] == 1 + N_CLASSES + N_CONTINUOUS


def test_tiny_preset_has_no_dead_parameters():
    """The preset as tests and smoke runs use it. The noise matters: Adam scales a gradient to
    about ±lr whatever its size, so these biases take random ±lr steps, which differ between an
    8-device and a 1-device step (up to 5e-5 after one step, beyond the 1e-5 tolerance)."""
    config = HAGANConfig.tiny()
    shapes = jax.eval_shape(functools.partial(hagan.init, config=config), jax.random.key(0))
    rng = np.random.default_rng(0)  # any parameter values show it: the cancellation is exact
    params = jax.tree.map(
        lambda s: (0.3 * rng.standard_normal(s.shape)).astype(np.float32), shapes["g"]["params"]
    )
    assert _dead_leaves(_gradients(config, {"g": {"params": params}}, networks=("g",))) == []


def test_discriminator_params_carry_layer_names():
    """D's convs carry the reference's layer names (dh_conv4.., dl_out); its Dense layers too."""
    config = HAGANConfig.tiny(num_classes=N_CLASSES, num_continuous=N_CONTINUOUS)
    shapes = jax.eval_shape(functools.partial(hagan.init, config=config), jax.random.key(0))
    assert {"dh_conv4", "dh_conv7", "dl_conv1", "dl_out"} <= set(shapes["d"]["params"])
    assert {"dh_fc1", "dh_fc2", "dh_class", "dh_reg"} <= set(shapes["d"]["params"])


# --- generation ----------------------------------------------------------------------------------


def _conditions(config: HAGANConfig, classes) -> jax.Array:
    continuous = np.linspace(-1, 1, len(classes) * N_CONTINUOUS).reshape(len(classes), -1)
    return hagan.conditions_vector(config, classes, continuous)


def test_generate_is_a_function_of_the_key(models):
    config, variables = models[32]
    params, cond = variables["g"]["params"], _conditions(config, [0, 1])
    full, low = generate(params, jax.random.key(3), config, cond, n=2)
    again, again_low = generate(params, jax.random.key(3), config, cond, n=2)
    other, _ = generate(params, jax.random.key(4), config, cond, n=2)
    assert full.shape == (2, 32, 32, 32, 1) and low.shape == (2, 8, 8, 8, 1)
    np.testing.assert_array_equal(full, again)
    np.testing.assert_array_equal(low, again_low)
    for i in range(2):
        assert not np.allclose(full[i], other[i], **TOL)


def test_conditions_change_the_volume(models):
    """Same key, so the same z per example; example 0's class changes 0 -> 3, example 1's not."""
    config, variables = models[32]
    params, key = variables["g"]["params"], jax.random.key(5)
    cond = _conditions(config, [0, 2])
    np.testing.assert_array_equal(cond[:, :N_CLASSES], [[1, 0, 0, 0], [0, 0, 1, 0]])
    first, _ = generate(params, key, config, cond, n=2)
    changed, _ = generate(params, key, config, cond.at[0, :N_CLASSES].set([0, 0, 0, 1]), n=2)
    assert not np.allclose(first[0], changed[0], **TOL)
    np.testing.assert_allclose(first[1], changed[1], **TOL)  # no leak between examples


def test_conditions_vector_needs_the_labels():
    with pytest.raises(ConfigError, match="4 classes; expected class labels"):
        hagan.conditions_vector(HAGANConfig.tiny(num_classes=4))
    both = HAGANConfig.tiny(num_classes=2, num_continuous=1)
    with pytest.raises(ConfigError, match="1 continuous conditions; expected their values"):
        hagan.conditions_vector(both, classes=[1])
    cond = hagan.conditions_vector(both, classes=[1, 0], continuous=[[0.5], [-2.0]])
    np.testing.assert_array_equal(cond, [[0, 1, 0.5], [1, 0, -2.0]])
    assert hagan.conditions_vector(HAGANConfig.tiny(), batch=3).shape == (3, 0)


def _assemble(chunks, config: HAGANConfig) -> np.ndarray:
    blocks = list(chunks)
    firsts = [first for first, _ in blocks]
    depth = blocks[0][1].shape[1]
    assert firsts == list(range(0, config.size, depth))  # in order, edge to edge
    return np.concatenate([block for _, block in blocks], axis=1)


def _zc(config: HAGANConfig, n: int = 2) -> np.ndarray:
    return _inputs(config, n, seed=6)["zc"]


@pytest.mark.parametrize("size, chunk", [(32, 1), (32, 2), (32, 8), (64, 4), (64, 16)])
def test_chunked_generation_equals_one_pass(models, size, chunk):
    config, variables = models[size]
    params, zc = variables["g"]["params"], _zc(config)
    whole = np.asarray(jax.jit(infer.one_pass, static_argnames="config")(params, zc, config))
    chunked = _assemble(infer.generate_chunks(params, zc, config, chunk), config)
    assert chunked.shape == whole.shape == (2, size, size, size)
    assert chunked.dtype == np.float32
    np.testing.assert_allclose(chunked, whole, **TOL)
    assert np.std(whole) > 0


def test_slab_by_slab_generation_is_the_training_forward(models):
    """generate_slabs: each S/8 block is G^H on its S/32 hypercube slices alone (the slab the
    training step makes and D judges), unlike the one pass, whose GroupNorm sees the volume."""
    config, variables = models[32]
    params, zc = variables["g"]["params"], _zc(config)
    slabs = dataclasses.replace(config, generate_slabs=True)
    got = _assemble(infer.generate_chunks(params, zc, slabs, 2), slabs)
    g, d = Generator(config), config.slab_depth // 4
    h = g.apply({"params": params}, zc, method=Generator.hypercube)
    want = np.concatenate(
        [g.apply({"params": params}, h[:, k : k + d], method=Generator.high_res)[..., 0]
         for k in range(0, config.size // 4, d)], axis=1
    )  # fmt: skip
    np.testing.assert_allclose(got, want, **TOL)
    whole = np.asarray(jax.jit(infer.one_pass, static_argnames="config")(params, zc, config))
    assert np.abs(got - whole).max() > 0.01


def test_generate_to_zarr_writes_the_chunks(models, tmp_path):
    config, variables = models[32]
    params, zc = variables["g"]["params"], _zc(config)
    infer.generate_to_zarr(params, zc, config, tmp_path / "out.zarr", chunk=2)
    spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(tmp_path / "out.zarr")}}
    stored = ts.open(spec, open=True).result().read().result()
    assert stored.shape == (2, 32, 32, 32) and stored.dtype == np.float32
    np.testing.assert_array_equal(
        stored, _assemble(infer.generate_chunks(params, zc, config, 2), config)
    )


@pytest.mark.parametrize("chunk", [3, 0, 16])
def test_chunk_must_divide_the_hypercube_depth(models, chunk):
    config, variables = models[32]
    params, zc = variables["g"]["params"], _zc(config, 1)
    with pytest.raises(
        ConfigError, match=f"chunk is {chunk} hypercube slices; expected a divisor of 8"
    ):
        next(infer.generate_chunks(params, zc, config, chunk))
    with pytest.raises(ConfigError, match="expected a divisor of 8"):
        infer.compiled_memory(params, zc, config, chunk)


def test_chunked_generation_needs_less_memory(models):
    config, variables = models[64]
    params, zc = variables["g"]["params"], _zc(config, 1)
    memory = infer.compiled_memory(params, zc, config, chunk=4)
    assert set(memory) == {"onepass", "chunked"}
    # one pass holds G^H's last activation, [1, 64, 64, 64, 8] (8 MiB in float32); a chunk of 4
    # hypercube slices a quarter of it, plus its halo
    assert memory["onepass"] >= 8 * 2**20
    assert 0 < memory["chunked"] < memory["onepass"] / 2


# --- config validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(size=48), "size is 48; expected a power of two in 32..256"),
        (dict(size=512), "size is 512; expected a power of two in 32..256"),
        (dict(size=16), "size is 16"),
        (
            dict(low_channels=(8, 12), groups=8),
            "every generator/encoder width must divide into 8 groups",
        ),
        (
            dict(high_channels=4, groups=8),
            "every generator/encoder width must divide into 8 groups",
        ),
        (dict(eg_channels=(8, 8, 8, 12), groups=8), "must divide into 8 groups"),
        (dict(eh_channels=(8, 8, 16)), "eh_channels ends at 16; expected the hypercube width 8"),
        (dict(dtype="float16"), "dtype is 'float16'; expected 'float32' or 'bfloat16'"),
        (dict(trunk_channels=(8, 8, 8, 8)), "trunk_channels needs 5 widths"),
    ],
)
def test_config_errors_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        HAGANConfig.tiny(**overrides)


def test_ladders_need_enough_widths():
    """S = 64 uses the last log2(S/16) = 2 rungs of D^L's and E^G's ladders; 1 is refused."""
    with pytest.raises(ConfigError, match="need 2 widths at size 64"):
        HAGANConfig.tiny(size=64, dl_channels=(8,))
