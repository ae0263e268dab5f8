"""Mode-specific normalisation: layout, encode/decode round trip, dtypes, missingness, save/load."""

import numpy as np
import pandas as pd
import pytest

from jaxsyn.data.tabular import Span, TableTransformer, TransformerConfig, infer_schema
from jaxsyn.data.tabular import mixture as M
from jaxsyn.errors import DataError


def test_layout_is_contiguous_and_names_the_discrete_spans(fitted, encoded):
    spans, layout = fitted.layout.spans, fitted.layout
    assert spans[0].start == 0 and layout.dim == encoded.shape[1]
    assert all(a.start + a.width == b.start for a, b in zip(spans, spans[1:], strict=False))
    assert all(isinstance(s, Span) and s.kind in ("scalar", "onehot") for s in spans)
    discrete = [c for c in fitted.schema.columns if c.discrete]
    assert [s.width for s in layout.cond_spans] == [len(c.categories) for c in discrete]
    assert all(s.kind == "onehot" for s in layout.cond_spans) and len(layout.discrete) == 16
    # systolic_bp (the last column): scalar, its modes, then the [present, missing] indicator
    scalar, modes, missing = spans[-3:]
    assert scalar.kind == "scalar" and missing.width == 2 and 1 <= modes.width <= 10
    assert modes.width == fitted.valid[-1].sum()
    hash(layout)  # static: usable as a jit/config argument


def test_encoded_rows_are_well_formed(fitted, encoded):
    assert encoded.dtype == np.float32
    for s in fitted.layout.spans:
        block = encoded[:, s.start : s.start + s.width]
        if s.kind == "onehot":
            assert np.all(block.sum(1) == 1) and set(np.unique(block)) <= {0.0, 1.0}
        else:
            assert np.abs(block).max() <= 0.99


def clipped_rows(fitted, encoded, name):
    """Rows whose normalised value hit the +-0.99 clip (over 4 sigma from the sampled mode)."""
    numeric = [c.name for c in fitted.schema.columns if not c.discrete]
    return np.abs(encoded[:, fitted._index.scalar[numeric.index(name)]]) >= 0.99


def test_round_trip_restores_values_dtypes_and_missingness(fitted, encoded, phantom):
    back = fitted.inverse_transform(encoded, ids=True, progress=False)
    assert list(back.columns) == list(phantom.columns)
    assert (back.dtypes == phantom.dtypes).all()
    assert back["patient_id"].iloc[0] == "syn_000000"
    for col in fitted.schema.columns:
        a, b = phantom[col.name], back[col.name]
        np.testing.assert_array_equal(a.isna().to_numpy(), b.isna().to_numpy(), col.name)
        if col.discrete:
            assert (a == b).all(), col.name
            continue
        # Exact after rounding, except values over 4 sigma from their sampled mode, which the
        # reference's clip at +-0.99 pulls in (tails beyond the last mode; the rare far mode
        # the +1e-6 responsibility floor picks).
        clipped = clipped_rows(fitted, encoded, col.name)
        present = a.notna().to_numpy()
        a, b = a.to_numpy(float, na_value=np.nan), b.to_numpy(float, na_value=np.nan)
        keep = present & ~clipped
        np.testing.assert_array_equal(a[keep], b[keep], col.name)
        assert clipped[present].mean() < 0.01, col.name


def test_transform_is_deterministic_from_its_key(fitted, encoded, phantom):
    np.testing.assert_array_equal(fitted.transform(phantom, 0, progress=False), encoded)
    assert not np.array_equal(fitted.transform(phantom, 1, progress=False), encoded)
    refit = TableTransformer.fit(phantom, progress=False)
    for a, b in zip(refit.mixture, fitted.mixture, strict=True):
        np.testing.assert_array_equal(a, b)


def test_save_load_round_trip(fitted, encoded, phantom, tmp_path):
    loaded = TableTransformer.load(fitted.save(tmp_path / "transformer.json"))
    assert loaded.layout == fitted.layout and loaded.schema == fitted.schema
    np.testing.assert_array_equal(loaded.transform(phantom, 0, progress=False), encoded)
    pd.testing.assert_frame_equal(
        loaded.inverse_transform(encoded, progress=False),
        fitted.inverse_transform(encoded, progress=False),
    )


