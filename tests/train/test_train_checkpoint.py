"""Checkpoints: bitwise resume (data order included), refusal of mismatches, keep-N, atomicity."""

from __future__ import annotations

import dataclasses
import json
import shutil

import jax
import numpy as np
import pytest

from jaxsyn.checkpoint import Checkpointer, as_json, config_diff
from jaxsyn.errors import CheckpointError
from jaxsyn.train import loop, parallel, toygan
from tests.train.helpers import TINY, BatchRecorder, N, assert_trees_equal, host


def test_resume_equals_straight_run_bitwise(tmp_path, reference_run):
    """N steps, save, rebuild everything from the directory, N more == 2N straight steps."""
    recorder = BatchRecorder()
    kwargs = dict(seed=TINY.seed, checkpoint_every=N, config=TINY, progress=False)
    toygan.run(tmp_path, steps=N, hooks=[recorder.hook()], **kwargs)
    # The second call shares nothing with the first but the directory: a new mesh, iterator,
    # step function and state, restored from the checkpoint at step N.
    state = toygan.run(tmp_path, steps=2 * N, resume=True, hooks=[recorder.hook()], **kwargs)
    assert recorder.steps == list(range(1, 2 * N + 1))
    assert recorder.indices == reference_run.indices  # the same examples, in the same order
    assert_trees_equal(host(state), reference_run.state)
    assert loop.read_metrics(tmp_path / "metrics.jsonl") == reference_run.metrics


@pytest.fixture(scope="module")
def one_step_run(tmp_path_factory):
    """A finished 1-step run of TINY; tests only read it."""
    out = tmp_path_factory.mktemp("one_step")
    toygan.run(out, steps=1, seed=TINY.seed, checkpoint_every=1, config=TINY, progress=False)
    return out


def test_other_model_config_is_refused(one_step_run):
    wider = dataclasses.replace(TINY, model=dataclasses.replace(TINY.model, width=16))
    with pytest.raises(CheckpointError, match=r"model\.width is 8 in the checkpoint, 16 now"):
        toygan.run(one_step_run, steps=2, resume=True, config=wider, progress=False)
    faster = dataclasses.replace(TINY, d_lr=0.5, batch_size=8)
    with pytest.raises(CheckpointError) as error:
        toygan.run(one_step_run, steps=2, resume=True, config=faster, progress=False)
    assert "batch_size is 16 in the checkpoint, 8 now" in str(error.value)
    assert "d_lr is 0.001 in the checkpoint, 0.5 now" in str(error.value)


def test_state_that_does_not_fit_is_refused(one_step_run):
    """Same recorded config, different arrays: the restore names each path that differs."""
    wider = dataclasses.replace(TINY, model=dataclasses.replace(TINY.model, width=16))
    mesh = parallel.make_mesh()
    ckpt = Checkpointer(one_step_run / "checkpoints", TINY)
    with ckpt, pytest.raises(CheckpointError) as error:
        ckpt.restore(toygan.abstract_state(wider, mesh))
    message = str(error.value)
    assert "does not fit the model" in message
    assert "params/d/Dense_0/kernel: float32[5, 8] in the checkpoint, float32[5, 16] expected" in (
        message
    )


def test_existing_checkpoint_needs_resume(one_step_run):
    with pytest.raises(CheckpointError, match="holds checkpoints up to step 1.*--resume"):
        toygan.run(one_step_run, steps=2, config=TINY, progress=False)


def test_restore_reports_missing_step(one_step_run):
    with Checkpointer(one_step_run / "checkpoints", TINY) as ckpt:
        assert ckpt.latest_step() == 1
        with pytest.raises(CheckpointError, match=r"no checkpoint at step 5; steps found: \[1\]"):
            ckpt.restore(toygan.abstract_state(TINY, parallel.make_mesh()), step=5)


def test_keeps_last_n_and_ignores_unfinished_saves(tmp_path):
    """keep=2 leaves the last two steps; a save cut short (Orbax's temporary directory, renamed
    only when complete) is never restored and is removed when the directory is next opened."""
    mesh = parallel.make_mesh()
    state = toygan.make_state(TINY, mesh)
    with Checkpointer(tmp_path, TINY, keep=2) as ckpt:
        for step in (1, 2, 3):
            ckpt.save(step, state)
        ckpt.wait()
        assert ckpt.all_steps() == [2, 3]
    torn = tmp_path / "4.orbax-checkpoint-tmp"
    (torn / "state").mkdir(parents=True)
    (torn / "state" / "half_written").write_bytes(b"\0" * 10)
    with Checkpointer(tmp_path, TINY, keep=2) as ckpt:
        assert ckpt.latest_step() == 3
        restored = ckpt.restore(toygan.abstract_state(TINY, mesh))
        assert_trees_equal(host(restored), host(state))
    assert not torn.exists()


