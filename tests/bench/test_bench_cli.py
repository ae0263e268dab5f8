"""`jaxsyn bench` end to end on toy sizes: one real row in its own process (every JSON key, sane
values, the table), and what `--memory` runs: each remat policy and batch, compiled from abstract
inputs, labelled as XLA:CPU's on this machine."""

import argparse
import json

import jax
import pytest

from jaxsyn.bench import cases, measure
from jaxsyn.cli import bench
from jaxsyn.cli.app import main
from jaxsyn.errors import ConfigError
from jaxsyn.nn import remat


def test_one_tiny_row(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "--family", "cpdgan", "--workload", "generate", "--size", "16"]
    assert main([*argv, "--batch", "4", "--tiny", "--steps", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert set(measure.KEYS) <= set(row), set(measure.KEYS) - set(row)
    assert (row["family"], row["size"], row["batch"], row["dtype"]) == ("cpdgan", 16, 4, "float32")
    assert row["device_kind"] == "cpu" and row["device_count"] == 1  # a child: one CPU device
    assert row["step_seconds"] > 0 and row["step_seconds_spread"] >= 0
    assert row["samples_per_second"] == pytest.approx(4 / row["step_seconds"])
    assert row["flops_per_step"] > 0 and row["xla_flops_per_step"] > 0
    assert row["flops_per_second"] == pytest.approx(row["flops_per_step"] / row["step_seconds"])
    assert row["mfu"] == pytest.approx(row["flops_per_second"] / row["peak_flops"])
    assert row["compiled_temp_bytes"] >= 0 and row["compiled_output_bytes"] > 4 * 16 * 16 * 4 - 1
    assert row["compile_seconds"] > 0 and row["peak_rss_bytes"] > 50 * 2**20
    text = capsys.readouterr().out
    assert "MFU %" in text and "cpdgan" in text and f"wrote {out}" in text


def _args(**kw):
    base = dict(family="hagan,ctgan,acgan", workload="train,generate", size=None, batch="1,2",
                dtype="float32", steps=1, peak_flops=None, memory=True, remat=None, tiny=True)  # fmt: skip
    return argparse.Namespace(**{**base, **kw})


def test_memory_rows_per_policy_and_batch():
    specs = bench.specs(_args())
    hagan = [(s["remat"], s["batch"]) for s in specs if s["family"] == "hagan"]
    train = [s for s in specs if s["family"] == "hagan" and s["workload"] == "train"]
    assert {(s["remat"], s["batch"]) for s in train} == {
        (r, b) for r in ("none", "nothing_saveable", "dots_saveable") for b in (1, 2)
    }
    # generation has no backward pass, CTGAN no remat field: policy none only
    assert ("none", 1) in hagan and len(hagan) == 6 + 2
    assert {s["remat"] for s in specs if s["family"] == "ctgan"} == {"none"}
    acgan = {(s["workload"], s["remat"]) for s in specs if s["family"] == "acgan"}
    assert acgan == {("generate", "none")} | {("train", r) for r in remat.POLICIES}
    assert all(s["memory"] for s in specs)
    # sizes per family: plain numbers for all, FAMILY=N for one
    sized = bench.specs(_args(size="32,ctgan=5000", remat="none"))
    assert {s["size"] for s in sized if s["family"] == "ctgan"} == {5000}
    assert {s["size"] for s in sized if s["family"] == "hagan"} == {32}
    with pytest.raises(ConfigError, match="--remat everything"):
        bench.specs(_args(remat="everything"))
    with pytest.raises(ConfigError, match="'gan' is not a family"):
        bench.specs(_args(size="gan=3"))


def test_compiled_memory_without_running():
    case = cases.build("cpdgan", "generate", 16, 4, tiny=True, devices=jax.devices()[:1])
    row = measure.compiled_memory(case)
    assert row["note"] == measure.CPU_MEMORY_NOTE  # labelled: not a GPU figure
    assert row["compiled_argument_bytes"] > 0
    assert row["compiled_output_bytes"] >= 4 * 16 * 16 * 4  # the images, float32
    assert row["compiled_temp_bytes"] >= 0 and (row["family"], row["batch"]) == ("cpdgan", 4)
