"""MMCGAN training (jaxsyn.train.mmcgan) on an 8-patient 32³ CT phantom store with its table.

One compiled step per mesh serves two checks: 5 steps on 1 and on 8 devices (the 5th trains the
image heads) and the every-5th schedule. Resuming is tested through the CLI
(tests/test_cli_mmcgan.py), which trains the real (Adam) configuration.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsyn.data.phantoms.ct import write_cohort
from jaxsyn.data.store import VolumeStore, ingest
from jaxsyn.errors import ConfigError
from jaxsyn.models.mmcgan import MMCGANConfig
from jaxsyn.train import mmcgan, parallel
from jaxsyn.train import state as state_lib
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
    sign is noise, to +-lr). The rate sits in the optimiser state (inject_hyperparams), so one
    compiled step serves every rate (test_each_update_is_its_rate_times_a_gradient)."""
    sgd = optax.inject_hyperparams(optax.sgd)
    return {name: sgd(learning_rate=LR_OF[name]) for name in mmcgan.COMPONENTS}


def _steps(store, n_devices: int, base=CONFIG) -> list[dict]:
    """Host copies of the state's params before step 1 and after each of STEPS steps (SGD), the
    metrics, and (step, state before the last step, its batch) to run that step again."""
    mesh = parallel.make_mesh(jax.devices()[:n_devices])
    unused = store.path.parent / f"unused{n_devices}"  # no transformer is saved there
    transformer = mmcgan.fit_transformer(store, base, unused, progress=False)
    config = dataclasses.replace(base, model=base.model.bind(transformer.layout))
    recs = mmcgan.records(store, transformer, config, progress=False)
    it = iter(mmcgan.dataset(store, config, recs))
    with pytest.MonkeyPatch.context() as patch, jax.set_mesh(mesh):
        patch.setattr(mmcgan, "optimizers", _sgd)
        state = born_replicated(lambda: mmcgan.init_state(config), mesh)
        # not make_step's cached step: this one is traced with the patched optimisers
        step = parallel.data_parallel(functools.partial(mmcgan.train_step, config=config), mesh)
        states = [host(state.params)]
        metrics = []
        for i in range(STEPS):
            batch = parallel.shard_batch(next(it), mesh)
            if i == STEPS - 1:  # keep a host copy: the step donates its state
                last = (step, jax.tree.map(lambda x: x.copy(), state), batch, mesh, config)
            state, m = step(state, batch)
            states.append(host(state.params))
            metrics.append({k: float(v) for k, v in jax.device_get(m).items()})
    return states, metrics, last


@pytest.fixture(scope="module")
def runs(store):
    return {1: _steps(store, 1)}


# make test is at its 10-minute limit (11 min 1 s on 2026-12-07's AVX-512 machine): the 8-device
# run is built only here; sharding is checked in the default suite on HA-GAN, AC-GAN, the toy GAN
@pytest.mark.slow
def test_eight_devices_equal_one(runs, store):
    (one, m1, _), (eight, m8, _) = runs[1], _steps(store, 8)
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
    states, metrics, _ = runs[1]
    for i in range(1, STEPS + 1):
        image_due = i % 5 == 0
        for name in IMAGE_PARTS:
            moved = _moved(states[i - 1], states[i], name)
            assert (moved > 0) == image_due, (i, name, moved)
        for name in ("shared", "bottleneck", "tab_g", "tab_d"):
            assert _moved(states[i - 1], states[i], name) > 0, (i, name)
        assert np.isnan(metrics[i - 1]["image_d_loss"]) != image_due
        assert np.isfinite(metrics[i - 1]["tab_d_loss"])


def test_each_update_is_its_rate_times_a_gradient(runs):
    """The optimiser wiring, on the 5th step (every component trains): with SGD a component's
    update is -lr_c * g_c, with g_c computed before c moves, so doubling lr_c doubles exactly c's
    update, and the components that update before c in the step (tab_d, then image_d, then the
    generators, then the encoders) do not move differently."""
    states, _, (step, before, batch, mesh, _) = runs[1]
    order = ["tab_d", "image_d", "shared", "bottleneck", "tab_g", "image_g", "eh", "eg"]
    assert sorted(order) == sorted(mmcgan.COMPONENTS)
    base = {c: _delta(states[-2], states[-1], c) for c in order}
    for i, name in enumerate(order):
        state = jax.tree.map(lambda x: x.copy(), before)  # the step donates what it is given
        rate = state.opt_state[name].hyperparams["learning_rate"]
        assert float(rate) == pytest.approx(LR_OF[name])
        state.opt_state[name].hyperparams["learning_rate"] = 2 * rate
        # placed as the step's own outputs are, so the compiled step is reused, not retraced
        # (a retrace here would see the unpatched Adam optimisers)
        with jax.set_mesh(mesh):
            after, _ = step(jax.device_put(state, parallel.replicated(mesh)), batch)
        got = {c: _delta(states[-2], host(after.params), c) for c in order}
        above = 0.0  # the component's largest update, in units of its rounding
        for path, d in base[name].items():
            # float32 rounding of p - lr g, relative to |p|: the updates are differences
            atol = 4e-7 * max(np.abs(states[-2][path]).max(), 1e-3)
            above = max(above, np.abs(d).max() / atol)
            np.testing.assert_allclose(got[name][path], 2 * d, rtol=1e-4, atol=atol, err_msg=path)
        assert above > 100, (name, above)  # updates far above rounding: the check has teeth
        for earlier in order[:i]:  # computed before `name` moves: not a bit different
            for path, d in base[earlier].items():
                np.testing.assert_array_equal(got[earlier][path], d, err_msg=f"{name}: {path}")


