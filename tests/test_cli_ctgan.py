"""`jaxsyn train ctgan` and `jaxsyn generate` on tables: a real one (sklearn's diabetes, 442
patients, shipped inside scikit-learn) and the CT phantom's clinical table."""

import json
import shutil

import pandas as pd
import pytest
from sklearn.datasets import load_diabetes

from jaxsyn.cli import main
from jaxsyn.files import sha256


@pytest.fixture(scope="module")
def diabetes_csv(tmp_path_factory):
    df = load_diabetes(as_frame=True, scaled=False).frame
    df.insert(0, "patient_id", [f"P{i:04d}" for i in range(len(df))])
    path = tmp_path_factory.mktemp("tables") / "diabetes.csv"
    df.to_csv(path, index=False)
    return path, df


@pytest.fixture(scope="module")
def run_dir(diabetes_csv, tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    argv = ["train", "ctgan", "--tiny", "--data", str(diabetes_csv[0]), "--out", str(run)]
    argv += ["--epochs", "3", "--discrete", "sex", "--id-column", "patient_id"]
    assert main(argv) == 0
    return run


def test_train_writes_a_run_folder(run_dir):
    info = json.loads((run_dir / "config.json").read_text())
    assert info["family"] == "ctgan" and info["rows"] == 442
    assert info["steps_per_epoch"] == 442 // 80  # the tiny batch
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3 * (442 // 80)
    schema = json.loads((run_dir / "transformer.json").read_text())["schema"]
    kinds = {c["name"]: c["kind"] for c in schema["columns"]}
    assert schema["id_column"] == "patient_id" and kinds["sex"] == "categorical"
    assert json.loads((run_dir / "condition_counts.json").read_text())["sex"] == [
        235,
        207,
    ]  # sex 1, 2


def test_generate_writes_parquet_and_manifest(run_dir, diabetes_csv, tmp_path):
    out = tmp_path / "gen"
    argv = ["generate", "--run", str(run_dir), "--n", "25", "--out", str(out)]
    argv += ["--condition", "sex=2", "--condition", "bmi=20:35", "--seed", "3"]
    assert main(argv) == 0
    df = pd.read_parquet(out / "synthetic.parquet")
    real = diabetes_csv[1]
    assert len(df) == 25 and list(df.columns) == list(real.columns)
    assert (df["sex"] == 2).all() and df["bmi"].between(20, 35).all()
    assert df["patient_id"].is_unique and not set(df["patient_id"]) & set(real["patient_id"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["files"] == {"synthetic.parquet": sha256(out / "synthetic.parquet")}
    assert manifest["conditions"] == {"sex": "2", "bmi": "20:35"} and manifest["n"] == 25


def test_resume_and_errors(run_dir, diabetes_csv, tmp_path, capsys):
    """Resume and refusals on a copy of the diabetes run (no second table, no second compile)."""
    run = shutil.copytree(run_dir, tmp_path / "run")
    argv = ["train", "ctgan", "--tiny", "--data", str(diabetes_csv[0]), "--out", str(run)]
    argv += ["--discrete", "sex", "--id-column", "patient_id"]
    assert main([*argv, "--epochs", "3"]) == 1
    assert "already holds a run" in capsys.readouterr().err
    assert main([*argv, "--epochs", "4", "--resume"]) == 0
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["step"] == 4 * (442 // 80)
    gen = ["generate", "--run", str(run), "--n", "10", "--out", str(tmp_path / "gen")]
    for bad, words in [
        (["--condition", "hair=red"], "hair='red': not a column"),
        (["--condition", "sex=3"], "sex='3': unknown value"),
        (["--condition", "sex"], "expected NAME=VALUE"),
    ]:
        assert main([*gen, *bad]) == 1
        assert words in capsys.readouterr().err
    assert main(["train", "ctgan", "--data", "phantom:ct:4", "--out", str(tmp_path / "x"),
                 "--epochs", "1"]) == 1  # fmt: skip
    assert "phantom:ct-table:N" in capsys.readouterr().err
    missing = ["train", "ctgan", "--data", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "z")]
    assert main([*missing, "--epochs", "1"]) == 1
    assert "nope.csv: no such table file" in capsys.readouterr().err
    assert (
        main(["train", "ctgan", "--data", "phantom:ct-table:50", "--out", str(tmp_path / "y")]) == 1
    )
    assert "exactly one of --epochs and --steps" in capsys.readouterr().err


@pytest.mark.slow  # a second table (another layout): another compiled step
def test_phantom_table(tmp_path):
    run = tmp_path / "phantom"
    argv = ["train", "ctgan", "--tiny", "--data", "phantom:ct-table:200", "--out", str(run)]
    assert main([*argv, "--steps", "2"]) == 0
    out = tmp_path / "gen"
    gen = ["generate", "--run", str(run), "--n", "10", "--out", str(out)]
    assert main([*gen, "--condition", "bmi_class=3", "--condition", "site=S02"]) == 0
    df = pd.read_parquet(out / "synthetic.parquet")
    assert (df["bmi_class"] == 3).all() and (df["site"] == "S02").all()
    assert main([*gen, "--condition", "site=X"]) == 1


def test_generate_from_given_latents(run_dir, tmp_path):
    """--latents: row i's generator noise is row i of the file. Rows are independent (running
    BatchNorm statistics), so changing one noise vector changes that row alone."""
    import numpy as np

    from jaxsyn.infer.ctgan import TableSynthesizer

    width = TableSynthesizer.load(run_dir).config.embedding_dim
    z = np.random.default_rng(0).standard_normal((6, width)).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    z2 = z.copy()
    z2[3] += 3.0
    np.save(tmp_path / "z2.npy", z2)
    tables = []
    for name in ("z", "z", "z2"):
        out = tmp_path / f"gen-{name}-{len(tables)}"
        argv = ["generate", "--run", str(run_dir), "--latents", str(tmp_path / f"{name}.npy")]
        assert main([*argv, "--out", str(out)]) == 0
        tables.append(pd.read_parquet(out / "synthetic.parquet").drop(columns="patient_id"))
    pd.testing.assert_frame_equal(tables[0], tables[1])  # given noise: the same rows
    assert len(tables[0]) == 6
    changed = ~(tables[0] == tables[2]).all(axis=1)
    assert changed.tolist() == [False, False, False, True, False, False]
    drawn = tmp_path / "drawn"
    assert main(["generate", "--run", str(run_dir), "--n", "6", "--out", str(drawn)]) == 0
    assert (
        not pd.read_parquet(drawn / "synthetic.parquet")
        .drop(columns="patient_id")
        .equals(tables[0])
    )
