"""Training-by-sampling: log-frequency categories, real rows that match, exact condition vectors."""

import jax
import numpy as np
import pandas as pd
import pytest

from jaxsyn.data.tabular import ConditionSampler, TableTransformer, condition_vector
from jaxsyn.errors import ConfigError, DataError

N_DRAWS = 100_000


@pytest.fixture(scope="module")
def sampler(fitted, encoded):
    return ConditionSampler.from_data(fitted.layout, encoded)


@pytest.fixture(scope="module")
def batch(sampler):
    return jax.tree.map(np.asarray, sampler.sample_condvec(N_DRAWS, 0))


def counts_of(fitted, encoded):
    return [
        np.bincount(encoded[:, s.start : s.start + s.width].argmax(1), minlength=s.width)
        for s in fitted.layout.cond_spans
    ]


def test_columns_uniform_and_categories_log_frequency(fitted, encoded, batch):
    counts = counts_of(fitted, encoded)
    per_column = np.bincount(batch.column, minlength=len(counts))
    expected = N_DRAWS / len(counts)
    assert np.abs(per_column - expected).max() < 5 * np.sqrt(expected)  # 5 sigma
    for j, n_jc in enumerate(counts):
        p = np.log1p(n_jc) / np.log1p(n_jc).sum()
        seen = np.bincount(batch.category[batch.column == j], minlength=len(n_jc))
        chi2 = (((seen - seen.sum() * p) ** 2) / (seen.sum() * p)).sum()
        assert chi2 < 30, (j, seen, p)  # chi-square, <= 5 dof: p-value ~1e-5


def test_sampled_rows_have_the_sampled_category(fitted, encoded, batch):
    for j, s in enumerate(fitted.layout.cond_spans):
        rows = batch.rows[batch.column == j]
        got = encoded[rows, s.start : s.start + s.width].argmax(1)
        np.testing.assert_array_equal(got, batch.category[batch.column == j])
    # uniform among matching rows: most rows of the data get drawn at some point
    assert len(np.unique(batch.rows)) > 0.8 * len(encoded)


def test_cond_and_mask_are_the_chosen_one_hots(fitted, batch):
    offsets = np.cumsum([0] + [s.width for s in fitted.layout.cond_spans])
    assert batch.cond.shape == (N_DRAWS, fitted.layout.cond_dim)
    np.testing.assert_array_equal(batch.cond.sum(1), 1)
    np.testing.assert_array_equal(batch.cond.argmax(1), offsets[batch.column] + batch.category)
    np.testing.assert_array_equal(batch.mask.argmax(1), batch.column)
    np.testing.assert_array_equal(batch.mask.sum(1), 1)


def test_sampling_is_deterministic_from_the_seed(sampler, batch):
    again = sampler.sample_condvec(N_DRAWS, 0)
    for a, b in zip(again, batch, strict=True):
        np.testing.assert_array_equal(a, b)
    other = sampler.sample_condvec(N_DRAWS, 1)
    assert (np.asarray(other.rows) != batch.rows).mean() > 0.9


def test_empirical_draw_follows_the_data(fitted, encoded, sampler):
    b = sampler.sample_condvec(N_DRAWS, 1, empirical=True)
    d = len(fitted.layout.cond_spans)
    freq = np.asarray(b.cond).sum(0) / N_DRAWS
    empirical = np.concatenate(counts_of(fitted, encoded)) / len(encoded) / d
    np.testing.assert_allclose(freq, empirical, atol=0.005)


def test_several_columns_named_with_the_rows_values(fitted, encoded, sampler):
    b = jax.tree.map(np.asarray, sampler.sample_condvec(N_DRAWS, 2, extra_p=0.5))
    d = len(fitted.layout.cond_spans)
    named = b.mask.sum(1)
    assert named.min() == 1 and named.max() == d
    assert abs((named > 1).mean() - 0.5) < 0.01
    # more columns: k ~ U{1..d-1}, so each count of extra columns is about equally likely
    extra = np.bincount(named[named > 1].astype(int) - 1, minlength=d)[1:]
    assert np.abs(extra / extra.sum() - 1 / (d - 1)).max() < 0.01
    offsets = np.cumsum([0] + [s.width for s in fitted.layout.cond_spans])
    for j, s in enumerate(fitted.layout.cond_spans):
        row_code = encoded[b.rows, s.start : s.start + s.width].argmax(1)
        cond_j = b.cond[:, offsets[j] : offsets[j + 1]]
        on = b.mask[:, j] == 1
        np.testing.assert_array_equal(cond_j[on].argmax(1), row_code[on])  # the row's value
        np.testing.assert_array_equal(cond_j[on].sum(1), 1)
        assert cond_j[~on].sum() == 0
    assert (b.mask[np.arange(N_DRAWS), b.column] == 1).all()


def test_condition_vector_for_given_values(fitted):
    offsets = dict(zip([c.name for c in fitted.schema.columns if c.discrete], np.cumsum(
        [0] + [s.width for s in fitted.layout.cond_spans]), strict=False))  # fmt: skip
    vec = condition_vector(fitted, {"site": "S02", "bmi_class": 2, "ecog": "1"})
    assert vec.shape == (fitted.layout.cond_dim,) and vec.sum() == 3
    expected = [offsets["bmi_class"] + 2, offsets["site"] + 1, offsets["ecog"] + 1]
    assert set(np.flatnonzero(vec)) == set(expected)
    tiled = condition_vector(fitted, {"treatment_arm": "placebo"}, n=4)
    assert tiled.shape == (4, fitted.layout.cond_dim)
    assert (tiled.argmax(1) == offsets["treatment_arm"] + 2).all()


@pytest.mark.parametrize(
    "conditions, words",
    [
        ({"hair": "red"}, ["hair", "not a column", "site"]),
        ({"age": 60}, ["age", "numeric column"]),
        ({"site": "S09"}, ["site", "'S09'", "'S01'"]),
        ({"site": None}, ["site", "None", "expected one of"]),
    ],
)
def test_condition_vector_errors(fitted, conditions, words):
    with pytest.raises(ConfigError) as e:
        condition_vector(fitted, conditions)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_missing_slot_and_no_discrete_columns():
    t = pd.DataFrame({"g": ["a", None, "b", "a"] * 5, "x": np.arange(20.0)})
    tr = TableTransformer.fit(t, progress=False)
    assert tr.layout.cond_dim == 3  # a, b and missing
    np.testing.assert_array_equal(condition_vector(tr, {"g": None}), [0, 0, 1])
    numeric = TableTransformer.fit(t[["x"]], progress=False)
    s = ConditionSampler.from_data(numeric.layout, numeric.transform(t[["x"]], 0))
    b = s.sample_condvec(50, 0)
    assert b.cond.shape == (50, 0) and b.rows.min() >= 0 and b.rows.max() < 20
    assert len(np.unique(b.rows)) > 10


def test_from_data_checks_the_width(fitted):
    with pytest.raises(DataError, match="expected \\[N, "):
        ConditionSampler.from_data(fitted.layout, np.zeros((4, 3)))
