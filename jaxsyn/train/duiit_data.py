"""DUIIT's training batches: a target cohort and one cohort per source modality, each served in
its own seeded order, together in one checkpointable Grain iterator.

Cohorts come from `jaxsyn.data.labelled.load_labelled` (a folder of images or NIfTI volumes with
labels.csv, or `phantom:head-ct|head-mri|head-pet:N`). Batch i of a cohort with n examples is
the block (i mod n // B) of a permutation drawn for epoch i // (n // B) from (seed, cohort):
nothing but the step index is state, so resuming restores the position and nothing else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import grain
import numpy as np

from jaxsyn.data.labelled import LabelledImages, load_labelled
from jaxsyn.errors import ConfigError, DataError


@dataclasses.dataclass(frozen=True)
class Cohorts:
    """The target's labelled images and each source's (labels None: translation only)."""

    target: LabelledImages
    sources: tuple[LabelledImages, ...]

    def named(self) -> dict[str, LabelledImages]:
        """{"target": ..., "s0": ..., "s1": ...}: the names batches use."""
        return {"target": self.target, **{f"s{k}": s for k, s in enumerate(self.sources)}}


def load_cohorts(
    target, sources: Sequence, label: str | None, size: int, seed: int, *, progress: bool = True
) -> Cohorts:
    """Each of `target` and `sources` is a LabelledImages (kept as it is) or a spec for
    `load_labelled`; source k's phantom patients are drawn from seed + 1 + k, so no simulated
    patient is in two modalities."""

    def load(spec, offset):
        if isinstance(spec, LabelledImages):
            return spec
        return load_labelled(str(spec), label, size, seed + offset, progress=progress)

    cohorts = Cohorts(load(target, 0), tuple(load(s, 1 + k) for k, s in enumerate(sources)))
    for ds in cohorts.named().values():
        if ds.images.shape[1:3] != (size, size):
            raise DataError(
                f"{ds.source}: images of {ds.images.shape[1]} x {ds.images.shape[2]}; expected "
                f"{size} x {size} (the translator's size)"
            )
        if label is not None and ds.labels is None:
            raise DataError(f"{ds.source}: no labels; expected a {label!r} column")
    return cohorts


def fit_batch(batch: int, cohorts: Cohorts, n_devices: int) -> int:
    """`batch`, no larger than the smallest cohort, rounded down to a multiple of the device
    count (at least one example a device); says so when it changes."""
    named = cohorts.named().values()
    smallest = min(len(ds) for ds in named)
    if smallest < n_devices:
        source = min(named, key=len).source
        raise DataError(
            f"{source}: {smallest} examples; expected at least one per device ({n_devices})"
        )
    fitted = max(n_devices, min(batch, smallest) // n_devices * n_devices)
    if fitted != batch:
        print(f"batch size {batch} > {smallest} examples of a cohort: using {fitted} "
              f"({n_devices} devices)")  # fmt: skip
    return fitted


class _Batch(grain.transforms.Map):
    """Step index -> this process's rows of every cohort's batch (picklable)."""

    def __init__(self, arrays: dict, batch: int, seed: int, process_index: int, process_count: int):
        self.arrays, self.batch, self.seed = arrays, batch, seed
        self.local = batch // process_count
        self.offset = process_index * self.local

    def map(self, step):
        out = {}
        for k, (name, (images, labels)) in enumerate(self.arrays.items()):
            n = len(images)
            per_epoch = n // self.batch
            epoch, block = divmod(int(step), per_epoch)
            order = np.random.default_rng([self.seed, k, epoch]).permutation(n)
            rows = order[block * self.batch : (block + 1) * self.batch]
            rows = rows[self.offset : self.offset + self.local]
            out[name] = {"image": images[rows], "label": labels[rows]}
        return out


def dataset(
    cohorts: Cohorts, batch: int, seed: int, *, process_index: int = 0, process_count: int = 1
) -> grain.IterDataset:
    """Batches {"target": {"image" [B_local, S, S, 1], "label" [B_local]}, "s0": {...}, ...};
    unlabelled cohorts get zero labels (unused)."""
    if batch % process_count:
        raise ConfigError(
            f"DUIITTrainConfig.batch_size is {batch}; expected a multiple of the "
            f"{process_count} processes"
        )
    arrays = {}
    for name, ds in cohorts.named().items():
        labels = ds.labels if ds.labels is not None else np.zeros(len(ds), np.float32)
        arrays[name] = (np.asarray(ds.images, np.float32), np.asarray(labels, np.float32))
    ds = grain.MapDataset.range(1 << 40).map(
        _Batch(arrays, batch, seed, process_index, process_count)
    )
    return ds.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4))


def label_stats(cohorts: Cohorts) -> tuple[float, float]:
    """(mean, sd) of the target's labels: the predictor's standardisation (sd 1 if constant)."""
    labels = np.asarray(cohorts.target.labels, np.float64)
    sd = float(labels.std())
    return float(labels.mean()), sd if sd > 0 else 1.0
