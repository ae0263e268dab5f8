"""Schema inference on the phantom's clinical table, overrides, JSON round trip, clear errors."""

import numpy as np
import pandas as pd
import pytest

from jaxsyn.data.phantoms.ct import COLUMNS
from jaxsyn.data.tabular import TableSchema, infer_schema
from jaxsyn.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def schema(phantom) -> TableSchema:
    return infer_schema(phantom)


def test_kinds_match_the_phantom_story(schema):
    assert {c.name: c.kind for c in schema.columns} == COLUMNS
    assert schema.names == tuple(COLUMNS)


def test_id_column_detected_and_kept_out(schema, phantom):
    assert schema.id_column == "patient_id"
    assert "patient_id" not in schema.names
    assert schema.n_rows == len(phantom)
    assert list(schema.synthetic_ids(2)) == ["syn_000000", "syn_000001"]


def test_missing_indicator_only_where_values_are_missing(schema, phantom):
    assert {c.name for c in schema.columns if c.missing} == {"systolic_bp", "pack_years"}
    sbp = schema["systolic_bp"]
    assert sbp.missing_rate == pytest.approx(phantom["systolic_bp"].isna().mean())
    assert 0.01 < sbp.missing_rate < 0.06  # the story: 3% missing at random


def test_bounds_rounding_and_categories(schema, phantom):
    age = schema["age"]
    assert (age.min, age.max) == (phantom["age"].min(), phantom["age"].max())
    assert age.min >= 30 and age.max <= 90 and age.decimals == 0
    assert schema["height_cm"].decimals == 1 and schema["bmi"].decimals == 2
    assert schema["pack_years"].dtype == "Int64" and schema["pack_years"].decimals == 0
    assert schema["site"].categories == ("S01", "S02", "S03", "S04", "S05", "S06")
    assert schema["bmi_class"].categories == (0, 1, 2, 3)
    assert schema["sex_male"].categories == (0, 1)


def test_json_round_trip_keeps_types(schema, tmp_path):
    path = schema.save(tmp_path / "schema.json")
    back = TableSchema.load(path)
    assert back == schema
    assert all(type(v) is int for v in back["ecog"].categories)
    assert all(type(v) is str for v in back["treatment_arm"].categories)


def test_csv_file_infers_the_same_kinds(phantom, tmp_path):
    phantom.head(500).to_csv(tmp_path / "t.csv", index=False)
    schema = infer_schema(tmp_path / "t.csv")
    assert {c.name: c.kind for c in schema.columns} == COLUMNS
    # NaNs made pandas read pack_years as float; its integral values still say integer.
    assert schema["pack_years"].dtype == "float64" and schema["pack_years"].kind == "integer"


def test_overrides_and_explicit_id(phantom):
    schema = infer_schema(phantom, kinds={"ecog": "integer", "age": "float"})
    assert schema["ecog"].kind == "integer" and schema["age"].kind == "float"
    table = pd.DataFrame({"record": ["a", "b", "c"], "x": [1.5, 2.5, 0.5]})
    assert infer_schema(table).id_column is None  # nothing named like an id
    assert infer_schema(table, id_column="record").names == ("x",)


def test_datetime_and_bool_columns():
    t = pd.DataFrame(
        {
            "visit": pd.to_datetime(["2020-01-01 00:00", "2021-06-30 12:00", None]),
            "flag": [True, False, True],
        }
    )
    schema = infer_schema(t)
    assert schema["visit"].kind == "datetime" and schema["visit"].missing
    assert schema["visit"].max - schema["visit"].min == (366 + 180.5) * 86400  # 2020 is a leap year
    assert schema["flag"].kind == "binary" and schema["flag"].categories == (False, True)


@pytest.mark.parametrize(
    "kinds, error, words",
    [
        ({"weight": "float"}, ConfigError, ["'weight'", "not in the table"]),
        ({"age": "ordinal"}, ConfigError, ["'ordinal'", "categorical"]),
        ({"patient_id": "float"}, ConfigError, ["id column"]),
        ({"site": "float"}, DataError, ["'site'", "'S0", "expected a float"]),
        ({"site": "binary"}, DataError, ["'site'", "6 values", "at most 2"]),
    ],
)
def test_bad_overrides_name_column_and_expectation(phantom, kinds, error, words):
    with pytest.raises(error) as e:
        infer_schema(phantom.head(50), kinds=kinds)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_bad_tables_raise_clear_errors(phantom, tmp_path):
    with pytest.raises(DataError, match="no rows"):
        infer_schema(phantom.head(0))
    empty = phantom.head(20).assign(lab=np.nan)
    with pytest.raises(DataError, match="'lab' is missing in all 20 rows"):
        infer_schema(empty)
    two_ids = phantom.head(20).assign(subject_id=[f"S{i}" for i in range(20)])
    with pytest.raises(DataError, match="patient_id.*subject_id|subject_id.*patient_id"):
        infer_schema(two_ids)
    typo = phantom.head(20).astype({"age": str})
    typo.loc[5, "age"] = "sixty"
    with pytest.raises(DataError, match="'age' holds 'sixty' for patient P00005"):
        infer_schema(typo)
    with pytest.raises(ConfigError, match="id column 'pid' not found"):
        infer_schema(phantom.head(20), id_column="pid")
    with pytest.raises(DataError, match="no such table file"):
        infer_schema(tmp_path / "absent.csv")
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(DataError, match="bad.json: format 'other'"):
        TableSchema.load(tmp_path / "bad.json")
