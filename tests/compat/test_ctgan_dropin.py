"""jaxsyn.compat.ctgan.CTGAN's own behaviour at tiny sizes: ctgan's API (types, columns, dtypes,
loss_values, errors and their messages), seeding, save/load in our format and the refusal of
ctgan's torch pickles, and where it keeps jaxsyn's behaviour (missing numbers, sampling
frequencies). The comparison with the installed ctgan is tests/compat/test_ctgan_peers.py."""

import io
import pickle
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest

from jaxsyn.compat.ctgan import CTGAN, LOSS_COLUMNS, InvalidDataError
from jaxsyn.errors import ConfigError, DataError

pytestmark = pytest.mark.xdist_group("ctgan_dropin")

TINY = dict(embedding_dim=8, generator_dim=(16,), discriminator_dim=(16,), batch_size=20)


def table(n=60, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(50.0, 10.0, n).round(2)
    x[rng.random(n) < 0.3] = np.nan  # missing numbers: ctgan refuses them, jaxsyn models them
    return pd.DataFrame(
        {
            "x": x,
            "count": rng.integers(0, 4, n),  # few values, but not discrete: numeric as in ctgan
            "c": rng.choice(["a", "b", "c"], n, p=[0.7, 0.2, 0.1]),
        }
    )


@pytest.fixture(scope="module")
def fitted():
    model = CTGAN(epochs=2, **TINY)
    model.set_random_state(3)
    model.fit(table(), ["c"])
    return model


@pytest.fixture(scope="module")
def fitted_array():
    """On an object array of the same table (the same compiled step), sampling as ctgan does
    (log-frequency conditions)."""
    model = CTGAN(epochs=1, sample_log_frequency=True, **TINY)
    model.set_random_state(5)
    model.fit(table().to_numpy(), [2])
    return model


def test_sample_has_the_training_columns_and_dtypes(fitted):
    rows = fitted.sample(60)  # 33..64 rows: one compiled sampler for every test
    real = table()
    assert isinstance(rows, pd.DataFrame) and rows.shape == (60, 3)
    assert list(rows.columns) == list(real.columns)
    assert rows.dtypes.to_dict() == real.dtypes.to_dict()
    assert set(rows["c"]) <= {"a", "b", "c"}
    assert rows["x"].isna().any() and rows["x"].notna().any()  # missingness is generated
    assert fitted.sample(0).shape == (0, 3) and fitted.sample(33).shape == (33, 3)


def test_loss_values_are_ctgans_frame(fitted):
    losses = fitted.loss_values
    assert list(losses.columns) == LOSS_COLUMNS == ["Epoch", "Generator Loss", "Discriminator Loss"]
    pd.testing.assert_series_equal(losses["Epoch"], pd.Series(range(2), name="Epoch"))
    assert losses.dtypes.iloc[1:].tolist() == [np.float64, np.float64]
    assert np.isfinite(losses[LOSS_COLUMNS[1:]].to_numpy()).all()


def test_conditional_sample_carries_the_value(fitted):
    rows = fitted.sample(40, "c", "c")  # the rarest category, every row
    assert (rows["c"] == "c").all() and len(rows) == 40


def test_sampling_conditions_errors_are_ctgans(fitted):
    with pytest.raises(ValueError, match="The column_name `cardinal` doesn't exist in the data."):
        fitted.sample(1, "cardinal", "x")
    with pytest.raises(ValueError, match="The value `d` doesn't exist in the column `c`."):
        fitted.sample(1, "c", "d")
    with pytest.raises(ValueError, match="`x` is a continuous column"):
        fitted.sample(1, "x", 50.0)
    rows = fitted.sample(50, "c", None)  # a column without a value: ignored, as ctgan does
    assert len(rows) == 50


def test_random_state_reproduces_samples(fitted):
    fitted.set_random_state(0)
    first, second = fitted.sample(50), fitted.sample(50)
    fitted.set_random_state(0)
    pd.testing.assert_frame_equal(fitted.sample(50), first)
    pd.testing.assert_frame_equal(fitted.sample(50), second)
    assert not first.equals(second)
    fitted.set_random_state((np.random.RandomState(0), None))
    pd.testing.assert_frame_equal(fitted.sample(50), first)
    with pytest.raises(TypeError, match="expected to be an int or a tuple"):
        fitted.set_random_state("0")


def test_save_and_load_round_trip(fitted, tmp_path):
    fitted.set_random_state(7)
    path = tmp_path / "model.pkl"  # a ctgan user's file name; the content is ours
    fitted.save(str(path))
    assert zipfile.is_zipfile(path) and not any(
        n.endswith(".pkl") for n in zipfile.ZipFile(path).namelist()
    )
    loaded = CTGAN.load(str(path))
    pd.testing.assert_frame_equal(loaded.sample(50), fitted.sample(50))  # the state carried on
    pd.testing.assert_frame_equal(loaded.loss_values, fitted.loss_values)
    assert loaded._args == fitted._args


def test_unfitted_model_saves_loads_and_refuses_to_sample(tmp_path):
    model = CTGAN(epochs=4, pac=5, batch_size=10)
    model.save(tmp_path / "m")
    loaded = CTGAN.load(tmp_path / "m")
    assert loaded._args == model._args and loaded.loss_values is None
    with pytest.raises(ConfigError, match="not fitted"):
        loaded.sample(3)


def test_load_refuses_ctgans_torch_pickles(tmp_path):
    archive = tmp_path / "ctgan_zip.pkl"  # torch.save's layout: a zip holding <name>/data.pkl
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("ctgan_zip/data.pkl", pickle.dumps({"a": 1}, protocol=2))
        z.writestr("ctgan_zip/version", "3\n")
    legacy = tmp_path / "ctgan_legacy.pkl"  # torch's older format: a bare pickle
    legacy.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    for path in (archive, legacy):
        with pytest.raises(DataError, match="PyTorch pickle .*never unpickles"):
            CTGAN.load(path)
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(DataError, match="not a zip file"):
        CTGAN.load(other)
    with pytest.raises(DataError, match="no such file"):
        CTGAN.load(tmp_path / "absent")


def test_load_refuses_arrays_that_do_not_fit_the_config(fitted, tmp_path):
    path = tmp_path / "m"
    fitted.save(path)
    with zipfile.ZipFile(path) as z:
        meta = z.read("ctgan.json")
    buffer = io.BytesIO()
    np.savez(buffer, **{"params/x": np.zeros(3)})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("ctgan.json", meta)
        z.writestr("generator.npz", buffer.getvalue())
    with pytest.raises(DataError, match="do not match its config"):
        CTGAN.load(path)


def test_array_input_returns_arrays(fitted_array):
    rows = fitted_array.sample(50)
    assert isinstance(rows, np.ndarray) and rows.shape == (50, 3) and rows.dtype == object
    assert set(rows[:, 2]) <= {"a", "b", "c"}
    assert all(isinstance(v, int) for v in rows[:, 1])  # the integer column, as numbers
    assert fitted_array.sample(50, 2, "b")[:, 2].tolist() == ["b"] * 50  # a column index names it


def test_free_conditions_follow_the_sampling_frequencies(fitted, fitted_array):
    """Empirical frequencies by default; log-frequency with sample_log_frequency=True (ctgan's)."""
    import jax

    counts = np.asarray(table()["c"].value_counts().sort_index(), float)  # a, b, c
    for model, weight in ((fitted, counts), (fitted_array, np.log1p(counts))):
        cond = np.asarray(model._synth.free_conditions(jax.random.key(0), 20000))
        share = cond.mean(0) / cond.mean(0).sum()
        np.testing.assert_allclose(share, weight / weight.sum(), atol=0.015)


def test_fit_errors_are_ctgans():
    model = CTGAN(epochs=1, **TINY)
    data = pd.DataFrame({"discrete": ["a", "b"]})
    with pytest.raises(ValueError, match="Invalid columns found: {'.*', '.*'}"):
        model.fit(data, ["b", "c"])
    with pytest.raises(ValueError, match=r"Invalid columns found: \[1\]"):
        model.fit(data.to_numpy(), [0, 1])
    with pytest.raises(TypeError, match="should be either pd.DataFrame or np.array"):
        model.fit([[1.0, 2.0]], [])
    text = pd.DataFrame({"x": ["1.5", "two"], "c": ["a", "b"]})
    with pytest.raises(InvalidDataError, match="'x' holds 'two'") as info:
        model.fit(text, ["c"])
    assert isinstance(info.value, DataError)
    deprecated = pytest.warns(DeprecationWarning, match="`epochs` argument in `fit`")
    with deprecated, pytest.raises(ConfigError, match="epochs is 0"):
        model.fit(data, ["discrete"], epochs=0)


def test_constructor_checks_as_ctgan():
    with pytest.raises(AssertionError):
        CTGAN(batch_size=501)
    with pytest.warns(FutureWarning, match="`cuda` parameter is deprecated"):
        model = CTGAN(cuda=False, enable_gpu=True)
    assert model._device.platform == "cpu"
    conflict = pytest.raises(ValueError, match="Cannot resolve the provided values of `cuda`")
    with conflict, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        CTGAN(cuda=True, enable_gpu=False)
    with pytest.raises(ConfigError, match="discriminator_steps is 5"):
        CTGAN(discriminator_steps=5)
    with pytest.raises(ConfigError, match="batch_size is 30; expected a positive multiple of pac"):
        CTGAN(batch_size=30, pac=20)