def test_restored_arrays_live_on_the_mesh(one_step_run):
    mesh = parallel.make_mesh()
    with Checkpointer(one_step_run / "checkpoints", TINY) as ckpt:
        state = ckpt.restore(toygan.abstract_state(TINY, mesh))
    for leaf in jax.tree.leaves(state):
        assert leaf.sharding == parallel.replicated(mesh)


def test_config_diff_names_nested_fields():
    saved = as_json(TINY)
    current = as_json(dataclasses.replace(TINY, model=dataclasses.replace(TINY.model, depth=3)))
    assert config_diff(saved, current) == [("model.depth", 2, 3)]
    assert config_diff({"a": 1}, {"a": 1, "b": (1, 2)}) == [("b", "<absent>", (1, 2))]
    # remat changes memory, not values: another policy, or none saved (an older run), resumes
    remat = {"model": {"depth": 2, "remat": ["none", "nothing_saveable"]}}
    assert config_diff({"model": {"depth": 2}}, remat) == []
    assert config_diff({"model": {"depth": 2, "remat": "none"}}, remat) == []
    assert np.isscalar(saved["seed"])


def test_fields_added_later_match_the_value_that_trains_as_old_runs_did():
    """A run saved before MMCGAN's row_noise / extra_rows / row classifier existed resumes when
    the current config trains as it did, and is refused, saying how it trained, otherwise. The
    values come from the configs' ADDED_FIELDS (`added_fields`)."""
    from jaxsyn.checkpoint import added_fields
    from jaxsyn.train.mmcgan import MMCGANTrainConfig

    config = MMCGANTrainConfig.tiny()
    absent = added_fields(config)
    assert absent["model.row_noise"] == 0 and absent["extra_rows"] == 0
    current = as_json(config)
    now = as_json(dataclasses.replace(config, model=dataclasses.replace(config.model, row_noise=0)))
    old = json.loads(json.dumps(now))  # a run saved before the fields existed (no row noise)
    for key in ("extra_rows", "lr_row_class"):
        del old[key]
    for key in ("row_noise", "lambda_row_class"):
        del old["model"][key]
    assert config_diff(old, now, absent_means=absent) == []
    emb = config.model.table.embedding_dim  # grows with row_noise
    assert config_diff(old, current, absent_means=absent) == [
        ("model.row_noise", "<absent: trained as 0>", config.model.row_noise),
        ("model.table.embedding_dim", emb - config.model.row_noise, emb),
    ]
    assert config_diff(old, now) != []  # without the configs' word, absent is a difference
    assert config_diff({"a": 1}, {"a": 1, "depth": 3}, absent_means=absent) == [
        ("depth", "<absent>", 3)
    ]


def test_truncated_array_files_are_a_one_line_error(one_step_run, tmp_path):
    """A damaged checkpoint (array files cut short) is refused naming the checkpoint, by the
    full restore (resume) and by the partial one generation uses, not with Orbax's traceback."""
    from jaxsyn.checkpoint import restore_subtree

    run = tmp_path / "run"
    shutil.copytree(one_step_run, run)
    arrays = [p for p in (run / "checkpoints" / "1" / "state").rglob("d/*") if p.is_file()]
    assert arrays
    for path in arrays:
        path.write_bytes(path.read_bytes()[:10])
    where = str(run / "checkpoints" / "1")
    with pytest.raises(CheckpointError) as error:
        toygan.run(run, steps=2, resume=True, config=TINY, progress=False)
    message = str(error.value)
    assert message.startswith(where) and "damaged or truncated" in message and "\n" not in message
    abstract = jax.eval_shape(lambda: toygan.init_state(TINY).params)
    with pytest.raises(CheckpointError, match="damaged or truncated") as error:
        restore_subtree(run / "checkpoints", {"params": abstract})
    assert str(error.value).startswith(where)
