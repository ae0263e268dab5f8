"""HA-GAN training (jaxsyn.train.hagan) on a 4-patient 32³ phantom store.

Tolerance of the 8-device vs 1-device step: rtol = atol = 1e-5 (float32, simple module). The
sharded step sums each gradient and loss per device and then across devices, another order than
the single-device sum, so the two agree to rounding, not bit for bit.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsyn.data.phantoms.ct import write_cohort
from jaxsyn.data.store import VolumeStore, ingest
from jaxsyn.errors import DataError
from jaxsyn.models.hagan import EncoderGlobal, EncoderHigh, Generator, HAGANConfig
from jaxsyn.train import hagan, loop, parallel
from tests.train.helpers import assert_trees_close, assert_trees_equal, host

pytestmark = pytest.mark.xdist_group("hagan")  # with tests/test_cli_hagan.py: one compiled step
TOL = dict(rtol=1e-5, atol=1e-5)
SEED = 1  # the phantom cohort's: its 4 patients' bmi_class are 1, 2, 1, 3
# One configuration for every compiled step of this module and of tests/test_cli_hagan.py (whose
# CLI run sets the same fields: --tiny --condition-columns bmi_class --config.batch_size=8), so
# the step is traced and compiled once per mesh in the worker that runs both modules (their shared
# xdist group): conditional on bmi_class, one example a device on 8 devices, tiny()'s 4 GroupNorm
# groups (two channels a group: with one, the mean subtraction cancels the preceding conv's bias,
# whose gradient is then rounding noise that Adam scales to +-lr, tests/models/test_hagan.py::
# test_tiny_preset_has_no_dead_parameters).
RUN = hagan.HAGANTrainConfig.tiny(
    model=HAGANConfig.tiny(num_classes=4, batch_size=8), class_column="bmi_class"
)
WIDE = RUN  # the 1- vs 8-device step
NETWORKS = ("g", "d", "eh", "eg")


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[int, VolumeStore]:
    """The same 4 phantoms (written at 32³) ingested at 32³ and at 64³, with their table."""
    root = tmp_path_factory.mktemp("hagan_data")
    write_cohort(root / "cohort", 4, 32, seed=SEED, progress=False)
    table = root / "cohort" / "table.csv"
    return {
        s: VolumeStore(
            ingest(root / "cohort", root / f"store{s}", table=table, size=s, progress=False)
        )
        for s in (32, 64)
    }


def _devices(n: int) -> list:
    devices = jax.devices()
    assert len(devices) == 8, "tests/conftest.py sets 8 CPU devices"
    return devices[:n]


# --- one step on 1 and 8 devices -----------------------------------------------------------------


@pytest.fixture(scope="module")
def one_step(stores) -> dict[int, tuple[dict, dict, dict]]:
    """{devices: (state before, state after, metrics)} of one step of WIDE on the same batch."""
    batch = next(iter(hagan.dataset(stores[32], WIDE)))  # 8 rows: each volume twice
    assert batch["slab"].shape == (8, 4, 32, 32, 1) and batch["volume"].shape == (8, 32, 32, 32, 1)
    meshes = {n: parallel.make_mesh(_devices(n)) for n in (8, 1)}
    with jax.set_mesh(meshes[8]):
        initial = hagan.make_state(WIDE, meshes[8])
    result = {}
    for n, mesh in meshes.items():
        with jax.set_mesh(mesh):
            # the same state, replicated over this mesh (one init compiled, not one per mesh)
            state = jax.device_put(initial, parallel.replicated(mesh))
            before = host(state)  # the step donates the state
            params = jax.device_get(state.params)
            placed = parallel.shard_batch(batch, mesh)
            assert len(placed["slab"].addressable_shards) == n
            after, metrics = hagan.make_step(WIDE, mesh)(state, placed)
            result[n] = (before, host(after), host(metrics))
    result["trees"] = (batch, params, jax.device_get(after.params), host(metrics))
    return result


def _moved(before: dict, after: dict, prefix: str) -> bool:
    keys = [k for k in before if k.startswith(prefix)]
    assert keys, prefix
    return any(not np.array_equal(before[k], after[k]) for k in keys)


def test_sharded_step_matches_single_device(one_step):
    (before1, after1, metrics1), (before8, after8, metrics8) = one_step[1], one_step[8]
    assert_trees_equal(before8, before1)
    assert_trees_close(after8, after1, **TOL)
    assert_trees_close(metrics8, metrics1, **TOL)
    names = ("d_loss", "g_loss", "eh_l1", "eg_l1", "d_adv", "d_aux", "g_adv")
    assert set(metrics1) == {f"['{name}']" for name in names}
    for name in NETWORKS:  # so every network was compared after it moved
        for before, after in ((before1, after1), (before8, after8)):
            assert _moved(before, after, f".params['{name}']"), name
            assert _moved(before, after, f".opt_state['{name}']"), name
    assert int(after1[".step"]) == int(after8[".step"]) == 1


def test_eg_step_encodes_the_real_volume_slab_by_slab(one_step):
    """The E^G step's target: E^H (already updated this step) on each of the 8 depth slabs of the
    real volume on its own, concatenated (the reference's train.py), then E^G (before its update)
    and G (updated). Its L1 is the step's eg_l1; a whole-volume E^H pass gives another value."""
    batch, before, after, metrics = one_step["trees"]
    config, d = WIDE.model, WIDE.model.size // 8
    volume = batch["volume"]
    slabs = [volume[:, k * d : (k + 1) * d] for k in range(8)]
    h = jnp.concatenate([EncoderHigh(config).apply({"params": after["eh"]}, x) for x in slabs], 1)
    cond = hagan.condition_vector(config, *hagan.split_conditions(config, batch["conditions"]))

    def l1(hypercube):
        z = EncoderGlobal(config).apply({"params": before["eg"]}, hypercube)
        low, slab = hagan._fake(config, after["g"], z, cond, batch["slab_index"])
        return float(
            (jnp.abs(slab - batch["slab"]).mean() + jnp.abs(low - batch["low"]).mean()) / 2
        )

    np.testing.assert_allclose(metrics["['eg_l1']"], l1(h), rtol=1e-5)
    whole = l1(EncoderHigh(config).apply({"params": after["eh"]}, volume))
    assert abs(whole - l1(h)) > 1e-4


def test_spectral_vectors_advance(one_step):
    """D's power iteration moves every u (and σ) during a step: they are threaded, not dropped."""
    before, after, _ = one_step[8]
    keys = [k for k in before if k.startswith(".stats['spectral']")]
    assert any(k.endswith("/u']") for k in keys)
    # a u of one element is +-1 and stays so (the class head's, one output row)
    moving = [k for k in keys if not (k.endswith("/u']") and before[k].size == 1)]
    for k in moving:
        assert not np.array_equal(before[k], after[k]), k


# --- slab positions ------------------------------------------------------------------------------


def test_slabs_are_aligned_and_the_fake_slab_covers_the_real_slices(stores):
    """Real slab = volume rows [s, s + S/8) with s a multiple of 4 (one hypercube row), drawn per
    example; the fake slab is G^H of hypercube rows [s/4, s/4 + S/32), which G^H's 4x upsampling
    maps onto exactly those full-resolution rows."""
    config = hagan.HAGANTrainConfig.tiny(model=HAGANConfig.tiny(size=64, batch_size=4))
    m = config.model
    depth = m.size // 8
    batches = [b for b, _ in zip(hagan.dataset(stores[64], config), range(6), strict=False)]
    for b in batches:
        for s, slab, volume in zip(b["slab_index"], b["slab"], b["volume"], strict=True):
            assert s % 4 == 0 and 0 <= s <= m.size - depth, s
            np.testing.assert_array_equal(slab, volume[s : s + depth])
    assert len({int(s) for b in batches for s in b["slab_index"]}) >= 4  # positions vary

    g = Generator(m)
    zc = jax.random.normal(jax.random.key(0), (4, m.latent_dim))
    params = jax.jit(g.init)(jax.random.key(1), zc[:1], jnp.int32(0))["params"]
    starts = jnp.array([0, 4, 28, m.size - depth], jnp.int32)  # one position per example
    _, fake = jax.jit(hagan._fake, static_argnums=0)(m, params, zc, jnp.zeros((4, 0)), starts)
    h = jax.jit(lambda p: g.apply({"params": p}, zc, method=Generator.hypercube))(params)
    high = jax.jit(lambda p, h: g.apply({"params": p}, h, method=Generator.high_res))
    rows = m.size // 32  # hypercube rows per slab
    assert 4 * rows == depth and fake.shape == (4, depth, m.size, m.size, 1)
    for i, s in enumerate(starts.tolist()):
        np.testing.assert_allclose(
            fake[i : i + 1],
            high(params, h[i : i + 1, s // 4 : s // 4 + rows]),
            rtol=1e-5,
            atol=1e-6,
        )
        if s // 4 + 1 + rows <= m.size // 4:  # one hypercube row later is another slab
            shifted = high(params, h[i : i + 1, s // 4 + 1 : s // 4 + 1 + rows])
            assert np.abs(fake[i] - shifted[0]).max() > 1e-3


# --- whole runs ----------------------------------------------------------------------------------


def _run(out, store, steps: int, config=RUN, **kwargs):
    kwargs = {"checkpoint_every": 2, "progress": False, "devices": _devices(8), **kwargs}
    return hagan.run(out, store, steps=steps, config=config, **kwargs)


@pytest.fixture(scope="module")
def straight(stores, tmp_path_factory):
    """4 uninterrupted steps of RUN, previews every 2: (folder, host state)."""
    out = tmp_path_factory.mktemp("straight")
    return out, host(_run(out, stores[32], 4, preview_every=2))


def test_resume_equals_straight_run_bitwise(stores, straight, tmp_path):
    """2 steps, checkpoint, a new call that restores and makes 2 more == 4 straight steps."""
    _run(tmp_path, stores[32], 2)  # a preview after its last step only
    resumed = _run(tmp_path, stores[32], 4, resume=True, preview_every=1)
    # previews tell which steps the second call made: 3 and 4, not 1..4 again
    previews = sorted(p.name for p in (tmp_path / "previews").iterdir())
    assert previews == [f"step_000000{k}.png" for k in (2, 3, 4)]
    out, state = straight
    assert_trees_equal(host(resumed), state)  # params, opt_state, stats, step and key
    assert int(state[".step"]) == 4
    metrics = loop.read_metrics(tmp_path / "metrics.jsonl")
    assert metrics == loop.read_metrics(out / "metrics.jsonl")
    assert [row["step"] for row in metrics] == [1, 2, 3, 4]


def test_losses_are_finite_and_move(straight):
    out, _ = straight
    metrics = loop.read_metrics(out / "metrics.jsonl")
    assert [row["step"] for row in metrics] == [1, 2, 3, 4]
    for name in ("d_loss", "g_loss", "eh_l1", "eg_l1", "d_adv", "d_aux", "g_adv"):
        values = np.array([row[name] for row in metrics], dtype=float)  # null -> nan
        assert np.isfinite(values).all(), name
        assert len(set(values)) > 1, name  # training changes them
    previews = sorted(p.name for p in (out / "previews").iterdir())
    assert previews == ["step_0000002.png", "step_0000004.png"]
    for name in previews:
        assert (out / "previews" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_conditional_run_trains_on_the_classes(straight):
    out, state = straight
    # G's first layer takes z beside the one-hot class
    assert state[".params['g']['fc']['kernel']"].shape[0] == RUN.model.latent_dim + 4
    metrics = loop.read_metrics(out / "metrics.jsonl")
    assert all(row["d_aux"] > 0 for row in metrics)  # D's class head, on the real labels
    info = json.loads((out / "config.json").read_text())
    assert info["class_column"] == "bmi_class" and info["model"]["num_classes"] == 4


def test_store_of_another_size_is_refused(stores, tmp_path):
    with pytest.raises(DataError, match="holds 64³ volumes; expected 32³ \\(model.size"):
        _run(tmp_path, stores[64], 1)


def test_class_out_of_range_is_refused(stores, tmp_path):
    config = hagan.HAGANTrainConfig.tiny(
        model=HAGANConfig.tiny(num_classes=2), class_column="bmi_class"
    )
    with pytest.raises(
        DataError, match=r"'bmi_class' is 2 for P00001; expected an integer class 0\.\.1"
    ):
        _run(tmp_path, stores[32], 1, config=config)


def test_batch_larger_than_store_on_all_devices(stores, tmp_path):
    """A batch of 8 splits over the 8 devices, and the pipeline repeats a 4-volume store to fill
    it (as `one_step` does): the tiny-cohort clamp must not shrink it below the device count."""
    state = _run(tmp_path, stores[32], 1)
    assert int(state.step) == 1