@pytest.mark.slow  # one more compiled MMCGAN step (the image branch switched off)
def test_the_shared_generator_gets_the_image_gradient(runs):
    """The 5th step (image heads due) against the same step, same state, batch and keys, with
    nothing image-side due: the tabular components move identically (their gradient is the
    tabular loss's alone), the image components do not move, and G^A moves differently, by
    lr_shared times the image loss's gradient, which therefore reaches the shared generator.
    (That this difference is exactly the image gradient, not a multiple, is not checked: the
    image loss's gradient cannot be taken apart from the step's internal draws.)"""
    states, _, (_, before, batch, mesh, config) = runs[1]
    with pytest.MonkeyPatch.context() as patch, jax.set_mesh(mesh):
        patch.setattr(mmcgan, "optimizers", _sgd)
        patch.setattr(state_lib, "is_due", lambda step, every: jnp.zeros((), bool))
        no_image = parallel.data_parallel(functools.partial(mmcgan.train_step, config=config), mesh)
        state = jax.tree.map(lambda x: x.copy(), before)
        after, _ = no_image(jax.device_put(state, parallel.replicated(mesh)), batch)
    tab_only = host(after.params)
    for name in ("tab_d", "bottleneck", "tab_g"):
        for path, d in _delta(states[-2], states[-1], name).items():
            np.testing.assert_allclose(tab_only[path] - states[-2][path], d, rtol=1e-5, atol=1e-9)
    for name in ("image_g", "image_d", "eh", "eg"):
        assert all(np.array_equal(tab_only[k], states[-2][k]) for k in _component(tab_only, name))
    with_image = _delta(states[-2], states[-1], "shared")
    image_part = {k: d - (tab_only[k] - states[-2][k]) for k, d in with_image.items()}
    scale = max(np.abs(states[-2][k]).max() for k in image_part)
    assert max(np.abs(v).max() for v in image_part.values()) > 1e-3 * LR_OF["shared"] * scale


def _delta(before: dict, after: dict, name: str) -> dict:
    return {k: after[k] - before[k] for k in _component(before, name)}


def test_each_component_gets_its_learning_rate():
    """Table 1 by component: Adam's first update is lr * g / (|g| + eps), i.e. -lr * sign(g)."""
    opts = mmcgan.optimizers(CONFIG)
    assert set(opts) == set(mmcgan.COMPONENTS)
    params, grads = {"w": np.ones(3, np.float32)}, {"w": np.array([1.0, -2.0, 3.0], np.float32)}
    for name, lr in LR_OF.items():
        updates, _ = opts[name].update(grads, opts[name].init(params), params)
        np.testing.assert_allclose(updates["w"], -lr * np.sign(grads["w"]), rtol=1e-4, err_msg=name)
    paper = mmcgan.MMCGANTrainConfig()  # the defaults are the paper's Table 1 but the tabular
    assert (paper.lr_shared, paper.betas_shared) == (1e-4, (0.0, 0.999))  # head's rates (2e-4;
    assert (paper.lr_image_g, paper.betas_image_g) == (1e-4, (0.0, 0.999))  # issue 22)
    assert (paper.lr_image_d, paper.betas_image_d) == (4e-4, (0.0, 0.999))
    ours = {"tab_g": 1e-4, "tab_d": 2e-3, "bottleneck": 1e-4}
    for name in ("tab_g", "tab_d", "bottleneck"):
        lr, betas = getattr(paper, f"lr_{name}"), getattr(paper, f"betas_{name}")
        assert (lr, betas) == (ours[name], (0.5, 0.9)), name


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="class_column"):
        mmcgan.MMCGANTrainConfig(class_column=None)  # the default model has 4 classes
    with pytest.raises(ConfigError, match="image_every"):
        mmcgan.MMCGANTrainConfig(image_every=0)
    with pytest.raises(ConfigError, match=r"extra_rows is -2; expected 0 or a positive multiple of model.table.pac \(1\)"):  # fmt: skip
        mmcgan.MMCGANTrainConfig(extra_rows=-2)
    with pytest.raises(ConfigError, match="bottleneck_channels"):
        MMCGANConfig.tiny(bottleneck_channels=(8, 8, 8, 8))  # 4 halvings of an 8³ hypercube


def test_rows_are_centred_by_the_class_column(store, tmp_path):
    """`centre_rows` (the default) encodes the numeric columns relative to their bmi_class's
    mean; off, the encoding is CTGAN's (the paper's)."""
    centred = mmcgan.fit_transformer(store, CONFIG, tmp_path / "a", progress=False)
    plain = mmcgan.fit_transformer(
        store, dataclasses.replace(CONFIG, centre_rows=False), tmp_path / "b", progress=False
    )
    assert centred.config.centre_by == "bmi_class" and plain.class_offsets is None
    table = store.table
    numeric = [c.name for c in centred.schema.columns if not c.discrete]
    bmi, cls = numeric.index("bmi"), list(centred.schema["bmi_class"].categories)
    by_class = table.groupby("bmi_class")["bmi"].agg(["sum", "count"])
    for c, row in by_class.iterrows():  # shrunk by centre_prior (2) pseudo-rows at the mean
        want = (row["sum"] + 2 * table["bmi"].mean()) / (row["count"] + 2) - table["bmi"].mean()
        assert centred.class_offsets[bmi, cls.index(c)] == pytest.approx(want)
