"""Checkpoints through Orbax: the only module that imports it.

A run's checkpoints live in one directory, one sub-directory per step:

    <directory>/<step>/state/   the train state, every array written from where it lives
    <directory>/<step>/data/    the Grain iterator's position, process_<i>-of-<n>.json per process
    <directory>/<step>/config/  the training config as JSON

Orbax writes a step under a temporary name and renames it when every item (and every process) is
done, so a run killed mid-save leaves a temporary directory that `latest_step` never returns and
the next start deletes. The last `keep` steps are kept. Saves are asynchronous: the arrays are
copied to host memory before `save` returns (so the caller may donate them to the next step) and
written in the background; `close` waits for the last one.

A restore is refused with `CheckpointError` when the saved config differs from the running one
(each differing field named, saved vs current) or the saved arrays do not fit the state the
model builds (each path named).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import grain.checkpoint as grain_checkpoint
import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxsyn.errors import CheckpointError, ConfigError


class Checkpointer:
    """Save and restore (state, data iterator position, config) by step.

    `config` is the training config (a dataclass or a JSON-able dict): what determines the
    computation. Loop settings that may change when a run is resumed (total steps, checkpoint
    interval) do not belong in it. Every process of a multi-host run calls every method.
    """

    def __init__(self, directory: str | os.PathLike, config: Any, *, keep: int = 3):
        if keep < 1:
            raise ConfigError(f"keep is {keep}; expected >= 1 checkpoints to keep")
        self.directory = Path(directory).absolute()
        self.config = as_json(config)
        self.absent_means = added_fields(config)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            create=True,
            cleanup_tmp_directories=True,  # leftovers of a save that a kill interrupted
        )
        handlers = {
            "state": ocp.StandardCheckpointHandler(),
            "data": grain_checkpoint.CheckpointHandler(),
            "config": ocp.JsonCheckpointHandler(),
        }
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_handlers=handlers
        )

    def latest_step(self) -> int | None:
        """The last step whose save completed, or None."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, data_iter: Any = None) -> bool:
        """Save `state` and the iterator's position as `step`; False if `step` was already saved.

        `data_iter` is a Grain `DatasetIterator` (its `get_state` is read now, before returning).
        """
        if step in self._manager.all_steps():
            return False
        items = {"state": ocp.args.StandardSave(state), "config": ocp.args.JsonSave(self.config)}
        if data_iter is not None:
            items["data"] = grain_checkpoint.CheckpointSave(data_iter)
        return self._manager.save(step, args=ocp.args.Composite(**items))

    def saved_config(self, step: int) -> dict:
        restored = self._manager.restore(
            step, args=ocp.args.Composite(config=ocp.args.JsonRestore())
        )
        return restored["config"]

    def restore(self, abstract_state: Any, data_iter: Any = None, *, step: int | None = None):
        """The state saved at `step` (default: the latest), laid out as `abstract_state` says.

        `abstract_state` is a pytree of `jax.ShapeDtypeStruct` with shardings (`jax.eval_shape`
        of the init, shardings attached). `data_iter`, if given, is moved to the saved position.
        """
        step = self.latest_step() if step is None else step
        if step is None or step not in self._manager.all_steps():
            found = self.all_steps() or "none"
            raise CheckpointError(
                f"{self.directory}: no checkpoint at step {step}; steps found: {found}"
            )
        where = self.directory / str(step)
        try:
            saved, metadata = self.saved_config(step), self._manager.item_metadata(step)["state"]
        except Exception as e:  # unreadable metadata: TensorStore's ValueError, Orbax's others
            raise _read_error(where, e) from e
        self._check_config(saved, where)
        self._check_tree(metadata, abstract_state, where)
        items = {"state": ocp.args.StandardRestore(abstract_state)}
        if data_iter is not None:
            if not (where / "data").is_dir():
                raise CheckpointError(f"{where}: no data iterator state in this checkpoint")
            items["data"] = grain_checkpoint.CheckpointRestore(data_iter)
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(**items))
        except Exception as e:  # Orbax raises a bare Exception for an unreadable array file;
            # Grain a ValueError naming the missing per-process file when the process count changed
            raise _read_error(where, e) from e
        return restored["state"]

    def wait(self) -> None:
        """Block until the last save is on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Wait for the last save, then release Orbax's threads."""
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_config(self, saved: dict, where: Path) -> None:
        diffs = config_diff(saved, self.config, absent_means=self.absent_means)
        if diffs:
            raise CheckpointError(
                f"{where} was saved with a different config: "
                + "; ".join(f"{k} is {s!r} in the checkpoint, {c!r} now" for k, s, c in diffs)
                + " (resume with the config the run started with, or start a new --out)"
            )

    def _check_tree(self, saved: Any, abstract: Any, where: Path) -> None:
        saved_leaves = _leaves_by_path(getattr(saved, "tree", saved))
        wanted = {path: _stored_as(leaf) for path, leaf in _leaves_by_path(abstract).items()}
        problems = [
            f"{p}: missing from the checkpoint" for p in sorted(wanted - saved_leaves.keys())
        ]
        problems += [
            f"{p}: in the checkpoint, not in the state"
            for p in sorted(saved_leaves.keys() - wanted)
        ]
        for path in sorted(wanted.keys() & saved_leaves.keys()):
            s, (shape, dtype) = saved_leaves[path], wanted[path]
            if tuple(s.shape) != shape or np.dtype(s.dtype) != dtype:
                problems.append(
                    f"{path}: {np.dtype(s.dtype).name}{list(s.shape)} in the checkpoint, "
                    f"{dtype.name}{list(shape)} expected"
                )
        if problems:
            raise CheckpointError(f"{where}/state does not fit the model: " + "; ".join(problems))


