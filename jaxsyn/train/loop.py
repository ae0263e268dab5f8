"""The one training loop every model family runs through.

    state = start(checkpointer, init=..., abstract=..., data_iter=it, resume=flag)
    state = train(step, state, it, mesh=mesh, checkpointer=checkpointer, config=LoopConfig(...))

Each iteration places one batch (host -> devices), dispatches the jitted step and only then
fetches the *previous* step's metrics, so the host never waits for the device it just fed.
The steady state makes no implicit transfers: it runs under `jax.transfer_guard("disallow")`
except at the points that must touch the host (metrics, hooks, checkpoints), which allow them.

A checkpoint is written every `checkpoint_every` steps and always after the last. The metrics
log is flushed up to a step before that step is checkpointed, and a resumed run first drops the
log lines after the step it restored, so every step appears in the log exactly once.
Per-component schedules ("G every 2nd step") live inside the step: `state.scheduled`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
from tqdm.auto import tqdm

from jaxsyn import files
from jaxsyn.checkpoint import Checkpointer
from jaxsyn.errors import CheckpointError, ConfigError
from jaxsyn.train import parallel


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoopConfig:
    """How a run proceeds. Unlike the training config, these may change when a run resumes."""

    steps: int  # train until the state has made this many steps
    checkpoint_every: int = 100
    keep: int = 3  # checkpoints kept on disk, the latest ones
    log_every: int = 1  # one metrics line every log_every steps (and after the last)
    progress: bool = True  # a progress bar on process 0

    def __post_init__(self):
        for name in ("steps", "checkpoint_every", "keep", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"LoopConfig.{name} is {getattr(self, name)}; expected >= 1")


@dataclasses.dataclass(frozen=True)
class Hook:
    """`fn(step, state, batch)` after every `every`-th step and after the last (previews, evals).

    It runs on every process (a preview that generates on the mesh needs them all) with
    transfers allowed; writing files is its own business, usually on process 0 only.
    `batch` is the global batch the step trained on, so a preview can show reals beside fakes
    (on several hosts, read it through `addressable_shards`: no process holds all of it).
    """

    every: int
    fn: Callable[[int, Any, Any], None]

    def __post_init__(self):
        if self.every < 1:
            raise ConfigError(f"Hook.every is {self.every}; expected >= 1")


def start(
    checkpointer: Checkpointer,
    *,
    init: Callable[[], Any],
    abstract: Callable[[], Any],
    data_iter: Any,
    resume: bool,
) -> Any:
    """The state to train from: the latest checkpoint when resuming, else `init()`.

    `abstract()` gives the restore target (`jax.eval_shape` of the init, with shardings);
    `data_iter` is moved to the checkpoint's position. Resuming with no checkpoint yet starts
    from scratch, so a job restarted after an early preemption needs no special case; an existing
    checkpoint without `resume` is refused rather than overwritten.
    """
    latest = checkpointer.latest_step()
    if latest is not None and not resume:
        raise CheckpointError(
            f"{checkpointer.directory} holds checkpoints up to step {latest}; expected none for a "
            "new run (pass --resume to continue it, or choose another --out)"
        )
    with jax.transfer_guard("allow"):  # set-up, not the steady state
        if latest is None:
            return init()
        return checkpointer.restore(abstract(), data_iter)


def train(
    step_fn: Callable[[Any, Any], tuple[Any, dict]],
    state: Any,
    data_iter: Iterator | None,
    *,
    mesh: jax.sharding.Mesh,
    checkpointer: Checkpointer,
    config: LoopConfig,
    metrics_path: str | os.PathLike | None = None,
    hooks: Sequence[Hook] = (),
) -> Any:
    """Run `step_fn(state, batch) -> (state, metrics)` until `config.steps`; returns the state.

    `data_iter` yields this process's rows of each batch (numpy pytrees) and is checkpointed with
    the state; None for a step that draws its own batch on device (`step_fn(state, None)`, the
    batch a function of the state's key and step, so resuming needs nothing more). Every process calls this; only process 0 logs and shows progress.
    """
    with jax.transfer_guard("allow"):
        first = int(jax.device_get(state.step))
    if first > config.steps:
        raise ConfigError(
            f"steps is {config.steps} but {checkpointer.directory} is at step {first}; "
            f"expected steps >= {first}"
        )
    lead = jax.process_index() == 0  # metrics are global means: one process writes them
    log = MetricsLog(metrics_path, after_step=first) if metrics_path and lead else None
    bar = tqdm(
        total=config.steps, initial=first, unit="step", disable=not (config.progress and lead)
    )
    pending = None  # (step, metrics) fetched once the next step is dispatched
    try:
        for step in range(first + 1, config.steps + 1):
            last = step == config.steps
            batch = None if data_iter is None else parallel.shard_batch(next(data_iter), mesh)
            state, metrics = step_fn(state, batch)
            if pending is not None:
                _emit(log, bar, *pending)
            pending = (step, metrics) if step % config.log_every == 0 or last else None
            bar.update(1)
            if last:  # previews and the final save can take tens of seconds: say what runs
                bar.set_description_str("writing previews and the final checkpoint", refresh=True)
            for hook in hooks:
                if step % hook.every == 0 or last:
                    with jax.transfer_guard("allow"):
                        hook.fn(step, state, batch)
            if step % config.checkpoint_every == 0 or last:
                if pending is not None:  # a resume keeps the log up to here: make it whole
                    _emit(log, bar, *pending)
                    pending = None
                with jax.transfer_guard("allow"):
                    checkpointer.save(step, state, data_iter)
    finally:
        bar.close()
        if log is not None:
            log.close()
    return state


def _emit(log: MetricsLog | None, bar, step: int, metrics: dict) -> None:
    with jax.transfer_guard("allow"):
        values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    if log is not None:
        log.write(step, values)
    bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()}, refresh=False)


class MetricsLog:
    """Metrics as JSON lines, `{"step": n, "name": value, ...}`, appended as the run goes.

    Opened for a run that starts after step `after_step`, it first drops the lines of later steps
    (made by a killed run after its last checkpoint, about to be made again) and any torn last
    line, rewriting the file atomically. Non-finite values are written as null (JSON has no NaN):
    a component that did not update in a step reports NaN.
    """

    def __init__(self, path: str | os.PathLike, *, after_step: int):
        self.path = Path(path)
        if self.path.exists():
            lines = self.path.read_text().splitlines()
            kept = [line for line in lines if _step_of(line) is not None]
            kept = [line for line in kept if _step_of(line) <= after_step]
            if kept != lines:
                files.write_text(self.path, "".join(line + "\n" for line in kept))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Append-only: a line per logged step, flushed, so a kill loses at most the line it tore.
        self._file = open(self.path, "a")  # noqa: SIM115 (closed by close())

    def write(self, step: int, metrics: dict[str, float]) -> None:
        row = {"step": step, **{k: v if math.isfinite(v) else None for k, v in metrics.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The rows of a metrics log, in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _step_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def run(
    out_dir: str | os.PathLike,
    *,
    config: Any,
    info: dict,
    mesh: jax.sharding.Mesh,
    init: Callable[[], Any],
    step_fn: Callable[[Any, Any], tuple[Any, dict]],
    data_iter: Iterator | None,
    settings: LoopConfig,
    resume: bool,
    hooks: Sequence[Hook] = (),
) -> Any:
    """A whole run in `out_dir`: checkpoints/ (of `config`), config.json (`info`), metrics.jsonl.

    `init()` builds the state before step 1 (born replicated on `mesh`); resuming restores the
    latest checkpoint into the same layout and moves `data_iter` to its position.
    """
    from jaxsyn.train.state import abstract_replicated, born_replicated

    out_dir = Path(out_dir)
    with (
        jax.set_mesh(mesh),
        Checkpointer(out_dir / "checkpoints", config, keep=settings.keep) as ckpt,
    ):
        state = start(
            ckpt,
            init=lambda: born_replicated(init, mesh),
            abstract=lambda: abstract_replicated(init, mesh),
            data_iter=data_iter,
            resume=resume,
        )
        if jax.process_index() == 0:
            files.write_json(out_dir / "config.json", info)
        return train(
            step_fn,
            state,
            data_iter,
            mesh=mesh,
            checkpointer=ckpt,
            config=settings,
            metrics_path=out_dir / "metrics.jsonl",
            hooks=hooks,
        )
