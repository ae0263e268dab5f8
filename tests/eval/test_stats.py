"""Statistics wrappers against scipy called directly (no ties), against scipy's permutation tests,
which list every arrangement (ties: the exact p-values the wrappers count themselves), and BCa
coverage of a known mean."""

import dataclasses
import math
import warnings

import numpy as np
import pytest
import scipy.stats

from jaxsyn.errors import ConfigError, DataError
from jaxsyn.eval import stats

# Per-seed AUROCs of a real-trained and a synthetic-trained classifier (made up, realistic).
AUC_REAL = np.array([0.912, 0.905, 0.921, 0.899, 0.915, 0.908, 0.917, 0.903])
AUC_SYN = np.array([0.871, 0.884, 0.869, 0.879, 0.890, 0.866, 0.875, 0.901])
TIED = (np.array([1, 2, 2, 3, 4, 4, 5, 6, 7, 9.0]), np.array([0, 1, 2, 2, 3, 3, 4, 5.0]))


EXACT = scipy.stats.PermutationMethod(n_resamples=10**6)  # scipy lists every arrangement


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_mann_whitney_matches_scipy_without_ties(alternative):
    a, b = AUC_REAL, AUC_SYN
    got = stats.mann_whitney(a, b, alternative=alternative)
    ref = scipy.stats.mannwhitneyu(a, b, alternative=alternative)
    assert (got.statistic, got.pvalue) == (ref.statistic, ref.pvalue)
    assert (got.alternative, got.n_a, got.n_b) == (alternative, len(a), len(b))


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
@pytest.mark.parametrize(
    "a, b",
    [TIED, ([1, 1, 2], [0, 0, 0]), ([0.8, 0.8, 0.9, 0.7], [0.7, 0.6, 0.6])],
    ids=["many", "3v3-separated", "tie-across"],
)
def test_mann_whitney_with_ties_is_exact(a, b, alternative):
    a, b = np.asarray(a, float), np.asarray(b, float)
    got = stats.mann_whitney(a, b, alternative=alternative)
    ref = scipy.stats.mannwhitneyu(a, b, alternative=alternative, method=EXACT)  # ties included
    assert got.statistic == ref.statistic
    assert got.pvalue == pytest.approx(ref.pvalue, rel=1e-9)
    # no p-value below the smallest the arrangements allow (scipy's "auto" gives 0.030 for 3v3)
    assert got.pvalue >= 1 / math.comb(len(a) + len(b), len(a)) - 1e-12


def test_mann_whitney_default_is_one_sided_greater_and_u_counts_wins():
    got = stats.mann_whitney(AUC_REAL, AUC_SYN)
    assert got.alternative == "greater"
    assert got.pvalue == scipy.stats.mannwhitneyu(AUC_REAL, AUC_SYN, alternative="greater").pvalue
    wins = sum((x > y) + 0.5 * (x == y) for x in AUC_REAL for y in AUC_SYN)
    assert got.statistic == wins == 63  # of 64 pairs, 0.899 loses to 0.901
    assert got.pvalue < 0.01


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_wilcoxon_matches_scipy_without_ties(alternative):
    got = stats.wilcoxon(AUC_REAL, AUC_SYN, alternative=alternative)
    ref = scipy.stats.wilcoxon(AUC_REAL, AUC_SYN, alternative=alternative)
    assert (got.statistic, got.pvalue) == (ref.statistic, ref.pvalue)


@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_wilcoxon_with_ties_is_exact(alternative):
    # accuracies against chance, in 64ths so the differences are exact: |d| ties at 1, 3 and 5
    # twice each, one zero (dropped)
    d = np.array([2, -3, 5, -1, 1, 8, -5, 3, 0, 6]) / 64
    got = stats.wilcoxon(0.5 + d, 0.5, alternative=alternative)
    nonzero = d[d != 0]
    ref = scipy.stats.wilcoxon(nonzero, alternative=alternative, method=EXACT)
    w_plus = scipy.stats.rankdata(np.abs(nonzero))[nonzero > 0].sum()
    assert got.statistic == w_plus
    assert got.pvalue == pytest.approx(ref.pvalue, rel=1e-9)
    got = stats.wilcoxon([0.6, 0.6, 0.6], 0.5, alternative=alternative)  # 3 tied wins
    assert got.pvalue >= 0.5**3 - 1e-12


def test_one_seed_each_with_a_tie():
    """One value a side (a single seed), equal: U = 0.5, and no evidence either way."""
    got = stats.mann_whitney([0.79], [0.79])
    assert (got.statistic, got.pvalue) == (0.5, 1.0)
    assert stats.mann_whitney([0.8], [0.7]).pvalue >= 0.5  # 2 arrangements: p >= 1/2


