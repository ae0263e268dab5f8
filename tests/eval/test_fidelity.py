"""KID, MMD and PRDC (`jaxsyn.eval.fidelity`) against independent references: O(n^2) loops
written from the papers' formulas. FID's tests are in test_fid.py.
"""

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist, pdist

from jaxsyn.errors import DataError
from jaxsyn.eval import fid, fidelity
from tests.eval.test_fid import gaussian_features

# ------------------------------------------------------------------------------------------------
# KID and MMD


def mmd2_loop(x, y, k):
    """Unbiased MMD^2 written term by term (Gretton et al. 2012, eq. 3)."""
    n, m = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return kxx + kyy - 2 * kxy


def cubic(a, b):
    return (a @ b / len(a) + 1.0) ** 3


@pytest.mark.parametrize("subset_size, m", [(5, 5), (1000, 7)])  # 1000 shrinks to min(N, M) = 7
def test_kid_matches_loop_over_the_documented_subsets(subset_size, m):
    x = gaussian_features(8, 9, 3)
    y = gaussian_features(9, 7, 3, shift=0.5)
    mean, std = fidelity.kid(x, y, subsets=4, subset_size=subset_size, seed=3)
    rng = np.random.default_rng(3)
    values = []
    for _ in range(4):
        xs = x[rng.choice(9, m, replace=False)]
        values.append(mmd2_loop(xs, y[rng.choice(7, m, replace=False)], cubic))
    assert mean == pytest.approx(np.mean(values), rel=1e-12)
    assert std == pytest.approx(np.std(values), rel=1e-9)


def rbf(bandwidth):
    return lambda a, b: math.exp(-np.sum((a - b) ** 2) / (2 * bandwidth**2))


def test_mmd_matches_loop_and_median_heuristic(monkeypatch):
    x = gaussian_features(10, 8, 3)
    y = gaussian_features(11, 6, 3, shift=0.7)
    assert fidelity.mmd(x, y, bandwidth=0.8) == pytest.approx(mmd2_loop(x, y, rbf(0.8)))
    median = np.median(pdist(np.concatenate([x, y])))
    assert fidelity.median_heuristic(x, y) == pytest.approx(median, rel=1e-12)
    expected = mmd2_loop(x, y, rbf(median))
    assert fidelity.mmd(x, y) == pytest.approx(expected, rel=1e-12)
    monkeypatch.setattr(fidelity, "BLOCK_ELEMENTS", 5)  # one row per block: same numbers
    assert fidelity.mmd(x, y) == pytest.approx(expected, rel=1e-12)
    monkeypatch.setattr(fidelity, "MEDIAN_POINTS", 10)  # subsampled pooled set, from the seed
    z = np.concatenate([x, y])[np.sort(np.random.default_rng(4).choice(14, 10, replace=False))]
    assert fidelity.median_heuristic(x, y, seed=4) == pytest.approx(np.median(pdist(z)))


@pytest.mark.parametrize("metric", ["kid", "mmd"])
def test_estimators_are_unbiased(metric):
    """Same distribution: the mean over independent draws is 0 within 3 standard errors, while the
    biased (V-statistic) estimate on the same draws is not, so the check has power."""
    n, f, reps = 16, 4, 300

    def kernel(a, b):  # the kernel matrix [len(a), len(b)]
        if metric == "kid":
            return (a @ b.T / f + 1.0) ** 3
        return np.exp(-cdist(a, b, "sqeuclidean") / (2 * 1.5**2))

    estimates, biased = [], []
    for r in range(reps):
        x = gaussian_features(2 * r, n, f)
        y = gaussian_features(2 * r + 1, n, f)
        if metric == "kid":
            estimates.append(fidelity.kid(x, y, subsets=1, subset_size=n, seed=r)[0])
        else:
            estimates.append(fidelity.mmd(x, y, bandwidth=1.5))
        # V-statistic: the diagonal k(x_i, x_i) terms included, every sum divided by n^2
        biased.append(kernel(x, x).mean() + kernel(y, y).mean() - 2 * kernel(x, y).mean())
    sem = np.std(estimates, ddof=1) / math.sqrt(reps)
    assert abs(np.mean(estimates)) < 3 * sem
    assert np.mean(biased) > 3 * np.std(biased, ddof=1) / math.sqrt(reps)


def test_kid_and_mmd_grow_with_a_shift():
    x = gaussian_features(12, 200, 8)
    same, shifted = gaussian_features(13, 200, 8), gaussian_features(14, 200, 8, shift=0.5)
    kid_same = fidelity.kid(x, same, subsets=20, subset_size=100)
    kid_shift = fidelity.kid(x, shifted, subsets=20, subset_size=100)
    assert kid_shift[0] > 5 * abs(kid_same[0])
    assert fidelity.mmd(x, shifted) > 10 * abs(fidelity.mmd(x, same))


