"""Grain datasets of generated samples, alone or mixed with real data at a fixed fraction per
batch (`Generators.get_as_dataset`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxsyn.errors import ConfigError

KEYS = {"volumes": "volume", "images": "image"}


def examples(arrays: Mapping[str, Any]) -> list[dict]:
    """One dict per sample: "volume" [S, S, S] int16 HU or "image" [H, W, C] float32, plus the
    sample's row (a cohort's or table's columns; an image's labels), ids left out."""
    n = len(next(iter(arrays.values())))
    rows = arrays.get("table", arrays.get("labels"))
    out = []
    for i in range(n):
        ex = {}
        for kind, key in KEYS.items():
            if kind in arrays:
                ex[key] = arrays[kind][i]
        if rows is not None:
            for column, value in rows.iloc[i].items():
                if column not in ("image_id", "patient_id"):
                    ex[str(column)] = np.asarray(value)
        out.append(ex)
    return out


def source(items: Sequence[dict], batch_size: int | None = None):
    import grain

    ds = grain.MapDataset.source(list(items))
    return ds if batch_size is None else ds.batch(batch_size, drop_remainder=True)


def mix(synthetic: list[dict], real, fraction: float, batch_size: int | None, seed: int):
    """Batches of `batch_size`, k = round(fraction * batch_size) synthetic examples first, then
    batch_size - k real ones; each source is read in a seeded permutation, as many whole batches
    as both sources fill. Every example gains "synthetic" (bool)."""
    import grain

    if batch_size is None or batch_size < 1:
        raise ConfigError(
            "get_as_dataset: mix_with needs batch_size >= 1 (the fraction holds per batch)"
        )
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"synthetic_fraction is {fraction}; expected a number in [0, 1]")
    k = int(round(fraction * batch_size))
    r = batch_size - k
    batches = min(len(synthetic) // k if k else np.inf, len(real) // r if r else np.inf)
    if not np.isfinite(batches) or batches < 1:
        raise ConfigError(
            f"get_as_dataset: {len(synthetic)} synthetic and {len(real)} real examples cannot fill "
            f"one batch of {k} synthetic + {r} real; expected more samples or a smaller batch_size"
        )
    rng = np.random.default_rng(seed)
    syn_order, real_order = rng.permutation(len(synthetic)), rng.permutation(len(real))

    def example(i: int) -> dict:
        b, j = divmod(i, batch_size)
        if j < k:
            ex, flag = synthetic[int(syn_order[b * k + j])], True
        else:
            ex, flag = real[int(real_order[b * r + j - k])], False
        if not isinstance(ex, Mapping):
            raise ConfigError(
                f"mix_with's example {i} is a {type(ex).__name__}; expected a dict like the synthetic ones"
            )
        return {**ex, "synthetic": np.bool_(flag)}

    ds = grain.MapDataset.source(list(range(int(batches) * batch_size))).map(example)
    return ds.batch(batch_size, drop_remainder=True)
