"""MMCGAN's extra tabular rows (`MMCGANTrainConfig.extra_rows`, issue 22 item 1): the tabular head
also learns from rows drawn from the patient table beyond the volume batch's own."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from jaxsyn.train.mmcgan_data import Records, _AddRows
from tests.train.helpers import assert_trees_close
from tests.train.test_mmcgan_train import CONFIG, TOL, _steps, store  # noqa: F401 (a fixture)


def test_extra_rows_are_table_records_drawn_from_the_batch_itself():
    n, dim = 12, 5
    recs = Records(
        rows=np.arange(n * dim, dtype=np.float32).reshape(n, dim),
        tab_cond=np.eye(n, 4, dtype=np.float32),
        conditions=np.arange(n, dtype=np.float32)[:, None] * 10,
    )
    add = _AddRows(recs, extra=6, seed=3)
    batch = {"record": np.array([4, 7], np.int32), "slab_index": np.array([0, 8], np.int32)}
    out = add.map(batch)
    np.testing.assert_array_equal(out["row"], recs.rows[[4, 7]])
    idx = out["extra_conditions"][:, 0] / 10  # the drawn records, read back from their condition
    assert out["extra_row"].shape == (6, dim) and np.all(idx == np.round(idx))
    idx = idx.astype(int)
    np.testing.assert_array_equal(out["extra_row"], recs.rows[idx])
    np.testing.assert_array_equal(out["extra_tab_cond"], recs.tab_cond[idx])
    # the same batch (a resumed run replays the data order) draws the same rows; another batch
    # or another run's seed does not
    np.testing.assert_array_equal(add.map(batch)["extra_row"], out["extra_row"])
    other = {**batch, "slab_index": np.array([0, 12], np.int32)}
    assert not np.array_equal(add.map(other)["extra_row"], out["extra_row"])
    assert not np.array_equal(_AddRows(recs, 6, seed=4).map(batch)["extra_row"], out["extra_row"])
    assert "extra_row" not in _AddRows(recs).map(batch)  # off by default: the paper's batch


@pytest.mark.slow
def test_eight_devices_equal_one_with_extra_rows(store):  # noqa: F811
    config = dataclasses.replace(CONFIG, extra_rows=8)
    (one, m1, _), (eight, m8, _) = (_steps(store, n, config) for n in (1, 8))
    assert_trees_close(one[-1], eight[-1], **TOL)
    for a, b in zip(m1, m8, strict=True):
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5, err_msg=k)
    # the extra rows change the tabular head's updates (they are used)
    base = _steps(store, 1)[0]
    tab_g = [k for k in one[-1] if k.startswith("['tab_g']")]
    assert max(float(np.max(np.abs(one[-1][k] - base[-1][k]))) for k in tab_g) > 1e-6
