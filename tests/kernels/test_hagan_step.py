"""The sharded HA-GAN training step with the oneDNN convolutions equals the step on XLA's.

Tolerance: rtol = atol = 1e-5, as for the 1- vs 8-device step in tests/train/test_hagan_train.py
(float32, a simple composition: the two paths sum each convolution's products in different orders,
so they agree to rounding, which Adam's normalised update keeps at about the same scale).
"""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest

from jaxsyn import kernels
from jaxsyn.models.hagan import HAGANConfig
from jaxsyn.train import hagan, parallel
from tests.train.helpers import assert_trees_close, host

TOL = dict(rtol=1e-5, atol=1e-5)
TARGET = "jaxsyn_onednn_conv3d_fwd"
# 8 rows, one a device, 4 GroupNorm groups: the config tests/train compares across meshes
WIDE = hagan.HAGANTrainConfig.tiny(model=HAGANConfig.tiny(batch_size=8, groups=4))


@pytest.mark.slow  # two HA-GAN steps compiled for 8 devices: 20 s warm, ~3 min from a cold cache
@pytest.mark.skipif(
    not kernels.available() and os.environ.get("JAXSYN_REQUIRE_ONEDNN") != "1",
    reason="oneDNN extension not built",
)
def test_sharded_step_with_onednn_equals_xla():
    """(In `make test`, tests/train/test_hagan_train.py already runs the 8- vs 1-device step on the
    default path, oneDNN where built; this pins oneDNN against XLA on the whole step.)"""
    c = WIDE.model
    rng = np.random.default_rng(0)
    volume = rng.uniform(-1, 1, (8, c.size, c.size, c.size, 1)).astype(np.float32)
    batch = {
        "volume": volume,
        "slab": volume[:, 8 : 8 + c.slab_depth],
        "low": volume[:, ::4, ::4, ::4],
        "slab_index": np.full((8,), 8, np.int32),
        "conditions": np.zeros((8, 0), np.float32),
    }
    mesh = parallel.make_mesh(jax.devices())
    assert mesh.size == 8
    result = {}
    with jax.set_mesh(mesh):
        initial = hagan.make_state(WIDE, mesh)
        placed = parallel.shard_batch(batch, mesh)
        for impl in ("xla", "onednn"):
            with kernels.use(impl):
                state = jax.tree.map(lambda a: a.copy(), initial)  # the step donates it
                step = hagan.make_step(WIDE, mesh)
                assert (TARGET in step.lower(state, placed).as_text()) == (impl == "onednn")
                after, metrics = step(state, placed)
                result[impl] = host(after), host(metrics)
    assert_trees_close(result["onednn"][1], result["xla"][1], **TOL)
    assert_trees_close(result["onednn"][0], result["xla"][0], **TOL)
