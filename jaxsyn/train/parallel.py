"""Data parallelism: one mesh axis, a sharded step, and the multi-host start.

The batch is split over the mesh axis `data`; parameters and optimiser states are replicated.
A step runs under `jax.shard_map`: each device sees its share of the batch, and the model code
names the axis where it needs the whole batch (`pmean` of gradients, losses and batch statistics).
The same code runs on one CPU, 8 simulated devices, a GPU node or a pod: only the mesh changes.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsyn import kernels
from jaxsyn.errors import ConfigError
from jaxsyn.nn import remat

DATA = "data"  # the mesh axis the batch is split over; models name it for cross-device means

# Environment a multi-host launch sets on every host (JAX itself reads JAX_COORDINATOR_ADDRESS).
COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"  # host:port of process 0, e.g. 10.0.0.1:1234
NUM_PROCESSES_ENV = "JAX_NUM_PROCESSES"
PROCESS_ID_ENV = "JAX_PROCESS_ID"
AUTO_ENV = "JAXSYN_DISTRIBUTED"  # "auto": let JAX detect a TPU pod, Slurm or Open MPI job


def initialize_distributed() -> bool:
    """Join a multi-process run when the environment names one; True if this is one.

    Must run before any JAX computation. With `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES` and
    `JAX_PROCESS_ID` set, every process joins the coordinator; with `JAXSYN_DISTRIBUTED=auto`,
    JAX reads the cluster's own variables. Otherwise this is a single-process run and nothing
    happens, so the same command runs on one host or many.
    """
    if jax.distributed.is_initialized():
        return True
    if os.environ.get(AUTO_ENV) == "auto":
        jax.distributed.initialize()
        return True
    address = os.environ.get(COORDINATOR_ENV)
    if not address:
        return False
    jax.distributed.initialize(
        coordinator_address=address,
        num_processes=_env_int(NUM_PROCESSES_ENV, minimum=1),
        process_id=_env_int(PROCESS_ID_ENV, minimum=0),
    )
    return True


def _env_int(name: str, *, minimum: int) -> int:
    value = os.environ.get(name)
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = None
    if number is None or number < minimum:
        raise ConfigError(
            f"environment variable {name} is {value!r}; expected an integer >= {minimum} "
            f"(it must be set with {COORDINATOR_ENV})"
        )
    return number


def make_mesh(devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh with axis `data` over `devices` (default: every device of every process).

    Explicit axis type: shardings are part of array types, so a mismatch is a trace-time error
    rather than a silent reshard.
    """
    devices = list(jax.devices() if devices is None else devices)
    return jax.make_mesh(
        (len(devices),), (DATA,), axis_types=(jax.sharding.AxisType.Explicit,), devices=devices
    )


def replicated(mesh: jax.sharding.Mesh) -> jax.NamedSharding:
    return jax.NamedSharding(mesh, jax.P())


def batch_sharding(mesh: jax.sharding.Mesh) -> jax.NamedSharding:
    """Leading (batch) dimension split over `data`, the rest whole."""
    return jax.NamedSharding(mesh, jax.P(DATA))


def shard_batch(local_batch: Any, mesh: jax.sharding.Mesh) -> Any:
    """This process's rows (a pytree of numpy [B_local, ...]) -> global arrays [B_global, ...].

    Process i's rows become rows [i * B_local, (i + 1) * B_local) of the global batch (its
    devices' positions in the mesh), so the pipeline must hand process i that block.
    """
    sharding = batch_sharding(mesh)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch
    )


def data_parallel(
    train_step: Callable[[Any, Any, jax.Array], tuple[Any, dict]],
    mesh: jax.sharding.Mesh,
    *,
    key_of: Callable[[Any], jax.Array] = lambda state: state.key,
) -> Callable[[Any, Any], tuple[Any, dict]]:
    """`train_step(state, batch, key)` -> jitted `step(state, batch) -> (state, metrics)`.

    Inside, `batch` is this device's share; `train_step` must average its gradients and metrics
    over `DATA` (`mean_value_and_grad`); the replicated out_specs, checked by shard_map, refuse
    anything that still differs between devices. The key is
    the state's own (`key_of`), so a run's randomness survives checkpoints. The state is donated:
    its buffers are reused for the new state.
    """

    def body(state, batch):
        return train_step(state, batch, key_of(state))

    sharded = jax.shard_map(
        body, mesh=mesh, in_specs=(jax.P(), jax.P(DATA)), out_specs=(jax.P(), jax.P())
    )
    platform = mesh.devices.flat[0].platform
    return jax.jit(sharded, donate_argnums=(0,), compiler_options=remat.compiler_options(platform))


