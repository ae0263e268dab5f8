"""`jaxsyn evaluate --val` (issue 17.5c): labelled real validation data reach `utility.tstr`,
which selects the real-trained classifier on them and the synthetic-trained one on held-out
synthetic samples; --val must be disjoint from --real/--holdout/--test; tables refuse it."""

import json

import numpy as np
import pytest

from jaxsyn.cli import main
from jaxsyn.data.images import load_images
from jaxsyn.data.phantoms import cxr
from jaxsyn.data.phantoms.ct import clinical_table
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.eval import utility
from jaxsyn.eval.evaluate import evaluate


@pytest.fixture()
def recorded_tstr(monkeypatch):
    """utility.tstr replaced by a recorder that trains nothing (the selection itself is tested in
    test_utility.py::test_tstr_selects_each_model_on_its_own_kind_of_validation_data)."""
    calls = []

    def fake(real_train, synthetic_train, real_test, *, val=None, **kw):
        calls.append({"real": real_train, "syn": synthetic_train, "test": real_test, "val": val})
        selection = utility.NO_SELECTION if val is None else "real-trained on val (real, ...)"
        return utility._summarise(kw["task"], "stand-in", (0, 1), [0.8, 0.8], [0.7, 0.7], None,
                                  {}, selection)  # fmt: skip

    monkeypatch.setattr(utility, "tstr", fake)
    return calls


def test_val_reaches_tstr_and_the_report_says_how_models_were_selected(tmp_path, recorded_tstr):
    for name, seed in (("real", 0), ("syn", 1), ("test", 2), ("val", 3)):
        cxr.write_cohort(tmp_path / name, n=12, size=32, seed=seed, progress=False)
    argv = ["evaluate", "--real", str(tmp_path / "real"), "--synthetic", str(tmp_path / "syn"),
            "--test", str(tmp_path / "test"), "--labels", "enlarged_heart", "--features",
            "pixels", "--ids-per-folder"]  # fmt: skip
    assert main([*argv, "--val", str(tmp_path / "val"), "--out", str(tmp_path / "r")]) == 0
    (call,) = recorded_tstr
    x_val, t_val = load_images(tmp_path / "val", progress=False)
    assert np.array_equal(call["val"][0], x_val)
    assert call["val"][1].ravel().tolist() == t_val.enlarged_heart.tolist()
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["inputs"]["disjoint"] == [
        "--test vs --real",
        "--val vs --real",
        "--val vs --test",
    ]
    assert any(
        n.startswith("utility: Model selection: real-trained on val") for n in report["notes"]
    )
    assert main([*argv, "--out", str(tmp_path / "r2")]) == 0  # without --val: said, not done
    assert recorded_tstr[1]["val"] is None
    notes = json.loads((tmp_path / "r2" / "report.json").read_text())["notes"]
    assert any("give --val" in n for n in notes)
    with pytest.raises(DataError, match="--val and --real hold 12 identical images"):
        evaluate(tmp_path / "real", tmp_path / "syn", tmp_path / "r3", test=tmp_path / "test",
                 labels=["enlarged_heart"], val=tmp_path / "real", compare_ids=False,
                 progress=False)  # fmt: skip
    assert not (tmp_path / "r3").exists()


def test_tables_refuse_val(tmp_path):
    table = clinical_table(60, seed=0)
    for name, rows in (("real", table.iloc[:20]), ("test", table.iloc[20:40]),
                       ("val", table.iloc[40:])):  # fmt: skip
        rows.to_csv(tmp_path / f"{name}.csv", index=False)
    with pytest.raises(ConfigError, match="--val .*val.csv: tables' classifiers have no epochs"):
        evaluate(tmp_path / "real.csv", tmp_path / "real.csv", tmp_path / "r",
                 test=tmp_path / "test.csv", labels=["hypertension"], val=tmp_path / "val.csv",
                 progress=False)  # fmt: skip
