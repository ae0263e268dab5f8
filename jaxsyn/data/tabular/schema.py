"""Table schema: each column's kind, categories, bounds and missingness, saved as JSON.

Kinds: `categorical` and `binary` (discrete: a fixed set of observed values, one-hot encoded and
conditionable; a value never seen in training is never generated), `integer`, `float` and
`datetime` (numeric: a Gaussian mixture per column; outputs are clipped to the observed [min, max]
and rounded to the observed number of decimals, 0 for integers; datetimes are seconds since the
epoch, rounded to whole seconds). A column with missing values gets `missing=True` and its
missing rate; the transformer then models missingness with an indicator instead of refusing it.

Inference (`infer_schema`), per column, unless `kinds` overrides it:
  datetime dtype                                  -> datetime
  bool dtype, or numbers all in {0, 1}            -> binary
  numbers with integral values, <= max_categories -> categorical (e.g. ECOG 0/1/2, a class code)
  numbers with integral values, more distinct     -> integer (also a float column read from CSV
                                                     whose NaNs made pandas drop the int dtype)
  other numbers                                   -> float
  anything else (text, category dtype)            -> categorical
The id column (given, or the one column named like an id whose values are unique) is kept out of
the model; synthetic rows get fresh ids "syn_000000", "syn_000001", ... (`jaxsyn.data.ids`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jaxsyn.data.clinical import ID_NAME, check_not_mixed, read_table, validate_table
from jaxsyn.data.ids import synthetic_id
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.files import write_json

KINDS = ("categorical", "binary", "integer", "float", "datetime")
DISCRETE, NUMERIC = ("categorical", "binary"), ("integer", "float", "datetime")
FORMAT = "jaxsyn.tabular.schema/1"
MAX_DECIMALS = 6  # more decimals than this: a continuous measurement, left unrounded
MAX_CATEGORIES = 10  # integral columns with at most this many values are categorical


@dataclasses.dataclass(frozen=True, kw_only=True)
class ColumnSchema:
    name: str
    kind: str  # one of KINDS
    dtype: str  # the pandas dtype the inverse transform restores, e.g. "int64", "Int64", "str"
    missing: bool = False  # has missing values: modelled with an indicator
    missing_rate: float = 0.0
    categories: tuple | None = None  # discrete kinds: the observed values (sorted when sortable)
    min: float | None = None  # numeric kinds: observed bounds (datetime: epoch seconds)
    max: float | None = None
    decimals: int | None = None  # numeric kinds: outputs rounded to this; None = unrounded

    @property
    def discrete(self) -> bool:
        return self.kind in DISCRETE


@dataclasses.dataclass(frozen=True, kw_only=True)
class TableSchema:
    columns: tuple[ColumnSchema, ...]  # the model's columns in table order, id excluded
    id_column: str | None = None
    id_prefix: str = "syn_"
    n_rows: int = 0  # rows the schema was inferred from

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def __getitem__(self, name: str) -> ColumnSchema:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def synthetic_ids(self, n: int, start: int = 0) -> np.ndarray:
        """[n] fresh ids "syn_000000", ...: every family's scheme (`jaxsyn.data.ids`)."""
        return np.array([synthetic_id(i, self.id_prefix) for i in range(start, start + n)], object)

    def check_columns(self, df: pd.DataFrame, source: str = "table") -> None:
        """DataError naming the schema columns `df` lacks."""
        absent = [n for n in self.names if n not in df.columns]
        if absent:
            raise DataError(f"{source}: no column(s) {absent}; expected the schema's {self.names}")

    def to_dict(self) -> dict:
        return {"format": FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "schema") -> TableSchema:
        if not isinstance(d, Mapping) or d.get("format") != FORMAT:
            found = d.get("format") if isinstance(d, Mapping) else type(d).__name__
            raise DataError(f"{source}: format {found!r}; expected {FORMAT!r}")
        try:
            columns = tuple(_column_from_dict(c) for c in d["columns"])
            fields = {k: d[k] for k in ("id_column", "id_prefix", "n_rows") if k in d}
        except (KeyError, TypeError) as e:
            raise DataError(f"{source}: malformed schema ({type(e).__name__}: {e})") from e
        for c in columns:
            if c.kind not in KINDS:
                raise DataError(
                    f"{source}: column {c.name!r} has kind {c.kind!r}; expected {KINDS}"
                )
        return cls(columns=columns, **fields)

    def save(self, path: str | os.PathLike) -> Path:
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> TableSchema:
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: cannot read schema ({type(e).__name__}: {e})") from e
        return cls.from_dict(d, str(path))


