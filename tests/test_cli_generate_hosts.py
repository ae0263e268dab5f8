"""`jaxsyn generate` across processes (issue 21.6): two processes on 127.0.0.1 write the cohort
one process writes, byte for byte (every volume, the MMCGAN table, the manifest).

Each run is a fresh `python -m jaxsyn.cli generate` (as a user starts one per host): the
1-process reference too, so both sides compile with the same flags (tests/train/helpers.
worker_env) and share the session's compilation cache.
"""

from __future__ import annotations

import json
import sys

import pytest

from jaxsyn import cli, files
from jaxsyn.train import parallel
from tests.train.helpers import free_port, run_workers, worker_env

# slow: two 1-step trainings, then 6 generate processes (minutes on a loaded 2-core machine)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """A 1-step tiny HA-GAN run and a 1-step tiny MMCGAN run (32³, conditional on bmi_class)."""
    root = tmp_path_factory.mktemp("hosts")
    common = ["--tiny", "--data", "phantom:ct:4", "--steps", "1", "--checkpoint-every", "1"]
    common += ["--condition-columns", "bmi_class", "--config.batch_size=8"]  # 8 test devices
    assert cli.main(["train", "hagan", *common, "--out", str(root / "hagan")]) == 0
    assert cli.main(["train", "mmcgan", *common, "--out", str(root / "mmcgan")]) == 0
    return {"hagan": root / "hagan", "mmcgan": root / "mmcgan"}


def _generate(run, out, n: int, processes: int, extra: list[str]) -> None:
    argv = [sys.executable, "-m", "jaxsyn.cli", "generate", "--run", str(run), "--out", str(out)]
    argv += ["--n", str(n), "--seed", "3", *extra]
    address = f"127.0.0.1:{free_port()}"
    envs = [
        worker_env(
            **{
                parallel.COORDINATOR_ENV: address,
                parallel.NUM_PROCESSES_ENV: str(processes),
                parallel.PROCESS_ID_ENV: str(i),
            }
        )
        if processes > 1
        else worker_env()
        for i in range(processes)
    ]
    results = run_workers([argv] * processes, envs, timeout=600)
    logs = "\n----\n".join(f"process {i}: {out[-3000:]}" for i, (_, out) in enumerate(results))
    assert all(code == 0 for code, _ in results), logs


def _contents(folder) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


@pytest.mark.parametrize("family, n", [("hagan", 3), ("mmcgan", 10)])
def test_two_processes_write_the_one_process_cohort(runs, tmp_path, family, n):
    one, two = tmp_path / "one", tmp_path / "two"
    # HA-GAN needs its condition; MMCGAN draws each patient's from the real class frequencies
    extra = ["--condition", "bmi_class=2"] if family == "hagan" else []
    _generate(runs[family], one, n, 1, extra)
    _generate(runs[family], two, n, 2, extra)
    a, b = _contents(one), _contents(two)
    volumes = sorted(k for k in a if k.endswith(".nii.gz"))
    assert len(volumes) == n and a.keys() == b.keys()
    if family == "mmcgan":  # a table of n rows; batch 8: process 0 made 8 patients, process 1 two
        assert "synthetic.parquet" in a and ".rows" not in "".join(b)
    for name in sorted(a):  # the manifest too: it names the run, the draws and every checksum
        assert a[name] == b[name], name
    assert json.loads(a[files.MANIFEST])["n"] == n