def check_divisible(field: str, value: int, count: int, units: str = "devices") -> None:
    """Refuse a config value (a batch, extra rows) that does not split evenly over `count`
    devices or processes: a ConfigError naming `field`, what it is and what was expected."""
    if value % count:
        raise ConfigError(f"{field} is {value}; expected a multiple of the {count} {units}")


def cached_step(train_step: Callable, config: Any, mesh: jax.sharding.Mesh, **static) -> Callable:
    """`data_parallel(partial(train_step, config=config, **static), mesh)`, made once per (step
    function, config, mesh, static arguments, 3D convolution path) in a process: a run resumed or
    repeated in the same process (a notebook, a sweep, the tests) reuses the traced and compiled
    step instead of tracing it again (about 10 s for MMCGAN's). The convolution path that
    `jaxsyn.kernels.use` selects is part of the key, because it acts when a step is traced.
    `config` and `static` must be hashable (the frozen dataclass configs are)."""
    path = kernels.info()["implementation"]
    return _cached_step(train_step, config, mesh, path, tuple(sorted(static.items())))


@functools.lru_cache(maxsize=16)
def _cached_step(train_step, config, mesh, path, static) -> Callable:
    del path  # in the key only: the step traces with whatever path is selected now
    return data_parallel(functools.partial(train_step, config=config, **dict(static)), mesh)


def mean_value_and_grad(
    loss_fn: Callable[..., Any], *, has_aux: bool = False
) -> Callable[..., tuple]:
    """`loss_fn(params, *args)` on this device's share -> (global mean loss, its gradient).

    Inside `shard_map` only. The loss is `pmean`ed over `DATA` before differentiating: the
    parameters enter replicated, and the transpose of that broadcast is a `psum`, so the gradient
    JAX returns is already the all-reduced mean gradient, identical on every device. (Taking
    `pmean` of per-device gradients instead would be wrong here: under shard_map's replication
    checks those gradients are already summed, so the result would be `n_devices` times too big.)
    With `has_aux`, `loss_fn` returns (loss, aux) and aux comes back as it is: `pmean` what in
    it depends on the device's share before it leaves the step.
    """
    if not has_aux:
        return jax.value_and_grad(lambda params, *args: jax.lax.pmean(loss_fn(params, *args), DATA))

    def mean_loss(params, *args):
        loss, aux = loss_fn(params, *args)
        return jax.lax.pmean(loss, DATA), aux

    return jax.value_and_grad(mean_loss, has_aux=True)


class HostCountedStep:
    """`(state, batch) -> (state, metrics)` that runs the step compiled for the phase the step
    count selects: `phase_of(step)` (a hashable phase: a prog-GAN stage, a DUIIT phase) picks
    `step_for(phase)`, which should be cached (`cached_step`). The count is read from the state
    once and then kept on the host, so choosing never waits on the device; a `lax.cond` on the
    device instead ran XLA:CPU several times slower. `on_change(state)`, if given, transforms the
    state before the first step of a new phase (prog-GAN's Adam reset)."""

    def __init__(
        self,
        phase_of: Callable[[int], Any],
        step_for: Callable[[Any], Callable],
        on_change: Callable[[Any], Any] | None = None,
    ):
        self.phase_of, self.step_for, self.on_change = phase_of, step_for, on_change
        self.step: int | None = None  # steps completed, once read from the state

    def __call__(self, state, batch):
        if self.step is None:
            with jax.transfer_guard("allow"):
                self.step = int(jax.device_get(state.step))
        phase = self.phase_of(self.step)
        if self.on_change and self.step > 0 and phase != self.phase_of(self.step - 1):
            state = self.on_change(state)
        self.step += 1
        return self.step_for(phase)(state, batch)


def example_keys(key: jax.Array, n: int) -> jax.Array:
    """Keys for this device's `n` examples, one per example, from its index in the global batch.

    Inside `shard_map` only. Noise drawn from these keys does not depend on how the batch is split,
    so 8 devices draw exactly the noise 1 device draws.
    """
    first = jax.lax.axis_index(DATA) * n
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(first + jnp.arange(n))


def compiled_memory(fn: Callable, *args: Any) -> dict[str, int]:
    """Bytes XLA plans for `fn(*args)`: arguments, outputs, temporaries, aliased (donated), peak."""
    options = remat.compiler_options(jax.default_backend())
    jitted = fn if hasattr(fn, "lower") else jax.jit(fn)  # a step from data_parallel is jitted
    stats = jitted.lower(*args).compile(compiler_options=options).memory_analysis()
    fields = (
        "argument_size_in_bytes",
        "output_size_in_bytes",
        "temp_size_in_bytes",
        "alias_size_in_bytes",
        "generated_code_size_in_bytes",
        "peak_memory_in_bytes",
    )
    return {name: int(getattr(stats, name, 0) or 0) for name in fields}
