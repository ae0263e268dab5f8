"""Clinical tables: read CSV/Parquet keyed by patient id, with checks that name the bad row.

The full tabular schema (kinds, bounds, encoders) belongs to the tabular model; here we only make
sure a table can be joined to volumes: a readable file, an id column that is complete and unique,
and no column whose values mix numbers with stray text.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from jaxsyn.errors import DataError
from jaxsyn.files import atomic_path

ID_NAME = re.compile(r"(^|_)(id|patient|subject|pid|mrn)($|_)", re.IGNORECASE)


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV or Parquet table (ids and text kept as strings)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such table file")
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        if path.suffix.lower() in (".csv", ".tsv"):
            return pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    except Exception as e:
        raise DataError(f"{path}: table unreadable ({type(e).__name__}: {e})") from e
    raise DataError(
        f"{path}: unknown table format {path.suffix!r}; expected .csv, .tsv or .parquet"
    )


def detect_id_column(df: pd.DataFrame, path: Path) -> str:
    """The one column named like an id whose values are unique per row."""
    named = [c for c in df.columns if ID_NAME.search(str(c))]
    unique = [c for c in named if df[c].is_unique]
    # One unique id-like column wins; a lone id-like column with duplicates is still the id column,
    # so validate_table can name its duplicates.
    candidates = unique if len(unique) == 1 or len(named) != 1 else named
    if len(candidates) != 1:
        found = ", ".join(map(str, candidates)) or "none"
        raise DataError(
            f"{path}: cannot tell the patient id column (unique columns named like an id: {found});"
            " expected exactly one; pass --id-column NAME"
        )
    return str(candidates[0])


def validate_table(
    df: pd.DataFrame, id_column: str | None, path: str | os.PathLike
) -> pd.DataFrame:
    """Check ids and column types; return the table with ids as strings, indexed by nothing."""
    path = Path(path)
    id_column = id_column or detect_id_column(df, path)
    if id_column not in df.columns:
        raise DataError(
            f"{path}: no id column {id_column!r}; expected one of the columns {list(df.columns)}"
        )
    ids = df[id_column]
    missing = np.flatnonzero(ids.isna().to_numpy())
    if len(missing):
        raise DataError(
            f"{path}: column {id_column!r} is empty in {len(missing)} rows (first: row {missing[0] + 2}"
            " counting the header as row 1); expected an id on every row"
        )
    ids = ids.astype(str).str.strip()
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        raise DataError(
            f"{path}: column {id_column!r} has duplicate ids {sorted(set(dup))[:5]}; expected one row per patient"
        )
    for column in df.columns:
        if column != id_column:
            check_not_mixed(df[column], column, ids, path)
    out = df.copy()
    out[id_column] = ids
    return out


def check_not_mixed(values: pd.Series, column: str, ids: pd.Series, path: Path) -> None:
    """A text column whose values are almost all numbers holds a typo, not a category."""
    if values.dtype.kind not in "OUS" and not isinstance(values.dtype, pd.StringDtype):
        return
    present = values.dropna()
    numeric = pd.to_numeric(present, errors="coerce")
    bad = numeric.isna()
    if len(present) >= 5 and 0 < bad.sum() <= max(1, 0.1 * len(present)):
        row = bad[bad].index[0]
        raise DataError(
            f"{path}: column {column!r} holds {present[row]!r} for patient {ids[row]};"
            f" expected a number like the column's other {int((~bad).sum())} values"
        )


def write_parquet(path: str | os.PathLike, df: pd.DataFrame) -> Path:
    with atomic_path(path, suffix=".parquet") as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)