def _column_from_dict(d: Mapping) -> ColumnSchema:
    d = dict(d)
    if d.get("categories") is not None:
        d["categories"] = tuple(d["categories"])
    return ColumnSchema(**d)


def infer_schema(
    table: pd.DataFrame | str | os.PathLike,
    *,
    id_column: str | None = None,
    kinds: Mapping[str, str] | None = None,
    max_categories: int = MAX_CATEGORIES,
    detect_id: bool = True,
) -> TableSchema:
    """Infer the schema of a DataFrame or a CSV/Parquet file; `kinds` overrides column kinds.
    `detect_id=False` models every column (no id column unless `id_column` names one)."""
    if isinstance(table, pd.DataFrame):
        df, source = table, "table"
    else:
        df, source = read_table(table), str(table)
    if len(df) == 0:
        raise DataError(f"{source}: the table has no rows; expected at least one")
    if detect_id or id_column is not None:
        id_column = _find_id(df, id_column, source)
    names = [str(c) for c in df.columns if c != id_column]
    kinds = dict(kinds or {})
    for name, kind in kinds.items():
        if name not in names:
            what = "is the id column" if name == id_column else f"is not in the table {names}"
            raise ConfigError(f"{source}: kind override for column {name!r} ({kind!r}): it {what}")
        if kind not in KINDS:
            raise ConfigError(
                f"{source}: kind override for column {name!r} is {kind!r}; expected one of {KINDS}"
            )
    if not names:
        raise DataError(f"{source}: only the id column {id_column!r}; expected data columns")
    _check_table(df, id_column, names, source)
    columns = tuple(
        _infer_column(df[n], kinds.get(n), max_categories, f"{source}: column {n!r}") for n in names
    )
    return TableSchema(columns=columns, id_column=id_column, n_rows=len(df))


def _check_table(df: pd.DataFrame, id_column: str | None, names: list, source: str) -> None:
    """clinical.validate_table's checks: complete unique ids, no number columns with stray text.

    The text check parses every row, so it runs only on columns with a numeric distinct value
    (a column with none cannot fail it): 13 s -> 1 s on 2M rows.
    """
    ids = pd.Series(np.arange(len(df)).astype(str), index=df.index)
    if id_column is not None:
        ids = validate_table(df[[id_column]], id_column, source)[id_column]
    for name in names:
        s = df[name]
        if s.dtype.kind in "OUS" or isinstance(s.dtype, pd.StringDtype):
            distinct = pd.Series(pd.unique(s.dropna()))
            if pd.to_numeric(distinct, errors="coerce").notna().any():
                check_not_mixed(s, name, ids, Path(source))


def _find_id(df: pd.DataFrame, id_column: str | None, source: str) -> str | None:
    if id_column is not None:
        if id_column not in df.columns:
            raise ConfigError(
                f"{source}: id column {id_column!r} not found; expected one of {list(df.columns)}"
            )
        return id_column
    found = [str(c) for c in df.columns if ID_NAME.search(str(c)) and df[c].is_unique]
    if len(found) > 1:
        raise DataError(
            f"{source}: columns {found} are all unique and named like an id; expected at most"
            " one; name the id column explicitly"
        )
    return found[0] if found else None


def _infer_column(s: pd.Series, kind: str | None, max_categories: int, where: str):
    missing = s.isna().to_numpy()
    if missing.all():
        raise DataError(f"{where} is missing in all {len(s)} rows; expected some values (drop it)")
    kind = kind or _infer_kind(s, missing, max_categories, where)
    common = dict(
        name=str(s.name),
        kind=kind,
        dtype=str(s.dtype),
        missing=bool(missing.any()),
        missing_rate=float(missing.mean()),
    )
    if kind in DISCRETE:
        categories = _categories(s[~missing])
        if kind == "binary" and len(categories) > 2:
            raise DataError(f"{where} has {len(categories)} values; binary expects at most 2")
        return ColumnSchema(**common, categories=categories)
    values, _ = numeric_values(s, kind, where)
    values = values[~missing]
    decimals = 0 if kind == "integer" else _decimals(values)
    if kind == "datetime" and decimals != 0:
        decimals = None
    return ColumnSchema(
        **common, min=float(values.min()), max=float(values.max()), decimals=decimals
    )


