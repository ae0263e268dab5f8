"""MMCGAN training (jaxsyn.train.mmcgan) on an 8-patient 32³ CT phantom store with its table.

One compiled step per mesh serves two checks: 5 steps on 1 and on 8 devices (the 5th trains the
image heads) and the every-5th schedule. Resuming is tested through the CLI
(tests/test_cli_mmcgan.py), which trains the real (Adam) configuration.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
import optax
import pytest

from jaxsyn.data.phantoms.ct import write_cohort
from jaxsyn.data.store import VolumeStore, ingest
from jaxsyn.errors import ConfigError
from jaxsyn.models.mmcgan import MMCGANConfig
from jaxsyn.train import mmcgan, parallel
from jaxsyn.train.state import born_replicated
from tests.train.helpers import assert_trees_close, host

TOL = dict(rtol=1e-5, atol=1e-5)
STEPS = 5
# Distinct learning rates, so each component's first update shows which one it got.
LRS = dict(lr_shared=1e-4, lr_image_g=3e-4, lr_image_d=5e-4, lr_tab_g=7e-4, lr_tab_d=9e-4,
           lr_bottleneck=2e-4, lr_encoders=6e-4)  # fmt: skip
CONFIG = mmcgan.MMCGANTrainConfig.tiny(batch_size=8, **LRS)
LR_OF = {"shared": 1e-4, "image_g": 3e-4, "image_d": 5e-4, "tab_g": 7e-4, "tab_d": 9e-4,
         "bottleneck": 2e-4, "eh": 6e-4, "eg": 6e-4}  # fmt: skip
IMAGE_PARTS = ("image_g", "image_d", "eh", "eg")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> VolumeStore:
    root = tmp_path_factory.mktemp("mmcgan_data")
    write_cohort(root / "cohort", 8, 32, seed=0, progress=False)
    return VolumeStore(
        ingest(
            root / "cohort",
            root / "store",
            table=root / "cohort" / "table.csv",
            size=32,
            progress=False,
        )  # fmt: skip
    )


def _sgd(config):
    """Plain SGD per component at its learning rate: the 1- vs 8-device comparison checks the
    gradients, which Adam's first update would hide (it maps a gradient of rounding size, whose
    sign is noise, to +-lr)."""
    return {name: optax.sgd(LR_OF[name]) for name in mmcgan.COMPONENTS}


def _steps(store, n_devices: int) -> list[dict]:
    """Host copies of the state's params before step 1 and after each of STEPS steps (SGD)."""
    mesh = parallel.make_mesh(jax.devices()[:n_devices])
    unused = store.path.parent / f"unused{n_devices}"  # no transformer is saved there
    transformer = mmcgan.fit_transformer(store, CONFIG, unused, progress=False)
    config = dataclasses.replace(CONFIG, model=CONFIG.model.bind(transformer.layout))
    recs = mmcgan.records(store, transformer, config, progress=False)
    it = iter(mmcgan.dataset(store, config, recs))
    with pytest.MonkeyPatch.context() as patch, jax.set_mesh(mesh):
        patch.setattr(mmcgan, "optimizers", _sgd)
        state = born_replicated(lambda: mmcgan.init_state(config), mesh)
        # not make_step's cached step: this one is traced with the patched optimisers
        step = parallel.data_parallel(functools.partial(mmcgan.train_step, config=config), mesh)
        states = [host(state.params)]
        metrics = []
        for _ in range(STEPS):
            state, m = step(state, parallel.shard_batch(next(it), mesh))
            states.append(host(state.params))
            metrics.append({k: float(v) for k, v in jax.device_get(m).items()})
    return states, metrics


@pytest.fixture(scope="module")
def runs(store):
    return {n: _steps(store, n) for n in (1, 8)}


def test_eight_devices_equal_one(runs):
    (one, m1), (eight, m8) = runs[1], runs[8]
    assert_trees_close(one[-1], eight[-1], **TOL)
    for a, b in zip(m1, m8, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5, err_msg=k)


def _component(params: dict, name: str) -> dict:
    return {k: v for k, v in params.items() if k.startswith(f"['{name}']")}


def _moved(a: dict, b: dict, name: str) -> float:
    pa, pb = _component(a, name), _component(b, name)
    assert pa, f"no parameters of {name}"
    return max(float(np.max(np.abs(pa[k] - pb[k]))) for k in pa)


def test_image_heads_train_every_fifth_step_and_tabular_every_step(runs):
    states, metrics = runs[1]
    for i in range(1, STEPS + 1):
        image_due = i % 5 == 0
        for name in IMAGE_PARTS:
            moved = _moved(states[i - 1], states[i], name)
            assert (moved > 0) == image_due, (i, name, moved)
        for name in ("shared", "bottleneck", "tab_g", "tab_d"):
            assert _moved(states[i - 1], states[i], name) > 0, (i, name)
        assert np.isnan(metrics[i - 1]["image_d_loss"]) != image_due
        assert np.isfinite(metrics[i - 1]["tab_d_loss"])


def test_each_component_gets_its_learning_rate():
    """Table 1 by component: Adam's first update is lr * g / (|g| + eps), i.e. -lr * sign(g)."""
    opts = mmcgan.optimizers(CONFIG)
    assert set(opts) == set(mmcgan.COMPONENTS)
    params, grads = {"w": np.ones(3, np.float32)}, {"w": np.array([1.0, -2.0, 3.0], np.float32)}
    for name, lr in LR_OF.items():
        updates, _ = opts[name].update(grads, opts[name].init(params), params)
        np.testing.assert_allclose(updates["w"], -lr * np.sign(grads["w"]), rtol=1e-4, err_msg=name)
    paper = mmcgan.MMCGANTrainConfig()  # the defaults are the paper's Table 1
    assert (paper.lr_shared, paper.betas_shared) == (1e-4, (0.0, 0.999))
    assert (paper.lr_image_g, paper.betas_image_g) == (1e-4, (0.0, 0.999))
    assert (paper.lr_image_d, paper.betas_image_d) == (4e-4, (0.0, 0.999))
    for name in ("tab_g", "tab_d", "bottleneck"):
        assert (getattr(paper, f"lr_{name}"), getattr(paper, f"betas_{name}")) == (2e-4, (0.5, 0.9))


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="class_column"):
        mmcgan.MMCGANTrainConfig(class_column=None)  # the default model has 4 classes
    with pytest.raises(ConfigError, match="image_every"):
        mmcgan.MMCGANTrainConfig(image_every=0)
    with pytest.raises(ConfigError, match="bottleneck_channels"):
        MMCGANConfig.tiny(bottleneck_channels=(8, 8, 8, 8))  # 4 halvings of an 8³ hypercube
