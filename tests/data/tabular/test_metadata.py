"""SDV single-table metadata JSON <-> our schema (jaxsyn.data.tabular.metadata)."""

import json

import numpy as np
import pandas as pd
import pytest

from jaxsyn.data.tabular import infer_schema
from jaxsyn.data.tabular.metadata import (
    apply_metadata,
    metadata_from_schema,
    read_metadata,
    single_table,
    write_metadata,
)
from jaxsyn.errors import ConfigError, DataError

METADATA = {
    "METADATA_SPEC_VERSION": "SINGLE_TABLE_V1",
    "primary_key": "patient_id",
    "columns": {
        "patient_id": {"sdtype": "id", "regex_format": "P[0-9]{3}"},
        "ecog": {"sdtype": "numerical", "computer_representation": "Int64"},
        "age": {"sdtype": "numerical"},
        "dose": {"sdtype": "numerical", "computer_representation": "Float"},
        "arm": {"sdtype": "categorical"},
        "smoker": {"sdtype": "boolean"},
        "visit": {"sdtype": "datetime", "datetime_format": "%d %b %Y"},
    },
}


def table(n=40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    days = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D")
    return pd.DataFrame(
        {
            "patient_id": [f"P{i:03d}" for i in range(n)],
            "ecog": rng.integers(0, 3, n),  # 3 values: our inference says categorical
            "age": rng.integers(30, 80, n),
            "dose": rng.integers(1, 4, n).astype(float),  # integral floats, 3 values
            "arm": rng.choice([1, 2], n),
            "smoker": rng.random(n) < 0.3,
            "visit": days.strftime("%d %b %Y"),
        }
    )


def test_metadata_decides_every_kind():
    df, schema = apply_metadata(table(), single_table(METADATA))
    kinds = {c.name: c.kind for c in schema.columns}
    assert schema.id_column == "patient_id"
    assert kinds == {
        "ecog": "integer",  # numerical, however few values (inference alone: categorical)
        "age": "integer",  # numerical without a representation: the integer dtype decides
        "dose": "float",
        "arm": "categorical",
        "smoker": "binary",
        "visit": "datetime",
    }
    assert infer_schema(table())["ecog"].kind == "categorical"  # what the metadata overrides
    assert pd.api.types.is_datetime64_any_dtype(df["visit"])
    assert df["visit"].iloc[0] == pd.Timestamp(table()["visit"].iloc[0])


def test_read_a_v1_file_with_one_table(tmp_path):
    path = tmp_path / "metadata.json"
    single = {k: v for k, v in METADATA.items() if k != "METADATA_SPEC_VERSION"}
    path.write_text(json.dumps({"METADATA_SPEC_VERSION": "V1", "tables": {"t": single}}))
    assert read_metadata(path) == single_table(METADATA)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"METADATA_SPEC_VERSION": "MULTI_TABLE_V1"}, "expected 'SINGLE_TABLE_V1'"),
        ({"columns": {}}, 'no "columns" object'),
        (
            {"columns": {"email": {"sdtype": "email", "pii": True}}},
            "column 'email' has sdtype 'email'",
        ),
        ({"primary_key": "age"}, "primary_key 'age' is numerical; expected a column of sdtype id"),
    ],
)
def test_bad_metadata_is_refused(change, message):
    with pytest.raises(DataError, match=message):
        single_table({**METADATA, **change})


def test_columns_must_match_and_one_id():
    with pytest.raises(DataError, match=r"columns \['extra'\] are not in the metadata"):
        apply_metadata(table().assign(extra=1), single_table(METADATA))
    two_ids = {**METADATA, "columns": {**METADATA["columns"], "arm": {"sdtype": "id"}}}
    with pytest.raises(ConfigError, match="2 id columns"):
        apply_metadata(table(), single_table(two_ids))
    bad_date = table()
    bad_date.loc[3, "visit"] = "2020-01-04"
    with pytest.raises(DataError, match="'visit' holds '2020-01-04'; expected a date"):
        apply_metadata(bad_date, single_table(METADATA))


def test_unreadable_file(tmp_path):
    (tmp_path / "m.json").write_text("{")
    with pytest.raises(DataError, match="cannot read SDV metadata"):
        read_metadata(tmp_path / "m.json")


def test_write_then_read_keeps_the_kinds(tmp_path):
    df, schema = apply_metadata(table(), single_table(METADATA))
    path = write_metadata(schema, tmp_path / "out.json")
    written = json.loads(path.read_text())
    assert written["METADATA_SPEC_VERSION"] == "SINGLE_TABLE_V1"
    assert written["primary_key"] == "patient_id"
    assert written["columns"]["smoker"] == {"sdtype": "boolean"}
    assert written["columns"]["ecog"] == {"sdtype": "numerical", "computer_representation": "Int64"}
    _, again = apply_metadata(df, read_metadata(path))
    assert [(c.name, c.kind) for c in again.columns] == [(c.name, c.kind) for c in schema.columns]
    assert again.id_column == schema.id_column


def test_binary_numbers_are_written_as_categorical():
    schema = infer_schema(pd.DataFrame({"flag": [0, 1, 1, 0], "x": [0.5, 1.5, 2.5, 3.5]}))
    assert metadata_from_schema(schema)["columns"] == {
        "flag": {"sdtype": "categorical"},
        "x": {"sdtype": "numerical", "computer_representation": "Float"},
    }
    assert "primary_key" not in metadata_from_schema(schema)
