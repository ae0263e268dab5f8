"""Generation across processes (hosts) and their local devices: each process makes its own share
of the samples into a shared `--out` folder, spread over its local devices (`each_device`: one
thread per device, each running the single-device program on its items); process 0 writes what
covers them all once every process has finished.

A sample's bits depend on its index alone (its noise is keyed by it) and, for families that
generate in batches, on the batch it belongs to, so shares are whole batches and every device
runs the program one device runs: the merged output is the single-process, single-device output,
byte for byte. With one process, `mine` is everything and `barrier` does nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import jax

T = TypeVar("T")


def mine(items: Sequence[T]) -> list[T]:
    """This process's share of `items` (samples, or batches of them): every process_count-th,
    from its process index, so each process gets a like share of a cohort of any size."""
    return list(items[jax.process_index() :: jax.process_count()])


def is_leader() -> bool:
    """Whether this process writes what covers every process's share (the table, the manifest)."""
    return jax.process_index() == 0


BARRIER_TIMEOUT_MS = 7 * 24 * 3600 * 1000  # a share may take days; a dead peer ends the run anyway


def barrier(name: str) -> None:
    """Wait until every process has reached the barrier `name` (no-op for one process).

    The coordination service's barrier (what Orbax's checkpoints wait on), not a collective
    (`multihost_utils.sync_global_devices`): a process that finishes its share early waits
    without a Gloo/NCCL timeout, however long the others take.
    """
    if jax.process_count() > 1:
        from jax._src import distributed  # the client has no public accessor (Orbax does this)

        distributed.global_state.client.wait_at_barrier(f"jaxsyn:{name}", BARRIER_TIMEOUT_MS)


def generation_devices(devices: Sequence[jax.Device] | None = None) -> list[jax.Device]:
    """The local devices a process spreads its share over: `devices` if given, else every local
    accelerator, or one CPU device (XLA:CPU's devices share the host's cores, and one device's
    program already uses them all, so more would only add compilations)."""
    if devices is not None:
        if not devices:
            raise ValueError("devices is empty; expected at least one local device")
        return list(devices)
    local = jax.local_devices()
    return local if local[0].platform != "cpu" else local[:1]


def each_device(
    work: Callable[[T, jax.Device], None],
    items: Sequence[T],
    devices: Sequence[jax.Device],
    done: Callable[[], None] = lambda: None,
) -> None:
    """`work(item, device)` for every item, item k on `devices[k % D]`: one thread per device runs
    its items in order under `jax.default_device(device)` (one device: inline). `work` must put
    what it reads on `device` (`jax.device_put`); `done()` follows each item. The first error
    stops the other threads after their current item and is raised."""
    devices = list(devices)
    failed = threading.Event()

    def run(d: int) -> None:
        with jax.default_device(devices[d]):
            for item in items[d :: len(devices)]:
                if failed.is_set():
                    return
                try:
                    work(item, devices[d])
                except BaseException:
                    failed.set()
                    raise
                done()

    if len(devices) == 1:
        run(0)
        return
    with ThreadPoolExecutor(len(devices), thread_name_prefix="jaxsyn-device") as pool:
        futures = [pool.submit(run, d) for d in range(len(devices))]
    for f in futures:
        f.result()
