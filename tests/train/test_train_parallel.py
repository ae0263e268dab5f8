"""Data parallelism: 8 simulated devices compute what 1 device computes.

Tolerance: rtol = atol = 1e-5 (float32, simple module). The sharded step sums each gradient,
loss and batch statistic in a different order (per device, then across devices) from the
single-device step, so results agree to rounding, not bit for bit.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsyn.errors import ConfigError
from jaxsyn.models import toygan as model
from jaxsyn.train import parallel, toygan
from tests.train.helpers import TINY, assert_trees_close, host

TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def batches() -> list[dict]:
    it = iter(toygan.dataset(TINY))
    return [next(it) for _ in range(4)]


@pytest.fixture(scope="module")
def meshes():
    devices = jax.devices()
    assert len(devices) == 8, "tests/conftest.py sets 8 CPU devices"
    return {1: parallel.make_mesh(devices[:1]), 8: parallel.make_mesh(devices)}


@pytest.fixture(scope="module")
def steps(meshes):
    """The jitted step per mesh size, compiled once for the module."""
    return {n: toygan.make_step(TINY, mesh) for n, mesh in meshes.items()}


def run_steps(mesh, step, batches):
    with jax.set_mesh(mesh):
        state = toygan.make_state(TINY, mesh)
        history = []
        for batch in batches:
            global_batch = parallel.shard_batch(batch, mesh)
            shards = global_batch["x"].addressable_shards
            assert len(shards) == mesh.size  # really split: one block per device
            assert shards[0].data.shape[0] == TINY.batch_size // mesh.size
            state, metrics = step(state, global_batch)
            history.append((host(state), host(metrics)))
        return history


def test_sharded_step_matches_single_device(meshes, steps, batches):
    assert meshes[1].devices.size == 1 and meshes[8].devices.size == 8
    one = run_steps(meshes[1], steps[1], batches[:2])
    eight = run_steps(meshes[8], steps[8], batches[:2])
    for (s1, m1), (s8, m8) in zip(one, eight, strict=True):
        assert_trees_close(s8, s1, **TOL)
        assert_trees_close(m8, m1, **TOL)
    # Two steps: D trained twice and G once (g_every=2), so both networks were compared moving.
    start = host(toygan.make_state(TINY, meshes[1]))
    for name in ("['g']", "['d']"):
        moved = [k for k in start if k.startswith(f".params{name}") and k in one[-1][0]]
        assert any(not np.array_equal(start[k], one[-1][0][k]) for k in moved), name


def _loss_and_grads(params, batch, key):
    """Global-mean D and G losses and gradients on this device's share (inside a data axis)."""
    n = batch["label"].shape[0]
    z = toygan.latents(key, n, TINY)
    d = parallel.mean_value_and_grad(toygan.d_loss)(params["d"], params["g"], batch, z, TINY)
    g = parallel.mean_value_and_grad(toygan.g_loss)(params["g"], params["d"], batch, z, TINY)
    return {"d": d, "g": g}


def test_gradients_are_global_means(meshes, batches):
    """The sharded gradient equals the plain full-batch gradient, not n_devices times it.

    Adam is nearly invariant to a gradient's scale, so the step test alone would miss a wrong
    all-reduce; this compares gradients directly. Reference: no shard_map at all, the whole batch
    under `vmap` of one "device", differentiated with plain `jax.value_and_grad`.
    """
    params = toygan.init_state(TINY).params
    key = jax.random.key(7)
    batch = jax.tree.map(jnp.asarray, batches[0])

    def plain(b):
        z = toygan.latents(key, b["label"].shape[0], TINY)
        d = jax.value_and_grad(toygan.d_loss)(params["d"], params["g"], b, z, TINY)
        g = jax.value_and_grad(toygan.g_loss)(params["g"], params["d"], b, z, TINY)
        return {"d": d, "g": g}

    one = jax.vmap(plain, axis_name=parallel.DATA)(jax.tree.map(lambda x: x[None], batch))
    reference = host(jax.tree.map(lambda x: x[0], one))
    mesh = meshes[8]
    with jax.set_mesh(mesh):
        sharded = jax.jit(
            jax.shard_map(
                functools.partial(_loss_and_grads, key=key),
                mesh=mesh,
                in_specs=(jax.P(), jax.P(parallel.DATA)),
                out_specs=jax.P(),
            )  # fmt: skip
        )
        placed = jax.device_put(params, parallel.replicated(mesh))
        result = host(sharded(placed, parallel.shard_batch(batches[0], mesh)))
    assert_trees_close(result, reference, **TOL)


def test_batch_statistics_span_all_devices(meshes, batches):
    """The generator's normalisation uses the global batch: drop the pmean and 8 devices differ."""
    params = toygan.init_state(TINY).params["g"]
    z = jax.random.normal(jax.random.key(1), (TINY.batch_size, TINY.model.latent_dim))
    labels = jnp.asarray(batches[0]["label"])
    full = model.apply_generator(params, z, labels, TINY.model)  # one device, whole batch
    mesh = meshes[8]

    def sharded(axis_name):
        fn = functools.partial(model.apply_generator, config=TINY.model, axis_name=axis_name)
        specs = (jax.P(), jax.P(parallel.DATA), jax.P(parallel.DATA))
        mapped = jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=jax.P(parallel.DATA))
        with jax.set_mesh(mesh):
            args = parallel.shard_batch({"z": np.asarray(z), "y": np.asarray(labels)}, mesh)
            placed = jax.device_put(params, parallel.replicated(mesh))
            return np.asarray(jax.jit(mapped)(placed, args["z"], args["y"]))

    np.testing.assert_allclose(sharded(parallel.DATA), full, **TOL)
    assert not np.allclose(sharded(None), full, **TOL)  # per-device statistics are another model


