"""Generation across processes (hosts): each process makes its own share of the samples into a
shared `--out` folder; process 0 writes what covers them all once every process has finished.

A sample's bits depend on its index alone (its noise is keyed by it) and, for families that
generate in batches, on the batch it belongs to, so shares are whole batches: the merged output
is the single-process output, byte for byte. With one process, `mine` is everything and
`barrier` does nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
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
