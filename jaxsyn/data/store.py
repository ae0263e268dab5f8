"""The volume store: multiscale int16 HU zarr arrays through TensorStore, a table and a manifest.

Layout of STORE/:
    manifest.json        format, size, window, spacing rule, one record per volume, skipped inputs,
                         the inputs' checksums (for idempotent re-runs) and every file's sha256
    volumes/0/           zarr [N, S, S, S] int16 HU, chunks [1, S/32, S, S]: an axial slab of S/8
                         slices touches at most 5 chunks, never the whole volume
    volumes/2/           zarr [N, S/4, S/4, S/4] int16 HU, one chunk per volume: the nearest-neighbour
                         ÷4 level HA-GAN's low-resolution discriminator sees (x[::4, ::4, ::4])
    table.parquet        the clinical table (ids as strings), if one was given

Volumes are stored [D, H, W] as `jaxsyn.data.volumes.Volume` (D inferior→superior). A volume's id is
its file stem; its patient id is the stem up to a `__` (so `P7__ct2.nii.gz` is a second volume of
patient P7), which must match the table's id column.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import tensorstore as ts
from tqdm.auto import tqdm

from jaxsyn.data import clinical
from jaxsyn.data.volumes import fit_cube, is_volume_path, load_volume, volume_stem
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.files import MANIFEST, atomic_dir, sha256, tree_files, write_json

FORMAT = "jaxsyn.volume-store/1"
LEVELS = (0, 2)  # level k holds the ÷2**k volume
DEFAULT_WINDOW = (-1024.0, 600.0)  # HA-GAN's CT window (reference preprocess.py)
# A volume thinner than this along any axis (a scout, one slice of a series) is refused unless
# asked for: fitted into the cube it would be a block of air with a sliver of anatomy.
MIN_SLICES = 8


def _check_size(size: int) -> None:
    if not (32 <= size <= 512 and size & (size - 1) == 0):
        raise ConfigError(f"--size is {size}; expected a power of two between 32 and 512")


def level_spec(path: Path, level: int, n: int | None = None, size: int | None = None) -> dict:
    spec = {
        "driver": "zarr",
        "kvstore": {"driver": "file", "path": str(path / "volumes" / str(level))},
    }
    if n is not None:
        s = size >> level
        depth_chunk = max(1, s // 32) if level == 0 else s
        spec["metadata"] = {
            "shape": [n, s, s, s],
            "chunks": [1, depth_chunk, s, s],
            "dtype": "<i2",
            "fill_value": -1024,
            "compressor": {"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 2},
        }
    return spec


def source_checksum(path: Path) -> str:
    """sha256 of a volume file (a DICOM folder: of its files' hashes), as manifests record it."""
    if path.is_dir():  # a DICOM folder: hash of its files' hashes
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return sha256_text("".join(f"{p.relative_to(path)}:{sha256(p)}" for p in files))
    return sha256(path)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def find_volumes(images: Path) -> list[Path]:
    if not images.is_dir():
        raise DataError(f"{images}: no such image folder")
    paths = sorted(p for p in images.iterdir() if is_volume_path(p))
    if not paths:
        raise DataError(
            f"{images}: no volumes found; expected .nii, .nii.gz files or DICOM folders"
        )
    stems = [volume_stem(p) for p in paths]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise DataError(f"{images}: several files share the id(s) {dup}; expected one file per id")
    return paths


def _join_table(
    table: Path, id_column: str | None, volume_ids: list[str]
) -> tuple[pd.DataFrame, str]:
    df = clinical.read_table(table)
    df = clinical.validate_table(df, id_column, table)
    id_column = id_column or clinical.detect_id_column(df, table)
    patients = {v.split("__")[0] for v in volume_ids}
    rows = set(df[id_column])
    if no_row := sorted(patients - rows):
        raise DataError(
            f"{table}: no row for the volume id(s) {no_row[:5]}; expected every volume's patient in column {id_column!r}"
        )
    if no_volume := sorted(rows - patients):
        raise DataError(
            f"{table}: id(s) {no_volume[:5]} have no volume in the image folder; expected a file <id>.nii.gz for every row"
        )
    return df, id_column


def ingest(
    images: str | os.PathLike,
    out: str | os.PathLike,
    *,
    table: str | os.PathLike | None = None,
    id_column: str | None = None,
    size: int = 256,
    spacing: float | None = None,
    window: tuple[float, float] = DEFAULT_WINDOW,
    skip_bad: bool = False,
    min_slices: int = MIN_SLICES,
    progress: bool = True,
) -> Path:
    """Turn a folder of volumes (and a clinical table) into a store; see the module docstring.

    A volume with fewer than `min_slices` voxels along an axis is a bad file (refused, or skipped
    with `skip_bad`); `min_slices=1` takes every volume.

    Re-running with the same inputs and options leaves the store as it is. The store is built under
    a temporary name and renamed into place, so a failed run leaves nothing behind.
    """
    images, out = Path(images), Path(out)
    _check_size(size)
    if spacing is not None and spacing <= 0:
        raise ConfigError(f"--spacing is {spacing} mm; expected > 0")
    if not window[0] < window[1]:
        raise ConfigError(f"--window is {list(window)}; expected LOW,HIGH with LOW < HIGH")
    if min_slices < 1:
        raise ConfigError(f"--min-slices is {min_slices}; expected >= 1")
    paths = find_volumes(images)
    ids = [volume_stem(p) for p in paths]
    df = None
    if table is not None:
        df, id_column = _join_table(Path(table), id_column, ids)
    inputs = {
        "size": size,
        "spacing": spacing,
        "window": list(window),
        "id_column": id_column,
        "skip_bad": skip_bad,
        "sources": {p.name: source_checksum(p) for p in paths},
        "table": None if table is None else {"name": Path(table).name, "sha256": sha256(table)},
    }
    if min_slices != MIN_SLICES:  # recorded only when changed: older stores' inputs still match
        inputs["min_slices"] = min_slices
    if _existing_store_matches(out, inputs):
        return out
    with atomic_dir(out) as tmp:  # renamed onto `out` (or onto an empty folder there) when done
        records, skipped = _write_volumes(tmp, paths, size, spacing, skip_bad, min_slices, progress)
        if df is not None:
            clinical.write_parquet(tmp / "table.parquet", df)
        manifest = {
            "format": FORMAT,
            "size": size,
            "levels": list(LEVELS),
            "window": list(window),
            "spacing_rule": "fit whole volume isotropically, pad with air"
            if spacing is None
            else f"fixed {spacing} mm, centred",
            "id_column": id_column,
            "volumes": records,
            "skipped": skipped,
            "inputs": inputs,
        }
        manifest["files"] = tree_files(tmp)
        write_json(tmp / MANIFEST, manifest)
    return out


def _existing_store_matches(out: Path, inputs: dict) -> bool:
    if not out.exists():
        return False
    manifest = out / MANIFEST
    if manifest.is_file():
        old = json.loads(manifest.read_text()).get("inputs")
        if old == json.loads(json.dumps(inputs)):
            return True
        changed = sorted(
            k for k in inputs if (old or {}).get(k) != json.loads(json.dumps(inputs[k]))
        )
        raise DataError(
            f"{out}: already holds a different store (inputs differ in {changed}); expected a new path or the same inputs"
        )
    if out.is_dir() and not any(out.iterdir()):
        return False
    raise DataError(f"{out}: exists and is not a jaxsyn store; expected a new or empty folder")


def _write_volumes(root, paths, size, spacing, skip_bad, min_slices, progress):
    arrays = {
        k: ts.open(level_spec(root, k, len(paths), size), create=True).result() for k in LEVELS
    }
    records, skipped, pending = [], [], []
    try:
        for path in tqdm(paths, desc="ingest", unit="vol", disable=not progress):
            try:
                vol = load_volume(path)
                _check_thickness(path, vol.shape, min_slices)
            except DataError as e:
                if not skip_bad:
                    raise
                skipped.append({"source": path.name, "error": str(e)})
                continue
            cube = fit_cube(vol, size, spacing)
            hu = np.clip(np.rint(cube.hu), -32768, 32767).astype(np.int16)
            k = len(records)
            for f in pending:  # keep one volume's writes in flight while the next one loads
                f.result()
            pending = [arrays[lv][k].write(hu[:: 2**lv, :: 2**lv, :: 2**lv]) for lv in LEVELS]
            stem = volume_stem(path)
            records.append(
                {
                    "id": stem,
                    "patient_id": stem.split("__")[0],
                    "source": path.name,
                    "source_shape": list(vol.shape),
                    "source_spacing": list(vol.spacing),
                    "spacing": list(cube.spacing),
                    "affine": cube.affine.tolist(),
                }
            )
    finally:  # never leave a write running into a folder that is about to be removed
        for f in pending:
            f.result()
    if not records:
        raise DataError(
            f"{paths[0].parent}: every volume was bad ({len(skipped)} skipped); expected at least one"
        )
    if len(records) < len(paths):  # drop the rows reserved for skipped files
        for level in LEVELS:
            arrays[level].resize(
                exclusive_max=[len(records), None, None, None], shrink_only=True
            ).result()
    return records, skipped


def _check_thickness(path: Path, shape: tuple[int, ...], min_slices: int) -> None:
    if min(shape) < min_slices:
        raise DataError(
            f"{path}: shape {list(shape)} is {min(shape)} voxel(s) thin; expected >= {min_slices} "
            "along every axis (--min-slices 1 takes it)"
        )


@dataclasses.dataclass(frozen=True)
class VolumeStore:
    """Read access to a store made by `ingest`. Cheap to pickle: arrays open lazily per process."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))
        if not (self.path / MANIFEST).is_file():
            raise DataError(
                f"{self.path}: not a jaxsyn store (no {MANIFEST}); expected the output of `jaxsyn ingest`"
            )

    @functools.cached_property
    def manifest(self) -> dict:
        manifest = json.loads((self.path / MANIFEST).read_text())
        if manifest.get("format") != FORMAT:
            raise DataError(
                f"{self.path / MANIFEST}: field format is {manifest.get('format')!r}; expected {FORMAT!r}"
            )
        return manifest

    def __getstate__(self):
        return {"path": self.path}  # TensorStore handles and caches stay in their process

    def __setstate__(self, state):
        object.__setattr__(self, "path", state["path"])

    @property
    def size(self) -> int:
        return int(self.manifest["size"])

    @property
    def ingest_spacing(self) -> float | None:
        """`ingest --spacing` (mm) of this store; None: each volume fitted whole to the cube."""
        return self.manifest.get("inputs", {}).get("spacing")

    @property
    def window(self) -> tuple[float, float]:
        return tuple(self.manifest["window"])

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.manifest["volumes"]]

    def __len__(self) -> int:
        return len(self.manifest["volumes"])

    @functools.cache  # noqa: B019 - one handle per level and store, cleared with the store
    def level(self, k: int) -> ts.TensorStore:
        if k not in self.manifest["levels"]:
            raise ConfigError(
                f"{self.path}: level {k} not stored; expected one of {self.manifest['levels']}"
            )
        # No chunk cache: a slab read must cost exactly the chunks it touches.
        context = ts.Context({"cache_pool": {"total_bytes_limit": 0}})
        return ts.open(level_spec(self.path, k), context=context, open=True).result()

    def read(self, index: int, level: int = 0) -> np.ndarray:
        """The whole volume `index` at `level`: int16 HU [S/2**level]³."""
        return self.level(level)[index].read().result()

    def read_slab(self, index: int, start: int, depth: int) -> np.ndarray:
        """Axial slices [start, start + depth) of level 0: int16 HU [depth, S, S]."""
        if not 0 <= start <= self.size - depth:
            raise ConfigError(
                f"slab start {start}; expected 0..{self.size - depth} for depth {depth}"
            )
        return self.level(0)[index, start : start + depth].read().result()

    @functools.cached_property
    def table(self) -> pd.DataFrame | None:
        path = self.path / "table.parquet"
        return pd.read_parquet(path) if path.is_file() else None

    def conditions(self, columns: tuple[str, ...]) -> np.ndarray:
        """float32 [N, len(columns)]: each volume's patient row of the named numeric columns."""
        if not columns:
            return np.zeros((len(self), 0), np.float32)
        if self.table is None:
            raise ConfigError(
                f"{self.path}: conditions {list(columns)} asked for, but the store has no table"
            )
        table = self.table.set_index(self.manifest["id_column"])
        for c in columns:
            if c not in table.columns:
                raise ConfigError(
                    f"{self.path}/table.parquet: no condition column {c!r}; expected one of {list(table.columns)}"
                )
            if not (
                pd.api.types.is_numeric_dtype(table[c]) or pd.api.types.is_bool_dtype(table[c])
            ):
                raise ConfigError(
                    f"{self.path}/table.parquet: condition column {c!r} is {table[c].dtype}; expected numbers or booleans (encode categories as integers)"
                )
        patients = [r["patient_id"] for r in self.manifest["volumes"]]
        values = table.loc[patients, list(columns)].astype("float64").to_numpy(np.float32)
        bad = np.argwhere(np.isnan(values))
        if len(bad):
            i, j = bad[0]
            raise DataError(
                f"{self.path}/table.parquet: condition {columns[j]!r} is missing for patient {patients[i]} ({len(bad)} missing); expected a value for every volume"
            )
        return values