def restore_subtree(directory: str | os.PathLike, abstract: Any, *, step: int | None = None) -> Any:
    """Only the arrays named in `abstract` from a run's checkpoint, on this process's first device.

    `abstract` is nested like the saved state, e.g. `{"params": {"g": shapes}}`: a generator is
    read without its discriminator, encoders or optimiser state. `step` defaults to the latest.
    """
    directory = Path(directory).absolute()
    manager = ocp.CheckpointManager(
        directory, item_handlers={"state": ocp.PyTreeCheckpointHandler()}
    )
    try:
        step = manager.latest_step() if step is None else step
        if step is None or step not in manager.all_steps():
            raise CheckpointError(
                f"{directory}: no checkpoint at step {step}; steps found: {sorted(manager.all_steps()) or 'none'}"
            )
        # this process's first device: in a multi-process run jax.devices()[0] is process 0's
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        restore_args = jax.tree.map(lambda _: ocp.ArrayRestoreArgs(sharding=device), abstract)
        args = ocp.args.PyTreeRestore(
            item=abstract, restore_args=restore_args, partial_restore=True
        )
        try:
            return manager.restore(step, args=ocp.args.Composite(state=args))["state"]
        except Exception as e:  # absent arrays (ValueError, KeyError), damaged files (Exception)
            raise _read_error(directory / str(step) / "state", e) from e
    finally:
        manager.close()


def _read_error(where: Path, error: BaseException) -> CheckpointError:
    """One line naming the checkpoint, what went wrong, and TensorStore's / Orbax's own words."""
    cause = _cause(error)
    if any(code in cause for code in ("OUT_OF_RANGE", "DATA_LOSS", "Requested byte range")):
        what = "an array file is damaged or truncated; restore it from a copy or use another step"
    else:
        what = "cannot restore"
    return CheckpointError(f"{where}: {what} ({cause})")


def _cause(error: BaseException) -> str:
    """The first line of the innermost cause: TensorStore's message names the array and says
    what was wrong (e.g. a byte range past the end of a truncated file)."""
    while error.__cause__ is not None:
        error = error.__cause__
    return (str(error).splitlines() or [type(error).__name__])[0][:400]


def as_json(config: Any) -> dict:
    """A dataclass (nested allowed) or dict as plain JSON types: what the checkpoint stores."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    return json.loads(json.dumps(config))  # tuples -> lists, as they come back from disk


# Fields that change how a step is computed (memory, recomputation), never its values: a run may
# resume with another setting, or from a checkpoint saved before the field existed.
VALUE_NEUTRAL = frozenset({"remat"})


# A config class may name fields added after runs were saved without them, with the value that
# trains as those runs did: `ADDED_FIELDS = {"row_noise": 0}` (a plain class attribute, not a
# field). Such a run resumes when the current config holds that value; ANY: the field only acts
# with another that is off in old runs.
ANY = object()


def added_fields(config: Any, prefix: str = "") -> dict[str, Any]:
    """{dotted field: its ADDED_FIELDS value} over `config` and every config nested in it."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        return {}
    out = {f"{prefix}{k}": v for k, v in getattr(type(config), "ADDED_FIELDS", {}).items()}
    for f in dataclasses.fields(config):
        out.update(added_fields(getattr(config, f.name), f"{prefix}{f.name}."))
    return out


def config_diff(
    saved: Any, current: Any, prefix: str = "", absent_means: dict[str, Any] | None = None
) -> list[tuple[str, Any, Any]]:
    """[(dotted field, saved value, current value)] for every field that differs (fields named in
    VALUE_NEUTRAL are not compared; a field absent from `saved` matches its `absent_means` value,
    see `added_fields`)."""
    absent_means = absent_means or {}
    if isinstance(saved, dict) and isinstance(current, dict):
        diffs = []
        for k in sorted((saved.keys() | current.keys()) - VALUE_NEUTRAL):
            name = f"{prefix}.{k}" if prefix else k
            missing = "<absent>"
            if k not in saved and name in absent_means:
                if absent_means[name] is ANY or absent_means[name] == current[k]:
                    continue
                missing = f"<absent: trained as {absent_means[name]!r}>"
            diffs += config_diff(saved.get(k, missing), current.get(k, missing), name, absent_means)
        return diffs
    return [] if saved == current else [(prefix or "config", saved, current)]


def _leaves_by_path(tree: Any) -> dict[str, Any]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(_key_name(k) for k in path): leaf for path, leaf in leaves}


def _key_name(key: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def _stored_as(leaf: Any) -> tuple[tuple[int, ...], Any]:
    """(shape, dtype) of a leaf as Orbax stores it: typed PRNG keys as their raw key data."""
    if jax.numpy.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.eval_shape(jax.random.key_data, leaf)
    return tuple(leaf.shape), np.dtype(leaf.dtype)
