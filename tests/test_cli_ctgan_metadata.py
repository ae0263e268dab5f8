"""`jaxsyn train ctgan --metadata FILE`: a table described for SDV trains unchanged."""

import json

import numpy as np
import pandas as pd
import pytest

from jaxsyn.cli import main

METADATA = {
    "METADATA_SPEC_VERSION": "SINGLE_TABLE_V1",
    "primary_key": "pid",
    "columns": {
        "pid": {"sdtype": "id"},
        "stage": {"sdtype": "numerical"},
        "arm": {"sdtype": "categorical"},
        "visit": {"sdtype": "datetime", "datetime_format": "%d/%m/%Y"},
    },
}


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    n = 50
    visit = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 200, n), unit="D")
    df = pd.DataFrame(
        {
            "pid": [f"x{i}" for i in range(n)],  # not named like an id: only the metadata says so
            "stage": rng.integers(1, 4, n),
            "arm": rng.choice(["A", "B"], n),
            "visit": visit.strftime("%d/%m/%Y"),  # day first: only the format reads it right
        }
    )
    df.to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "m.json").write_text(json.dumps(METADATA))
    return tmp_path


def test_train_with_metadata(files, monkeypatch):
    """The CLI hands ctgan.run the table with its dates parsed and the metadata's schema (the
    run itself is tests/train/test_ctgan_train.py's; a schema is all it takes from here)."""
    from jaxsyn.train import ctgan

    seen = {}
    monkeypatch.setattr(ctgan, "run", lambda out, table, **kw: seen.update(table=table, **kw))
    argv = ["train", "ctgan", "--tiny", "--data", str(files / "t.csv"), "--out", str(files / "r")]
    assert main([*argv, "--metadata", str(files / "m.json"), "--epochs", "1"]) == 0
    schema = seen["schema"]
    assert schema.id_column == "pid" and seen["discrete"] == () and seen["id_column"] is None
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds == {"stage": "integer", "arm": "categorical", "visit": "datetime"}
    assert schema["visit"].max <= pd.Timestamp("2021-07-20").timestamp()  # read day-first
    assert pd.api.types.is_datetime64_any_dtype(seen["table"]["visit"])


def test_metadata_with_discrete_is_refused(files, capsys):
    argv = ["train", "ctgan", "--tiny", "--data", str(files / "t.csv"), "--out", str(files / "r")]
    argv += ["--metadata", str(files / "m.json"), "--epochs", "1", "--discrete", "arm"]
    assert main(argv) == 1
    assert "--metadata describes every column" in capsys.readouterr().err
    assert not (files / "r").exists()


def test_unknown_sdtype_is_refused(files, capsys):
    bad = {**METADATA, "columns": {**METADATA["columns"], "arm": {"sdtype": "email"}}}
    (files / "m.json").write_text(json.dumps(bad))
    argv = ["train", "ctgan", "--tiny", "--data", str(files / "t.csv"), "--out", str(files / "r")]
    assert main([*argv, "--metadata", str(files / "m.json"), "--epochs", "1"]) == 1
    assert "column 'arm' has sdtype 'email'" in capsys.readouterr().err
