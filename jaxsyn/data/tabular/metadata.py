"""SDV's single-table metadata JSON, read and written as an alternative to our schema.

    table, schema = apply_metadata(df, read_metadata("metadata.json"))   # a table SDV describes
    write_metadata(schema, "metadata.json")                              # our schema for SDV
    jaxsyn train ctgan --data table.csv --metadata metadata.json --out runs/tab --epochs 300

The file (SDV's `SINGLE_TABLE_V1`, or a `V1` file whose "tables" hold exactly one table) maps
each column to an sdtype, and may name a primary key:

    {"METADATA_SPEC_VERSION": "SINGLE_TABLE_V1", "primary_key": "patient_id",
     "columns": {"patient_id": {"sdtype": "id"}, "age": {"sdtype": "numerical"},
                 "sex": {"sdtype": "categorical"}, "smoker": {"sdtype": "boolean"},
                 "visit": {"sdtype": "datetime", "datetime_format": "%d %b %Y"}}}

sdtype -> our kind: numerical -> integer for an integer `computer_representation` (Int8 ...
UInt64) or an integer dtype, float otherwise (never categorical, however few its values);
categorical -> categorical; boolean -> binary; datetime -> datetime, text parsed with the
column's `datetime_format` when it has one (synthetic dates come back as datetime64, not text); id -> the id column (the primary key, or the one id
column), kept out of the model and regenerated. Other sdtypes (SDV's PII types such as email or
address, which SDV anonymises with fake values) are refused with the column's name: drop the
column or describe it as categorical. `alternate_keys` and `column_relationships` are not read.
Writing goes the other way (binary columns of bool dtype as boolean, other binary columns as
categorical; integers as numerical "Int64", floats as numerical "Float").
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from jaxsyn.data.tabular.schema import TableSchema, infer_schema
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.files import write_json

SPEC = "SINGLE_TABLE_V1"
SDTYPES = ("numerical", "categorical", "boolean", "datetime", "id")
INTEGERS = ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64")


def read_metadata(path: str | os.PathLike) -> dict:
    """The single table's metadata {"columns": ..., "primary_key": ...} of an SDV JSON file."""
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read SDV metadata ({type(e).__name__}: {e})") from e
    return single_table(d, str(path))


def single_table(d: Any, source: str = "metadata") -> dict:
    """The single table of SDV metadata given as a dict (SINGLE_TABLE_V1, or V1 with one table)."""
    version = d.get("METADATA_SPEC_VERSION") if isinstance(d, Mapping) else None
    if version == "V1" and isinstance(d.get("tables"), Mapping):
        if len(d["tables"]) != 1:
            raise DataError(
                f"{source}: {len(d['tables'])} tables {list(d['tables'])}; expected one"
            )
        d = next(iter(d["tables"].values()))
    elif version != SPEC:
        raise DataError(
            f"{source}: METADATA_SPEC_VERSION {version!r}; expected {SPEC!r} (or 'V1' with one table)"
        )
    columns = d.get("columns") if isinstance(d, Mapping) else None
    if not isinstance(columns, Mapping) or not columns:
        raise DataError(f'{source}: no "columns" object; expected {{name: {{"sdtype": ...}}}}')
    for name, spec in columns.items():
        sdtype = spec.get("sdtype") if isinstance(spec, Mapping) else None
        if sdtype not in SDTYPES:
            raise DataError(
                f"{source}: column {name!r} has sdtype {sdtype!r}; expected one of {SDTYPES} "
                "(drop the column, or describe it as categorical)"
            )
    key = d.get("primary_key")
    if key is not None and (key not in columns or columns[key]["sdtype"] != "id"):
        found = columns[key]["sdtype"] if key in columns else "not a column"
        raise DataError(f"{source}: primary_key {key!r} is {found}; expected a column of sdtype id")
    return {"columns": {k: dict(v) for k, v in columns.items()}, "primary_key": key}


def apply_metadata(
    table: pd.DataFrame, metadata: Mapping, source: str = "table"
) -> tuple[pd.DataFrame, TableSchema]:
    """(the table with text datetimes parsed, its schema) for `metadata` from `single_table`."""
    columns = metadata["columns"]
    absent = [c for c in columns if c not in table.columns]
    extra = [str(c) for c in table.columns if c not in columns]
    if absent or extra:
        raise DataError(
            f"{source}: columns {extra} are not in the metadata and metadata columns {absent} "
            "are not in the table; expected the same columns"
        )
    ids = [c for c, spec in columns.items() if spec["sdtype"] == "id"]
    if len(ids) > 1:
        raise ConfigError(
            f"{source}: the metadata has {len(ids)} id columns {ids}; jaxsyn regenerates one "
            "(the primary key): expected at most one"
        )
    table = table.copy()
    kinds = {}
    for name, spec in columns.items():
        sdtype = spec["sdtype"]
        if sdtype == "datetime":
            table[name] = _datetimes(
                table[name], spec.get("datetime_format"), f"{source}: {name!r}"
            )
        if sdtype != "id":
            kinds[name] = _kind(sdtype, spec, table[name])
    schema = infer_schema(table, id_column=ids[0] if ids else None, kinds=kinds, detect_id=False)
    return table, schema


def _kind(sdtype: str, spec: Mapping, s: pd.Series) -> str:
    if sdtype == "numerical":
        representation = spec.get("computer_representation")
        if representation is not None:
            return "integer" if representation in INTEGERS else "float"
        return "integer" if pd.api.types.is_integer_dtype(s) else "float"
    return {"categorical": "categorical", "boolean": "binary", "datetime": "datetime"}[sdtype]


def _datetimes(s: pd.Series, fmt: str | None, where: str) -> pd.Series:
    """Text dates parsed with the metadata's format (a datetime dtype is kept as it is)."""
    if fmt is None or pd.api.types.is_datetime64_any_dtype(s):
        return s
    parsed = pd.to_datetime(s, format=fmt, errors="coerce")
    bad = s.notna() & parsed.isna()
    if bad.any():
        first = s[bad].iloc[0]
        raise DataError(f"{where} holds {first!r}; expected a date in datetime_format {fmt!r}")
    return parsed


def metadata_from_schema(schema: TableSchema) -> dict:
    """SDV SINGLE_TABLE_V1 metadata for `schema` (the id column first, as primary key)."""
    columns = {}
    if schema.id_column is not None:
        columns[schema.id_column] = {"sdtype": "id"}
    for c in schema.columns:
        if c.kind == "integer":
            columns[c.name] = {"sdtype": "numerical", "computer_representation": "Int64"}
        elif c.kind == "float":
            columns[c.name] = {"sdtype": "numerical", "computer_representation": "Float"}
        elif c.kind == "binary" and c.dtype in ("bool", "boolean"):
            columns[c.name] = {"sdtype": "boolean"}
        else:
            columns[c.name] = {"sdtype": "datetime" if c.kind == "datetime" else "categorical"}
    out = {"METADATA_SPEC_VERSION": SPEC, "columns": columns}
    if schema.id_column is not None:
        out["primary_key"] = schema.id_column
    return out


def write_metadata(schema: TableSchema, path: str | os.PathLike) -> Path:
    """Write `schema` as SDV single-table metadata JSON (atomically)."""
    return write_json(path, metadata_from_schema(schema))