# ------------------------------------------------------------------------------------------------
# PRDC


def prdc_loop(real, fake, k):
    """Naeem et al. 2020, eqs. 1-4, with full distance matrices (scipy cdist)."""
    d_rr, d_ff, d_rf = cdist(real, real), cdist(fake, fake), cdist(real, fake)
    r_real = np.sort(d_rr, axis=1)[:, k]  # column 0 is the point itself
    r_fake = np.sort(d_ff, axis=1)[:, k]
    n, m = len(real), len(fake)
    precision = np.mean([any(d_rf[i, j] < r_real[i] for i in range(n)) for j in range(m)])
    recall = np.mean([any(d_rf[i, j] < r_fake[j] for j in range(m)) for i in range(n)])
    density = np.mean([sum(d_rf[i, j] < r_real[i] for i in range(n)) for j in range(m)]) / k
    coverage = np.mean([d_rf[i].min() < r_real[i] for i in range(n)])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


def test_prdc_hand_example():
    """1-D, k = 1. Real radii: 0, 1, 2, 3 -> 1 and 10 -> 7; fake radii all 1.
    precision: 0.5 (in the balls of 0 and 1) and 1.5 (of 1 and 2) are inside, 40 and 41 are not
    -> 2/4; density: (2 + 2 + 0 + 0) / 4 / k = 1; recall: 0, 1, 2 lie within 1 of a fake point,
    3 and 10 do not -> 3/5; coverage: the nearest fake point of 0, 1, 2 is 0.5 away, of 3 1.5 and
    of 10 30, more than their radii 1 and 7 -> 3/5."""
    real = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    fake = np.array([[0.5], [1.5], [40.0], [41.0]])
    expected = {"precision": 0.5, "recall": 0.6, "density": 1.0, "coverage": 0.6}
    assert fidelity.prdc(real, fake, k=1) == pytest.approx(expected)
    assert prdc_loop(real, fake, 1) == pytest.approx(expected)


def test_prdc_matches_loop_in_small_blocks(monkeypatch):
    real = gaussian_features(15, 40, 5)
    fake = gaussian_features(16, 30, 5, shift=0.4, scale=0.7)
    expected = prdc_loop(real, fake, 3)
    assert 0 < expected["precision"] < 1 and 0 < expected["coverage"] < 1  # not a trivial case
    assert fidelity.prdc(real, fake, k=3) == pytest.approx(expected, rel=1e-12)
    monkeypatch.setattr(fidelity, "BLOCK_ELEMENTS", 50)  # 1 row per block
    assert fidelity.prdc(real, fake, k=3) == pytest.approx(expected, rel=1e-12)


def test_prdc_of_identical_sets():
    """Y_j = X_j: each lies in its own ball and in the balls of the X_i that have it among their
    k - 1 nearest neighbours (the k-th lies on the sphere of the open ball): density n k / n k."""
    x = gaussian_features(17, 60, 6, shift=100.0)
    got = fidelity.prdc(x, x.copy(), k=5)
    assert got == {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}
    assert prdc_loop(x, x, 5) == got


# ------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: fidelity.kid(np.ones((4, 2)), np.ones((4, 2)), subset_size=1), "integer >= 2"),
        (lambda: fidelity.mmd(np.ones((4, 2)), np.ones((4, 2))), "median pairwise distance is 0"),
        (lambda: fidelity.mmd(np.ones((1, 2)), np.ones((4, 2)), bandwidth=1.0), "at least 2"),
        (lambda: fidelity.prdc(np.ones((5, 2)), np.ones((9, 2)), k=5), "more than k = 5"),
        (lambda: fidelity.prdc(np.full((9, 2), np.nan), np.ones((9, 2))), "NaN or infinite"),
    ],
)
def test_errors_name_what_was_expected(call, message):
    with pytest.raises(DataError, match=message):
        call()


# ------------------------------------------------------------------------------------------------
# FID's names


def test_fid_names_are_re_exported():
    """`from jaxsyn.eval.fidelity import fid` (experiments, the README) still works."""
    names = ["FID_SPLITS", "FeatureStats", "feature_stats", "fid", "fid_halves", "fid_of_stats",
             "fid_ratio", "fid_real_real", "frechet_distance"]  # fmt: skip
    for name in names:
        assert getattr(fidelity, name) is getattr(fid, name), name