def _infer_kind(s: pd.Series, missing: np.ndarray, max_categories: int, where: str) -> str:
    if pd.api.types.is_datetime64_any_dtype(s):
        return "datetime"
    if pd.api.types.is_bool_dtype(s):
        return "binary"
    if not pd.api.types.is_numeric_dtype(s):
        return "categorical"
    distinct = np.unique(numeric_values(s, "float", where)[0][~missing])
    if np.isin(distinct, (0.0, 1.0)).all():
        return "binary"
    if np.array_equal(distinct, np.round(distinct)):
        return "categorical" if len(distinct) <= max_categories else "integer"
    return "float"


def numeric_values(s: pd.Series, kind: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """A numeric-kind column as float64 [N] (datetime: epoch seconds; 0 where missing) and its
    present mask [N]. DataError names the first value that is not a number (or date)."""
    if kind == "datetime":
        t = pd.to_datetime(s, errors="coerce")
        if t.dt.tz is not None:
            t = t.dt.tz_convert("UTC").dt.tz_localize(None)
        present = t.notna().to_numpy()
        ns = t.to_numpy("datetime64[ns]").astype(np.int64)
        values = np.where(present, ns / 1e9, 0.0)
    else:
        numbers = pd.to_numeric(s, errors="coerce")
        present = numbers.notna().to_numpy()
        values = numbers.to_numpy(dtype=np.float64, na_value=0.0)
    bad = np.flatnonzero(~present & s.notna().to_numpy())
    if len(bad):
        raise DataError(f"{where} holds {s.iloc[bad[0]]!r} (row {bad[0]}); expected a {kind}")
    if not np.isfinite(values).all():
        raise DataError(f"{where} holds an infinite value; expected finite numbers")
    return values, present


def discrete_series(col: ColumnSchema, codes: np.ndarray) -> pd.Series:
    """Category codes [N] (the missing slot = len(categories)) -> the column in its dtype."""
    dtype = pd.api.types.pandas_dtype(col.dtype)
    if isinstance(dtype, pd.CategoricalDtype):
        cats = list(col.categories)
        return pd.Series(pd.Categorical.from_codes(np.where(codes < len(cats), codes, -1), cats))
    one_type = len({type(c) for c in col.categories}) == 1
    if one_type and codes.max(initial=0) < len(col.categories):
        # a typed array for numbers is faster; text stays in an object array (a numpy str array
        # would be converted element by element)
        kind = object if dtype == np.dtype(object) else None
        return pd.Series(np.asarray(col.categories, dtype=kind)[codes]).astype(dtype)
    values = np.array([*col.categories, None], dtype=object)[codes]
    return pd.Series(values).astype(_nullable(dtype))


def numeric_series(col: ColumnSchema, values: np.ndarray, missing: np.ndarray) -> pd.Series:
    """The inverse of `numeric_values`: float64 [N] and a missing mask -> the column in its dtype."""
    dtype = pd.api.types.pandas_dtype(col.dtype)
    if col.kind == "datetime":
        seconds = np.round(values)  # whole seconds exactly; a fraction only if the data had one
        ns = seconds.astype(np.int64) * 10**9 + np.round((values - seconds) * 1e9).astype(np.int64)
        ns = ns.view("datetime64[ns]")
        s = pd.Series(np.where(missing, np.datetime64("NaT"), ns))
        if isinstance(dtype, pd.DatetimeTZDtype):
            return s.dt.tz_localize("UTC").dt.tz_convert(dtype.tz).astype(dtype)
        return s.astype(dtype)
    if missing.any():
        return pd.Series(np.where(missing, np.nan, values)).astype(_nullable(dtype))
    return pd.Series(values).astype(dtype)


def _nullable(dtype):
    """A dtype that can hold a missing value: numpy ints and bools become pandas' masked ones."""
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        bits = 8 * dtype.itemsize
        return {"b": "boolean", "i": f"Int{bits}", "u": f"UInt{bits}"}[dtype.kind]
    return dtype


def _categories(present: pd.Series) -> tuple:
    """The observed values as JSON-able Python scalars, in category order or sorted."""
    if isinstance(present.dtype, pd.CategoricalDtype):
        seen = set(present.unique().tolist())
        values = [c for c in present.cat.categories.tolist() if c in seen]
    else:
        values = pd.unique(present).tolist()
        with contextlib.suppress(TypeError):  # mixed types: keep the order of first appearance
            values = sorted(values)
    return tuple(_python(v) for v in values)


def _python(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _decimals(values: np.ndarray) -> int | None:
    """The fewest decimals (<= MAX_DECIMALS) that reproduce every value, or None."""
    for d in range(MAX_DECIMALS + 1):
        scaled = values * 10.0**d
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-7 + 1e-9 * np.abs(scaled)):
            return d
    return None
