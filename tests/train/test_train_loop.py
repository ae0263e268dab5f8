"""The loop: a killed run resumes with nothing lost or repeated; no implicit transfers."""

from __future__ import annotations

import json
import signal

import jax
import numpy as np
import pytest

from jaxsyn.checkpoint import Checkpointer
from jaxsyn.errors import ConfigError
from jaxsyn.train import loop, toygan
from tests.train.helpers import (
    TINY,
    BatchRecorder,
    N,
    assert_trees_equal,
    host,
    run_workers,
    worker,
    worker_env,
)


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path, reference_run):
    """SIGKILL two steps after the checkpoint at N, resume to 2N: equal to a run never killed."""
    out = tmp_path / "run"
    cmd = worker(out, steps=2 * N, devices=8, checkpoint_every=N, kill_at=N + 2, after_checkpoint=N)
    [(code, output)] = run_workers([cmd], [worker_env()], timeout=240)
    assert code == -signal.SIGKILL, output[-3000:]
    with Checkpointer(out / "checkpoints", TINY) as ckpt:
        assert ckpt.all_steps() == [N]
    logged = [row["step"] for row in loop.read_metrics(out / "metrics.jsonl")]
    assert logged[:N] == list(range(1, N + 1)) and max(logged) > N  # lines the resume must drop

    recorder = BatchRecorder()
    state = toygan.run(
        out, steps=2 * N, seed=TINY.seed, resume=True, checkpoint_every=N, config=TINY,
        progress=False, hooks=[recorder.hook()],
    )  # fmt: skip
    assert recorder.steps == list(range(N + 1, 2 * N + 1))
    assert recorder.indices == reference_run.indices[N:]  # the data picks up where it stopped
    assert_trees_equal(host(state), reference_run.state)
    metrics = loop.read_metrics(out / "metrics.jsonl")
    assert [row["step"] for row in metrics] == list(range(1, 2 * N + 1))  # each step once
    assert metrics == reference_run.metrics


def test_steady_state_makes_no_implicit_transfers(tmp_path):
    """The whole run under transfer_guard("disallow"); the loop allows only its host points."""
    with jax.transfer_guard("disallow"):
        # The guard is live: an implicit host->device transfer is refused here...
        with pytest.raises(Exception, match="Disallowed host-to-device transfer"):
            jax.jit(lambda x: x + 1)(np.ones(2, np.float32))
        # ...and a whole run with its logging, hooks and checkpoints goes through.
        seen = []
        hook = loop.Hook(every=2, fn=lambda step, state, batch: seen.append(step))
        toygan.run(
            tmp_path, steps=3, seed=TINY.seed, checkpoint_every=2, config=TINY,
            progress=False, hooks=[hook],
        )  # fmt: skip
    assert seen == [2, 3]
    assert [r["step"] for r in loop.read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3]
    with Checkpointer(tmp_path / "checkpoints", TINY) as ckpt:
        assert ckpt.all_steps() == [2, 3]  # every checkpoint_every steps, and at the end


def test_metrics_log_drops_lines_after_the_resumed_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "loss": float(s)} for s in range(1, 6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 6, "lo')  # torn
    log = loop.MetricsLog(path, after_step=3)
    log.write(4, {"loss": 40.0, "skipped": float("nan")})
    log.close()
    assert loop.read_metrics(path) == [*rows[:3], {"step": 4, "loss": 40.0, "skipped": None}]


def test_loop_config_is_validated():
    with pytest.raises(ConfigError, match="LoopConfig.checkpoint_every is 0; expected >= 1"):
        loop.LoopConfig(steps=10, checkpoint_every=0)


def test_resume_beyond_the_requested_steps_is_refused(tmp_path):
    toygan.run(tmp_path, steps=2, seed=TINY.seed, checkpoint_every=2, config=TINY, progress=False)
    with pytest.raises(ConfigError, match="steps is 1 but .* is at step 2; expected steps >= 2"):
        toygan.run(tmp_path, steps=1, resume=True, config=TINY, progress=False)


def test_the_bar_says_what_runs_after_the_last_step(tmp_path, capsys):
    """Previews and the final checkpoint come after the bar is full (issue 22 item 6): the bar
    says so before they start, not after a silence."""
    told = {}

    def preview(step, state, batch):
        told[step] = "writing previews and the final checkpoint" in capsys.readouterr().err

    toygan.run(
        tmp_path, steps=2, seed=TINY.seed, checkpoint_every=2, config=TINY, progress=True,
        hooks=[loop.Hook(every=1, fn=preview)],
    )  # fmt: skip
    assert told == {1: False, 2: True}
