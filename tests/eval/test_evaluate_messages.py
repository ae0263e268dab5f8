"""Issue 22.5 for image folders and tables: user-facing names in errors, nothing left behind on
failure, and a warning (and a note in the report) below a useful sample size."""

import json

import pytest

from jaxsyn.cli import main
from jaxsyn.data.phantoms import cxr
from jaxsyn.data.phantoms.ct import clinical_table
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.eval.evaluate import evaluate


def test_image_folders_name_the_flag_and_warn_when_small(tmp_path, capsys):
    cxr.write_cohort(tmp_path / "one", n=1, size=32, seed=0, progress=False)
    cxr.write_cohort(tmp_path / "four", n=4, size=32, seed=1, progress=False)
    argv = ["evaluate", "--features", "pixels", "--synthetic", str(tmp_path / "four")]
    assert main([*argv, "--real", str(tmp_path / "one"), "--out", str(tmp_path / "r1")]) == 1
    err = capsys.readouterr().err
    assert f"--real {tmp_path / 'one'}: 1 image; expected at least 2" in err
    assert "real_features" not in err and not (tmp_path / "r1").exists()
    with pytest.warns(UserWarning, match="FID from 4 real and 4 synthetic samples of 1024"):
        evaluate(tmp_path / "four", tmp_path / "four", tmp_path / "r2",
                 features={"pixels": None}, progress=False)  # fmt: skip
    notes = json.loads((tmp_path / "r2" / "report.json").read_text())["notes"]
    assert any("fewer samples than features" in n for n in notes)


def test_tables_name_the_flag_warn_when_small_and_leave_nothing_on_failure(tmp_path):
    clinical_table(1, seed=0).to_csv(tmp_path / "one.csv", index=False)
    clinical_table(40, seed=1).to_csv(tmp_path / "t40.csv", index=False)
    clinical_table(40, seed=2).to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(DataError, match=r"--real .*one.csv: 1 row; expected at least 2"):
        evaluate(tmp_path / "one.csv", tmp_path / "t40.csv", tmp_path / "r1", progress=False)
    # a failure after the heat maps were drawn (a table takes one target) removes them too
    with (
        pytest.warns(UserWarning, match=r"40 real and 40 synthetic rows: below 100.* 0\.81"),
        pytest.raises(ConfigError, match="a table takes one target column"),
    ):
        evaluate(tmp_path / "t40.csv", tmp_path / "t40.csv", tmp_path / "r3",
                 test=tmp_path / "test.csv", labels=["bmi_class", "sex"], compare_ids=False,
                 progress=False)  # fmt: skip
    assert not (tmp_path / "r3").exists()
