"""Fixtures shared by tests/train: one uninterrupted reference run of the toy GAN."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import pytest

from jaxsyn.train import loop, toygan
from tests.train.helpers import TINY, BatchRecorder, N, host


@dataclasses.dataclass(frozen=True)
class Reference:
    out: Path
    state: dict  # leaf path -> numpy array, after 2N steps
    indices: list[list[int]]  # data set rows of each step's global batch
    metrics: list[dict]  # the metrics log, one row per step


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> Reference:
    """2N straight steps on all 8 devices, checkpoints every N: what resumed runs must equal."""
    assert len(jax.devices()) == 8
    out = tmp_path_factory.mktemp("reference")
    recorder = BatchRecorder()
    state = toygan.run(
        out, steps=2 * N, seed=TINY.seed, checkpoint_every=N, config=TINY, progress=False,
        hooks=[recorder.hook()],
    )  # fmt: skip
    assert recorder.steps == list(range(1, 2 * N + 1))
    return Reference(out, host(state), recorder.indices, loop.read_metrics(out / "metrics.jsonl"))