def test_generator_every_second_step(meshes, steps, batches):
    """g_every=2: G (params and Adam state) moves in steps 2 and 4 only; D moves every step."""
    mesh = meshes[8]
    with jax.set_mesh(mesh):
        state = toygan.make_state(TINY, mesh)
        before = host(state)
        for number, batch in enumerate(batches, start=1):
            state, metrics = steps[8](state, parallel.shard_batch(batch, mesh))
            after = host(state)
            for component, should_move in (("g", number % 2 == 0), ("d", True)):
                keys = [k for k in after if f"['{component}']" in k and "params" in k]
                moved = any(not np.array_equal(before[k], after[k]) for k in keys)
                assert moved == should_move, (number, component)
                opt = [k for k in after if k.startswith(f".opt_state['{component}']")]
                assert any(not np.array_equal(before[k], after[k]) for k in opt) == should_move
            assert np.isnan(metrics["g_loss"]) == (number % 2 == 1)
            assert np.isfinite(metrics["d_loss"])
            assert int(after[".step"]) == number
            before = after


def test_process_shards_stack_into_the_global_batch():
    """Two processes' Grain shards, stacked in process order, are the one-process batches."""
    whole = iter(toygan.dataset(TINY))
    parts = [iter(toygan.dataset(TINY, process_index=i, process_count=2)) for i in range(2)]
    for _ in range(6):  # several epochs of 48 examples in batches of 16
        expected = next(whole)
        got = [next(p) for p in parts]
        assert got[0]["index"].shape == (TINY.batch_size // 2,)
        assert not set(got[0]["index"]) & set(got[1]["index"])
        for name in expected:
            np.testing.assert_array_equal(np.concatenate([g[name] for g in got]), expected[name])


def test_compiled_memory_reports_the_step(meshes, batches):
    mesh = meshes[8]
    with jax.set_mesh(mesh):
        state = toygan.make_state(TINY, mesh)
        batch = parallel.shard_batch(batches[0], mesh)
        memory = parallel.compiled_memory(toygan.make_step(TINY, mesh), state, batch)
    assert memory["argument_size_in_bytes"] > 0
    assert memory["output_size_in_bytes"] > 0
    assert set(memory) >= {"temp_size_in_bytes", "alias_size_in_bytes"}


def test_distributed_start_reads_the_environment(monkeypatch):
    for name in (parallel.COORDINATOR_ENV, parallel.NUM_PROCESSES_ENV, parallel.PROCESS_ID_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(parallel.AUTO_ENV, raising=False)
    assert parallel.initialize_distributed() is False  # no coordinator named: one process
    monkeypatch.setenv(parallel.COORDINATOR_ENV, "127.0.0.1:1")
    monkeypatch.setenv(parallel.NUM_PROCESSES_ENV, "two")
    with pytest.raises(ConfigError, match="JAX_NUM_PROCESSES is 'two'"):
        parallel.initialize_distributed()
    monkeypatch.setenv(parallel.NUM_PROCESSES_ENV, "2")
    with pytest.raises(ConfigError, match="JAX_PROCESS_ID is None"):
        parallel.initialize_distributed()


def test_batch_must_split_evenly(meshes):
    """Over devices (the step) and over processes (the data): `parallel.check_divisible`."""
    config = toygan.ToyTrainConfig.tiny(batch_size=12)
    with pytest.raises(
        ConfigError, match="^ToyTrainConfig.batch_size is 12; expected a multiple of the 8 devices$"
    ):
        toygan.make_step(config, meshes[8])
    with pytest.raises(
        ConfigError,
        match="^ToyTrainConfig.batch_size is 12; expected a multiple of the 5 processes$",
    ):
        toygan.dataset(config, process_index=0, process_count=5)
    parallel.check_divisible("ToyTrainConfig.batch_size", 12, 4)  # 4 devices: 3 each, no error


def test_cached_step_is_made_once_per_config_mesh_and_conv_path():
    """A run repeated or resumed in one process reuses its traced step (nothing compiled here)."""
    from jaxsyn import kernels
    from jaxsyn.train import hagan

    config = hagan.HAGANTrainConfig.tiny()
    mesh = parallel.make_mesh(jax.devices()[:2])
    step = hagan.make_step(config, mesh)
    assert hagan.make_step(config, parallel.make_mesh(jax.devices()[:2])) is step
    assert hagan.make_step(config, parallel.make_mesh(jax.devices()[:1])) is not step
    other = hagan.HAGANTrainConfig.tiny(model=dataclasses.replace(config.model, latent_dim=8))
    assert hagan.make_step(other, mesh) is not step
    with kernels.use("xla"):  # the convolution path acts at trace time: another step
        xla = hagan.make_step(config, mesh)
    with kernels.use("xla"):
        assert hagan.make_step(config, mesh) is xla
    assert (xla is step) == (kernels.info()["implementation"] == "xla")
