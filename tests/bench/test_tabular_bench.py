"""benchmarks/tabular.py end to end on a tiny table: every reported field present and sane.

One subprocess per implementation (the script's own driver); ctgan is skipped when absent."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.peers  # make test-peers

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "tabular.py"

POSITIVE = (
    "transformer_fit_seconds",
    "transform_seconds",
    "train_seconds_total",
    "epoch_seconds",
    "epoch_seconds_first",
    "sample_rows_per_second",
    "quality",
    "quality_all_pairs",
    "peak_rss_bytes",
)


@pytest.mark.parametrize("impl", ["jaxsyn", "ctgan"])
def test_tiny_run_reports_every_field(impl):
    if impl == "ctgan":
        pytest.importorskip("ctgan")
    # 400 rows: one step per epoch, and ctgan transforms without joblib workers (< 500 rows)
    cmd = [sys.executable, str(SCRIPT), "--impl", impl, "--rows", "400", "--epochs", "2"]
    cmd += ["--sample-rows", "300", "--seed", "3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [row["impl"] for row in lines] == [impl]
    row = lines[0]
    assert (row["rows"], row["columns"], row["epochs"], row["sample_rows"]) == (400, 11, 2, 300)
    assert row["steps_per_epoch"] == 1
    for key in POSITIVE:
        assert math.isfinite(row[key]) and row[key] > 0, (key, row[key])
    assert 0 < row["quality"] <= 1 and 0 < row["quality_all_pairs"] <= 1
    assert len(row["epoch_seconds_all"]) == 2
    assert row["epoch_seconds_includes_compile"] is False
    assert "non_finite" not in row
    assert row["machine"]["cpu_count"] >= 1 and row["versions"]["jax"]
    if impl == "jaxsyn":
        assert row["first_step_seconds"] > 0 and math.isfinite(row["compile_seconds"])
    else:
        assert row["torch_threads"] >= 1 and row["versions"]["ctgan"]
