"""Grain pipeline over a volume store: shuffled, sharded, resumable HA-GAN training examples.

Each example (before batching):
    low         float32 [S/4, S/4, S/4, 1]  level-2 volume, windowed to [-1, 1]
    slab        float32 [S/8, S, S, 1]      level-0 axial slices [slab_index, slab_index + S/8)
    slab_index  int32 []                    uniform in [0, 7S/8] (multiples of slab_step), HA-GAN's crop_idx
    volume      float32 [S, S, S, 1]        the whole level-0 volume, only with whole_volume=True
    conditions  float32 [C]                 the patient's table values for the named columns
    record      int32 []                    the volume's row in the store

Only the chunks a slab touches are read. The order is a function of the seed alone: Grain shuffles
each epoch with its own permutation, `random_map` draws the slab index from a per-element seed,
and the iterator state (`get_state`/`set_state`) is what checkpoints save.
"""

from __future__ import annotations

import dataclasses
import os

import grain
import numpy as np

from jaxsyn.data.store import VolumeStore
from jaxsyn.data.volumes import window
from jaxsyn.errors import ConfigError


@dataclasses.dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    batch_size: int = 4  # per process; PERF_NOTES reference iteration uses 4
    seed: int = 0
    conditions: tuple[str, ...] = ()  # numeric table columns, e.g. ("bmi_class",)
    num_epochs: int | None = None  # None: repeat forever
    slab_fraction: int = 8  # slab depth = S / slab_fraction (HA-GAN: S/8)
    read_threads: int = 4  # Grain reader threads; TensorStore reads release the GIL
    window: tuple[float, float] | None = None  # None: the store's window
    slab_step: int = 1  # slab starts are multiples of this (HA-GAN: 4, one hypercube slice)
    whole_volume: bool = False  # also yield the level-0 volume (HA-GAN's E^G step needs it)

    def __post_init__(self):
        if self.batch_size < 1:
            raise ConfigError(f"batch_size is {self.batch_size}; expected >= 1")
        if self.slab_fraction < 1 or self.slab_step < 1:
            raise ConfigError(
                f"slab_fraction {self.slab_fraction}, slab_step {self.slab_step}; expected >= 1"
            )


class _ReadExample(grain.transforms.RandomMap):
    """record index -> example dict; picklable (the store reopens its arrays in each worker)."""

    def __init__(
        self, store: VolumeStore, conditions: np.ndarray, depth: int, config: PipelineConfig
    ):
        self.store, self.conditions, self.depth = store, conditions, depth
        self.window = config.window or store.window
        self.step, self.whole = config.slab_step, config.whole_volume

    def random_map(self, record: int, rng: np.random.Generator) -> dict:
        start = self.step * int(rng.integers(0, (self.store.size - self.depth) // self.step + 1))
        low = self.store.read(record, level=2)
        as_input = lambda hu: window(hu.astype(np.float32), *self.window)[..., None]  # noqa: E731
        example = {
            "low": as_input(low),
            "slab_index": np.int32(start),
            "conditions": self.conditions[record],
            "record": np.int32(record),
        }
        if self.whole:  # one read; the slab is a view of it
            volume = as_input(self.store.read(record))
            example.update(volume=volume, slab=volume[start : start + self.depth])
        else:
            example["slab"] = as_input(self.store.read_slab(record, start, self.depth))
        return example


def make_dataset(
    store: VolumeStore | str | os.PathLike,
    config: PipelineConfig,
    *,
    shard_index: int = 0,
    shard_count: int = 1,
) -> grain.IterDataset:
    """Batched examples for one process (`shard_index` of `shard_count`, e.g. jax.process_index()).

    The processes' batches at a step, stacked in process order, are the single-process batch of
    `batch_size * shard_count` row for row (what `jax.make_array_from_process_local_data` builds).
    """
    store = store if isinstance(store, VolumeStore) else VolumeStore(store)
    if not 0 <= shard_index < shard_count:
        raise ConfigError(f"shard_index {shard_index}; expected 0..{shard_count - 1}")
    conditions = store.conditions(tuple(config.conditions))
    depth = store.size // config.slab_fraction
    ds = grain.MapDataset.range(len(store)).seed(config.seed).shuffle()
    ds = ds.repeat(config.num_epochs)
    # Slab indices are drawn from the element's global position, so sharding does not change them.
    ds = ds.random_map(_ReadExample(store, conditions, depth, config))
    # Contiguous blocks: process i takes batches i, i + n, ..., so the processes' batches stacked
    # in process order are exactly the single-process global batch, row for row. Lazy: each
    # process reads only its own elements.
    ds = ds.batch(config.batch_size, drop_remainder=True)[shard_index::shard_count]
    read = grain.ReadOptions(
        num_threads=config.read_threads, prefetch_buffer_size=2 * config.batch_size
    )
    return ds.to_iter_dataset(read)