def test_inverse_of_arbitrary_outputs_respects_the_schema(fitted):
    """Generator outputs (any reals) decode to in-bounds, rounded, known values."""
    noise = np.random.default_rng(0).normal(size=(500, fitted.layout.dim)) * 3
    out = fitted.inverse_transform(noise, progress=False)
    for col in fitted.schema.columns:
        values = out[col.name].dropna()
        if col.discrete:
            assert set(values) <= set(col.categories), col.name
        else:
            assert values.between(col.min, col.max).all(), col.name
            scaled = values.to_numpy(float) * 10**col.decimals
            np.testing.assert_allclose(scaled, np.round(scaled), atol=1e-6, err_msg=col.name)
    assert out["pack_years"].isna().any() and out["systolic_bp"].isna().any()
    assert not out["age"].isna().any()


def test_mixed_dtypes_and_chunked_rows():
    rng = np.random.default_rng(0)
    n = 700
    t = pd.DataFrame(
        {
            "visit": pd.Timestamp("2020-01-01")
            + pd.to_timedelta(rng.integers(0, 10**8, n), unit="s"),
            "flag": rng.random(n) < 0.3,
            "grade": pd.Categorical(rng.choice(["low", "high"], n), categories=["low", "high"]),
            "note": pd.Series(rng.choice(["a", "b", None], n), dtype="str"),
            "dose": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(0, 500, n)), "Int64"),
            "level": np.where(rng.random(n) < 0.05, np.nan, rng.gamma(2.0, 3.0, n)),
        }
    )
    config = TransformerConfig(chunk_rows=256)  # three chunks in each direction
    tr = TableTransformer.fit(t, config=config, progress=False)
    back = tr.inverse_transform(tr.transform(t, 5, progress=False), progress=False)
    assert (back.dtypes == t.dtypes).all(), back.dtypes
    for name in t.columns:
        np.testing.assert_array_equal(t[name].isna(), back[name].isna(), name)
    for name in ("flag", "grade", "note"):
        assert (t[name].dropna() == back[name].dropna()).all(), name
    # float32 encoding: a date keeps ~1e-7 of the column's spread (here ~10 s of 3 years)
    seconds = (back["visit"] - t["visit"]).dt.total_seconds().abs()
    assert np.quantile(seconds, 0.99) <= 10, seconds.describe()


def test_bad_inputs_raise_clear_errors(fitted, phantom):
    odd = phantom.head(10).copy()
    odd.loc[3, "site"] = "S99"
    with pytest.raises(DataError, match="'site' holds 'S99'.*never saw"):
        fitted.transform(odd, 0)
    with pytest.raises(DataError, match=r"no column\(s\) \['age'\]"):
        fitted.transform(phantom.drop(columns="age"), 0)
    gap = phantom.head(10).astype({"age": float})
    gap.loc[2, "age"] = np.nan
    with pytest.raises(DataError, match="'age' has 1 missing values; expected none"):
        fitted.transform(gap, 0)
    with pytest.raises(DataError, match=r"expected \[N, 111\]|expected \[N, \d+\]"):
        fitted.inverse_transform(np.zeros((3, 5)))


def test_schema_is_inferred_when_not_given(phantom, fitted):
    assert fitted.schema == infer_schema(phantom)


def test_modes_are_sampled_from_the_posterior_responsibilities():
    rng = np.random.default_rng(0)
    k = rng.choice(2, 4000, p=[0.6, 0.4])
    train = pd.DataFrame({"x": rng.normal(np.array([-2.0, 2.0])[k], 1.0)})
    tr = TableTransformer.fit(train, progress=False)
    between = pd.DataFrame({"x": np.full(20_000, 0.3)})  # where the two modes overlap
    enc = tr.transform(between, 1, progress=False)
    scalar, modes = tr.layout.spans[:2]
    freq = enc[:, modes.start : modes.start + modes.width].mean(0)
    z = (0.3 - tr.shift) / tr.scale
    mix = M.Mixture(*(np.asarray(a, np.float32) for a in tr.mixture))
    resp = np.asarray(M.responsibilities(np.full((1, 1), z, np.float32), mix))[0, :, 0]
    expected = (resp + 1e-6)[tr.valid[0]] / (resp + 1e-6)[tr.valid[0]].sum()
    np.testing.assert_allclose(freq, expected, atol=0.012)  # ~3.5 sigma at 20k draws
    assert (freq > 0.05).sum() >= 2  # really sampled, not the argmax