def test_wilcoxon_statistic_is_the_positive_rank_sum_and_zero_differences_are_dropped():
    syn = AUC_SYN.copy()
    syn[0] = AUC_REAL[0]  # a zero difference: dropped before ranking
    d = AUC_REAL - syn
    nonzero = d[d != 0]
    ranks = scipy.stats.rankdata(np.abs(nonzero))
    assert stats.wilcoxon(AUC_REAL, syn).statistic == ranks[nonzero > 0].sum()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's 0 / 0 warning is silenced
        same = stats.wilcoxon(AUC_REAL, AUC_REAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = scipy.stats.wilcoxon(AUC_REAL, AUC_REAL, alternative="greater")
    assert (same.statistic, same.pvalue) == (ref.statistic, ref.pvalue) == (0.0, 1.0)


def test_bootstrap_ci_matches_scipy():
    data = np.random.default_rng(0).exponential(size=60)
    got = stats.bootstrap_ci(data, np.mean, seed=5)
    ref = scipy.stats.bootstrap(
        (data,), np.mean, n_resamples=2000, method="BCa", rng=np.random.default_rng(5)
    )
    assert (got.low, got.high) == tuple(ref.confidence_interval)
    assert got.standard_error == ref.standard_error
    assert got.estimate == np.mean(data)
    assert (got.confidence, got.method, got.n_resamples) == (0.95, "BCa", 2000)
    assert got.low < got.estimate < got.high
    # two independent samples: the difference of means, each resampled on its own
    other = np.random.default_rng(1).exponential(scale=1.5, size=40)

    def diff(a, b, axis=-1):
        return a.mean(axis=axis) - b.mean(axis=axis)

    got = stats.bootstrap_ci((data, other), diff, n_resamples=500, method="percentile", seed=2)
    ref = scipy.stats.bootstrap(
        (data, other), diff, n_resamples=500, method="percentile", rng=np.random.default_rng(2)
    )
    assert (got.low, got.high) == tuple(ref.confidence_interval)
    assert got.estimate == pytest.approx(data.mean() - other.mean())


def test_bca_interval_covers_the_true_mean():
    """Exponential(1) samples of 100 (skewed, true mean 1): the 95 % BCa interval covers it in
    about 95 % of 200 independent samples (binomial sd 1.5 %; here 94.5 %)."""
    rng = np.random.default_rng(11)
    covered = 0
    for trial in range(200):
        ci = stats.bootstrap_ci(rng.exponential(size=100), np.mean, seed=trial)
        covered += ci.low <= 1.0 <= ci.high
    assert 0.90 <= covered / 200 <= 0.98


def test_auc_difference_summary():
    got = stats.auc_difference_summary(AUC_REAL, AUC_SYN)
    d = AUC_REAL - AUC_SYN
    assert got.mean == pytest.approx(d.mean(), abs=1e-15)
    assert got.std == pytest.approx(np.std(d, ddof=1), rel=1e-12)
    assert got.sem == pytest.approx(scipy.stats.sem(d), rel=1e-12)
    assert (got.min, got.max, got.n) == (d.min(), d.max(), 8)
    assert set(dataclasses.asdict(got)) == {"mean", "std", "sem", "min", "max", "n"}
    one = stats.auc_difference_summary([0.9], [0.8])
    assert one.mean == pytest.approx(0.1) and math.isnan(one.std)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: stats.mann_whitney([[1, 2]], [1, 2]), DataError, r"a: got shape \(1, 2\)"),
        (lambda: stats.mann_whitney([1, 2], []), DataError, "b: got 0 values"),
        (lambda: stats.mann_whitney([1, np.nan], [1.0]), DataError, "NaN or infinite"),
        (lambda: stats.mann_whitney([1, 2], [3, 4], "bigger"), ConfigError, "expected one of"),
        (lambda: stats.wilcoxon([1, 2, 3], [1, 2]), DataError, "expected 3 paired with a"),
        (lambda: stats.bootstrap_ci([1.0], np.mean), DataError, r"data\[0\]: got 1 values"),
        (lambda: stats.bootstrap_ci([1, 2.0], np.mean, method="bca"), ConfigError, "method"),
        (lambda: stats.bootstrap_ci([1, 2.0], np.mean, confidence=95), ConfigError, "(0, 1)"),
        (lambda: stats.auc_difference_summary([0.9, 0.8], [0.7]), DataError, "one per seed"),
    ],
)
def test_errors_name_what_was_expected(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_min_pvalue_is_the_most_extreme_arrangements_p():
    """Issue 17.4: beside each p, the smallest p these values allow, by hand: 1 / C(N + M, N)
    arrangements (doubled two-sided), 1 / 2^n sign patterns; a tie across the samples raises it."""
    three = stats.mann_whitney([0.90, 0.91, 0.92], [0.5, 0.6, 0.7])
    assert three.pvalue == pytest.approx(0.05) and three.min_pvalue == pytest.approx(0.05)
    assert stats.mann_whitney(AUC_REAL[:5], AUC_SYN[:5]).min_pvalue == pytest.approx(1 / 252)
    two_sided = stats.mann_whitney(AUC_REAL[:5], AUC_SYN[:5], "two-sided")
    assert two_sided.min_pvalue == pytest.approx(2 / 252)
    assert stats.mann_whitney(AUC_SYN[:5], AUC_REAL[:5], "less").min_pvalue == pytest.approx(
        1 / 252
    )
    assert stats.wilcoxon(AUC_REAL[:3], AUC_SYN[:3]).min_pvalue == pytest.approx(1 / 8)
    assert stats.wilcoxon(AUC_REAL[:5], AUC_SYN[:5]).min_pvalue == pytest.approx(1 / 32)
    assert stats.wilcoxon(AUC_SYN[:5], AUC_REAL[:5], "less").min_pvalue == pytest.approx(1 / 32)
    # 0.7 in both samples: at best a holds 0.9, 0.8, 0.8 and either 0.7, 2 of C(7, 4) = 35 splits
    tied = stats.mann_whitney([0.8, 0.8, 0.9, 0.7], [0.7, 0.6, 0.6])
    assert tied.min_pvalue == pytest.approx(2 / 35) and tied.pvalue >= tied.min_pvalue
    assert stats.wilcoxon([0.6, 0.6, 0.6], 0.5).min_pvalue == pytest.approx(1 / 8)
    assert stats.mann_whitney([0.79], [0.79]).min_pvalue == 1.0


def test_acgan_three_vs_three_with_tied_real_aurocs():
    """The AC-GAN vertebra result (issue 17.4): real-trained AUROCs all 1.00 vs three synthetic
    ones. scipy's default takes the tie-corrected normal approximation, 0.032, below the 0.05
    no arrangement of 3 vs 3 can beat; the permutation test gives 0.05, equal to its minimum."""
    real, syn = [1.0, 1.0, 1.0], [0.47, 0.53, 0.68]
    auto = scipy.stats.mannwhitneyu(real, syn, alternative="greater").pvalue
    assert auto == pytest.approx(0.0318, abs=1e-4)
    got = stats.mann_whitney(real, syn)
    assert got.pvalue == pytest.approx(0.05) and got.min_pvalue == pytest.approx(0.05)
    assert got.method == "exact" and got.statistic == 9.0


def test_ties_beyond_the_exact_limit_take_a_seeded_permutation_test():
    rng = np.random.default_rng(3)  # rounded: ties; C(24, 12) = 2.7e6 > EXACT_LIMIT splits
    a, b = np.round(rng.normal(0.6, 0.1, 12), 1), np.round(rng.normal(0.5, 0.1, 12), 1)
    got = stats.mann_whitney(a, b)
    assert got.method == "permutation" and got == stats.mann_whitney(a, b)  # seeded draws
    assert got.statistic == scipy.stats.mannwhitneyu(a, b).statistic
    sampled = scipy.stats.PermutationMethod(n_resamples=stats.EXACT_LIMIT)
    ref = scipy.stats.mannwhitneyu(a, b, alternative="greater", method=sampled)
    assert got.pvalue == pytest.approx(ref.pvalue, abs=0.01)  # two samples of 1e5 draws
    assert got.pvalue >= 1 / (stats.EXACT_LIMIT + 1)
    assert stats.mann_whitney(a[:4], b[:4]).method == "exact"  # ties, 70 splits: all listed


def test_bca_needs_ten_values():
    """Issue 17.4: no BCa interval over fewer than BCA_MIN_VALUES values (module docstring)."""
    with pytest.raises(DataError, match="expected at least 10 for a BCa interval"):
        stats.bootstrap_ci(np.arange(9.0), np.mean)
    assert stats.bootstrap_ci(np.arange(9.0), np.mean, method="percentile").low < 4.0
    assert stats.bootstrap_ci(np.arange(10.0), np.mean).method == "BCa"
