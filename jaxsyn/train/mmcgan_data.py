"""MMCGAN's training records: each volume of the store with its patient's encoded clinical row.

The patient table is encoded once (CTGAN's mode-specific normaliser, mode draws from the run's
seed) and spread over the volumes; a Grain map adds each record's row and tabular condition to
HA-GAN's batches, so the data iterator stays checkpointable.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import grain
import jax
import numpy as np
import pandas as pd

from jaxsyn.data.store import VolumeStore
from jaxsyn.data.tabular import TableTransformer, infer_schema
from jaxsyn.errors import DataError
from jaxsyn.train import hagan as img_train
from jaxsyn.train import parallel
from jaxsyn.train.mmcgan_config import MMCGANTrainConfig

TRANSFORMER_FILE = "transformer.json"


@dataclasses.dataclass(frozen=True)
class Records:
    """Per volume record: its patient's encoded clinical row and the tabular condition vector."""

    rows: np.ndarray  # float32 [N_volumes, data_dim]
    tab_cond: np.ndarray  # float32 [N_volumes, cond_dim]
    conditions: np.ndarray | None = None  # float32 [N_volumes, C]: the shared G's conditions


class _AddRows(grain.transforms.Map):
    """Adds each record's encoded row and tabular condition to a batch (picklable); with
    `extra` > 0 also `extra` more records' rows, tabular conditions and conditions, drawn
    uniformly with replacement. The draw is seeded by the batch itself (its records and slab
    positions, which the checkpointed data order fixes), so a resumed run draws the same rows."""

    def __init__(self, records: Records, extra: int = 0, seed: int = 0):
        self.records, self.extra, self.seed = records, extra, seed

    def map(self, batch: dict) -> dict:
        r = np.asarray(batch["record"])
        out = {**batch, "row": self.records.rows[r], "tab_cond": self.records.tab_cond[r]}
        if self.extra:
            entropy = [self.seed, *r.tolist(), *np.asarray(batch["slab_index"]).tolist()]
            x = np.random.default_rng(entropy).integers(0, len(self.records.rows), self.extra)
            out["extra_row"] = self.records.rows[x]
            out["extra_tab_cond"] = self.records.tab_cond[x]
            out["extra_conditions"] = self.records.conditions[x]
        return out


def patient_table(store: VolumeStore) -> pd.DataFrame:
    if store.table is None:
        raise DataError(
            f"{store.path}: the store has no clinical table; expected one (ingest with --table)"
        )
    return store.table


def fit_transformer(
    store: VolumeStore, config: MMCGANTrainConfig, out_dir: Path, progress: bool
) -> TableTransformer:
    """The run's table transformer: loaded from `out_dir` when resuming, else fitted on the
    store's patient table with the class column categorical (and, with `centre_rows`, the
    numeric columns centred by its classes)."""
    path = out_dir / TRANSFORMER_FILE
    if path.is_file():
        return TableTransformer.load(path)
    table = patient_table(store)
    kinds = {config.class_column: "categorical"} if config.class_column else {}
    schema = infer_schema(table, id_column=store.manifest["id_column"], kinds=kinds)
    tconfig = config.transformer
    if config.centre_rows and config.class_column:
        tconfig = dataclasses.replace(tconfig, centre_by=config.class_column)
    return TableTransformer.fit(table, schema, config=tconfig, progress=progress)


def records(
    store: VolumeStore, transformer: TableTransformer, config: MMCGANTrainConfig, progress: bool
) -> Records:
    """Encode the patient table once (mode draws from the seed) and spread it over the volumes."""
    table = patient_table(store)
    transformer.schema.check_columns(table, f"{store.path}/table.parquet")
    data = np.asarray(
        transformer.transform(table, jax.random.key(config.seed), progress=progress), np.float32
    )
    id_column = store.manifest["id_column"]
    position = {pid: i for i, pid in enumerate(table[id_column].astype(str))}
    patients = [str(r["patient_id"]) for r in store.manifest["volumes"]]
    rows = data[[position[p] for p in patients]]
    layout = transformer.layout
    tab_cond = np.zeros((len(rows), layout.cond_dim), np.float32)
    if config.class_column:
        discrete = [c.name for c in transformer.schema.columns if c.discrete]
        j = discrete.index(config.class_column)
        offset = sum(s.width for s in layout.cond_spans[:j])
        span = layout.cond_spans[j]
        tab_cond[:, offset : offset + span.width] = rows[:, span.start : span.start + span.width]
    conditions = np.asarray(store.conditions(config.condition_columns), np.float32)
    return Records(rows, tab_cond, conditions)


def dataset(store: VolumeStore, config: MMCGANTrainConfig, recs: Records):
    image_config = img_train.HAGANTrainConfig(
        model=dataclasses.replace(config.model.image, batch_size=config.batch_size),
        seed=config.seed,
        class_column=config.class_column,
        continuous_columns=config.continuous_columns,
        read_threads=config.read_threads,
    )
    img_train.check_store(store, image_config)
    n = jax.process_count()
    parallel.check_divisible("MMCGANTrainConfig.extra_rows", config.extra_rows, n, "processes")
    add = _AddRows(recs, config.extra_rows // n, config.seed * n + jax.process_index())
    return img_train.dataset(store, image_config).map(add)
