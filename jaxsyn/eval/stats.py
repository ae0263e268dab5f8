"""Significance tests and intervals for utility results, thin documented wrappers over scipy.stats.

One protocol: inputs are 1-D samples (lists or arrays of finite numbers, NaN refused with a
`DataError`); results are frozen dataclasses of plain floats (`dataclasses.asdict` makes them
JSON-ready); randomness comes from a `seed`. Every number is scipy's own.

mann_whitney     Mann-Whitney U test (Mann & Whitney 1947), scipy.stats.mannwhitneyu: two
                 independent samples, e.g. per-seed AUC_real - AUC_syn of two settings. One-sided
                 by default ("greater": a tends to exceed b), as DuMont et al. 2020 (S.5,
                 "Statistical tests for benchmark") compare their extreme settings. U is the
                 statistic of `a`: the number of pairs (a_i, b_j) with a_i > b_j plus half the
                 ties, so U / (len(a) len(b)) is the probability that a draw of a beats one of b.
wilcoxon         Wilcoxon signed-rank test (Wilcoxon 1945), scipy.stats.wilcoxon: paired samples
                 (the same seeds or folds), or one sample against a number (DuMont et al.'s
                 reader-study accuracies against 0.5), on the differences a - b; zero differences
                 are dropped (zero_method "wilcox", scipy's default). Statistic: the sum of the
                 ranks of the positive differences for a one-sided test, min(W+, W-) for a
                 two-sided one (scipy's convention). One-sided "greater" by default, as above.
bootstrap_ci     bootstrap confidence interval, scipy.stats.bootstrap: bias-corrected and
                 accelerated (BCa, Efron 1987), 2000 resamples, 95 % by default, as Sun et al.
                 2021 (pGAN, §6.3) give their AUC intervals.
auc_difference_summary  mean and spread of AUC_real - AUC_syn over seeds (DuMont et al. 2020, Fig. 2:
                 mean and standard deviation over repeated runs).

p-values. Without ties: scipy's own (exact Mann-Whitney up to its size limit, else the normal
approximation with continuity correction; Wilcoxon likewise). With ties: a permutation test,
`scipy.stats.permutation_test`, of the same statistic computed on mid-ranks. scipy's
`method="auto"` is exact only without ties and takes the tie-corrected normal approximation as
soon as two values tie, which at the sizes of a seed study gives p-values below the smallest the
data can reach (3 vs 3 seeds, every a above every b, the three real-trained AUROCs tied at 1.00:
0.032, where no arrangement can give less than 1/C(6, 3) = 0.05; issue 17.4). The permutation
test lists every arrangement (C(N+M, N) splits for Mann-Whitney, 2^n sign flips for Wilcoxon)
while there are at most EXACT_LIMIT of them, so its p-value is the exact one; beyond that it
draws EXACT_LIMIT random arrangements from a fixed seed (p = (k + 1) / (EXACT_LIMIT + 1), never
below that resolution). Why scipy's test rather than the mid-rank enumeration this module had
before (it gave the same exact p-values, and tests/eval/test_stats.py holds both regimes to
scipy's own permutation method): one implementation, scipy's, for the exact and the sampled
regime, and no normal approximation anywhere ties are present, also beyond EXACT_LIMIT, where
the enumeration fell back to it.

min_pvalue: every test also reports the smallest p-value any arrangement of these same values
can reach: the exact null probability of the most extreme one (a holding the N largest values for
"greater"; every difference positive for the Wilcoxon test), counted from the sizes and the ties
(so exact also where the p-value itself is sampled or approximated). With
3 vs 3 seeds the one-sided Mann-Whitney p cannot go below 0.05 and the one-sided Wilcoxon p
below 0.125, whatever the classifiers do: a p equal to its min_pvalue says only that the
samples separate completely, as far as the design can tell.
Seed studies should use at least 5 seeds (min_pvalue 1/252 = 0.004 and 1/32 = 0.031).

BCa intervals need at least BCA_MIN_VALUES values per sample (`bootstrap_ci` refuses fewer): BCa
corrects the percentile interval with a bias term from the share of bootstrap means below the
estimate and an acceleration from n jackknife values. With a handful of values the resamples
take few distinct values (10 distinct multisets of 3 values) and the interval is far too narrow:
a nominal 95 % BCa interval of the mean covered the true mean of normal samples in 70 % of 300
samples of 3 values, 86 % of 5 and 91 % of 10 (measured, scipy 1.17; issue 17.4).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.stats

from jaxsyn.errors import ConfigError, DataError

ALTERNATIVES = ("two-sided", "less", "greater")
# Sun et al. 2021 (pGAN) §6.3: "95 percentile confidence intervals ... bias-corrected and
# accelerated bootstrapping with 2000 resamples".
N_RESAMPLES = 2000
CONFIDENCE = 0.95
METHODS = ("BCa", "percentile", "basic")  # scipy.stats.bootstrap's methods
# Not from a paper: arrangements a permutation test lists (exact p) or, beyond, draws (~0.1 s).
EXACT_LIMIT = 100_000
# Not from a paper: the fewest values per sample for a BCa interval (issue 17.4: not over 3 gaps).
BCA_MIN_VALUES = 10
PERMUTATION_SEED = 0  # the draws of a permutation test beyond EXACT_LIMIT arrangements


@dataclass(frozen=True)
class HypothesisResult:
    """A test's statistic and p-value, with the alternative it tested."""

    test: str  # "mann_whitney" or "wilcoxon"
    statistic: float
    pvalue: float
    alternative: str
    n_a: int
    n_b: int
    min_pvalue: float  # the smallest p these values allow: the most extreme arrangement's
    method: str  # "exact", "asymptotic" (scipy's, no ties) or "permutation" (ties)


@dataclass(frozen=True)
class Interval:
    """A bootstrap confidence interval of `statistic`, with the point estimate on the data."""

    estimate: float
    low: float
    high: float
    standard_error: float
    confidence: float
    method: str
    n_resamples: int


@dataclass(frozen=True)
class DifferenceSummary:
    """Per-seed differences AUC_real - AUC_syn summarised: NaN spread for a single seed."""

    mean: float
    std: float  # sample standard deviation (ddof = 1) over seeds
    sem: float  # std / sqrt(n)
    min: float
    max: float
    n: int


def mann_whitney(a, b, alternative: str = "greater") -> HypothesisResult:
    """Mann-Whitney U test of independent samples `a` [N] and `b` [M]; H1 (default): a > b.

    Without ties scipy.stats.mannwhitneyu (method "auto"); with ties a permutation test of U on
    mid-ranks (module docstring). min_pvalue: the null probability of a holding the N largest
    values ("greater"; the N smallest for "less"; twice the rarer of the two, "two-sided"):
    C(t, k) / C(N + M, N), where t values tie at the edge of that set and k of them are in it.
    """
    a, b = _sample(a, "a"), _sample(b, "b")
    alternative = _alternative(alternative)
    u, p, method = _mann_whitney(a, b, alternative)
    pooled, n = np.sort(np.concatenate([a, b])), len(a)

    def share(chosen, edge):  # of the splits giving `a` the values `chosen`: ties at the edge swap
        ways = math.comb(int(np.sum(pooled == edge)), int(np.sum(chosen == edge)))
        return ways / math.comb(len(pooled), n)

    top, low = share(pooled[-n:], pooled[-n]), share(pooled[:n], pooled[n - 1])
    least = {"greater": top, "less": low, "two-sided": min(1.0, 2 * min(top, low))}[alternative]
    return HypothesisResult("mann_whitney", u, p, alternative, n, len(b), least, method)


def wilcoxon(a, b, alternative: str = "greater") -> HypothesisResult:
    """Wilcoxon signed-rank test of paired samples `a` [N] and `b` [N]; H1 (default): a > b.

    `b` may be a number: the one-sample test of a - b (e.g. accuracies against chance, 0.5).
    Without tied |differences| scipy.stats.wilcoxon; with them a sign-flip permutation test of
    W+ on mid-ranks (module docstring). If every difference is zero there is nothing to rank:
    p-value 1 (scipy 1.17 answers statistic 0 and p 1, and its 0 / 0 warning is silenced here).
    min_pvalue: the null probability of every non-zero difference positive ("greater"; negative
    for "less"; doubled "two-sided"): 1 / 2^n, n the non-zero differences.
    """
    a = _sample(a, "a")
    b = np.full(len(a), float(b)) if np.ndim(b) == 0 else _sample(b, "b")
    if not np.isfinite(b).all():
        raise DataError(f"b: got {b[0]!r}, expected a finite number")
    if len(a) != len(b):
        raise DataError(f"b: got {len(b)} values, expected {len(a)} paired with a")
    alternative = _alternative(alternative)
    d = (a - b)[a != b]  # zero differences are dropped ("wilcox")
    w, p, method = _wilcoxon(d, alternative)
    least = min(1.0, (2.0 if alternative == "two-sided" else 1.0) / 2 ** len(d))
    return HypothesisResult("wilcoxon", w, p, alternative, len(a), len(b), least, method)


def _mann_whitney(a: np.ndarray, b: np.ndarray, alternative: str) -> tuple[float, float, str]:
    """(U of a, p-value, method) of checked samples."""
    pooled = np.concatenate([a, b])
    if len(np.unique(pooled)) == len(pooled):
        res = scipy.stats.mannwhitneyu(a, b, alternative=alternative)
        exact = len(a) <= 8 or len(b) <= 8  # scipy's "auto" switch (scipy 1.11-1.17)
        return float(res.statistic), float(res.pvalue), "exact" if exact else "asymptotic"

    def u_of_first(x, y, axis):  # U on mid-ranks: ties count one half
        ranks = scipy.stats.rankdata(np.concatenate([x, y], axis=axis), axis=axis)
        n = x.shape[axis]
        return np.take(ranks, np.arange(n), axis=axis).sum(axis=axis) - n * (n + 1) / 2

    if min(len(a), len(b)) > 1:
        return _permutation((a, b), u_of_first, "independent", alternative)
    # permutation_test wants two values a side; with one, each of the N + M values is equally
    # likely to be the lone one, and a lone value's U against the rest is its mid-rank - 1
    alone = scipy.stats.rankdata(pooled) - 1.0
    null = alone if len(a) == 1 else len(a) * len(b) - alone
    u = float(u_of_first(a, b, axis=-1))
    greater, less = float(np.mean(null >= u - 1e-9)), float(np.mean(null <= u + 1e-9))
    p = {"greater": greater, "less": less, "two-sided": min(1.0, 2 * min(greater, less))}
    return u, p[alternative], "exact"


def _wilcoxon(d: np.ndarray, alternative: str) -> tuple[float, float, str]:
    """(statistic, p-value, method) of the non-zero differences `d`: scipy's statistic (W+ for a
    one-sided test, min(W+, W-) for a two-sided one) and p-value."""
    if len(d) == 0:
        return 0.0, 1.0, "exact"
    if len(np.unique(np.abs(d))) == len(d):
        res = scipy.stats.wilcoxon(d, alternative=alternative)
        exact = len(d) <= 50  # scipy's "auto" switch without ties and zeros (scipy 1.13-1.17)
        return float(res.statistic), float(res.pvalue), "exact" if exact else "asymptotic"
    ranks = scipy.stats.rankdata(np.abs(d))

    def w_plus(x, axis):  # sign flips keep |d|, so the ranks are fixed
        return np.sum(ranks * (x > 0), axis=axis)

    _, p, method = _permutation((d,), w_plus, "samples", alternative)
    positive = float(ranks[d > 0].sum())
    w = min(positive, ranks.sum() - positive) if alternative == "two-sided" else positive
    return float(w), p, method


def _permutation(data, statistic, permutation_type, alternative) -> tuple[float, float, str]:
    """scipy.stats.permutation_test: every arrangement while there are at most EXACT_LIMIT
    ("exact"), else EXACT_LIMIT seeded draws ("permutation"). Returns (statistic, p, method)."""
    if permutation_type == "independent":
        n, m = len(data[0]), len(data[1])
        count = math.comb(n + m, n)
    else:
        count = 2 ** len(data[0])
    res = scipy.stats.permutation_test(
        data,
        statistic,
        permutation_type=permutation_type,
        alternative=alternative,
        n_resamples=EXACT_LIMIT,
        vectorized=True,
        **_rng(PERMUTATION_SEED, scipy.stats.permutation_test),
    )
    p = min(1.0, float(res.pvalue))
    return float(res.statistic), p, "exact" if count <= EXACT_LIMIT else "permutation"


def bootstrap_ci(
    data,
    statistic: Callable,
    *,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    method: str = "BCa",
    seed: int = 0,
) -> Interval:
    """Two-sided bootstrap confidence interval of `statistic` on `data`, scipy.stats.bootstrap.

    `data` is one sample [N] (statistic(sample)), or a tuple of independent samples
    (statistic(sample_1, sample_2, ...), each resampled on its own). A statistic with an `axis`
    argument (np.mean, np.median, ...) is evaluated on all resamples at once. The resamples come
    from `np.random.default_rng(seed)`. BCa needs BCA_MIN_VALUES values per sample (module
    docstring); on data with a single distinct value it is undefined: scipy then warns and the
    bounds are NaN.
    """
    samples = data if isinstance(data, tuple) else (data,)
    samples = tuple(_sample(s, f"data[{i}]", min_size=2) for i, s in enumerate(samples))
    if not samples:
        raise DataError("data: got an empty tuple, expected one or more samples")
    if method not in METHODS:
        raise ConfigError(f"method: got {method!r}, expected one of {METHODS}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence: got {confidence!r}, expected a level in (0, 1)")
    if isinstance(n_resamples, bool) or int(n_resamples) != n_resamples or n_resamples < 1:
        raise ConfigError(f"n_resamples: got {n_resamples!r}, expected a positive integer")
    if method == "BCa" and min(len(x) for x in samples) < BCA_MIN_VALUES:
        raise DataError(
            f"data: {min(len(x) for x in samples)} values, expected at least {BCA_MIN_VALUES} for "
            "a BCa interval (its bias and acceleration corrections are unstable below that)"
        )
    res = scipy.stats.bootstrap(
        samples,
        statistic,
        n_resamples=int(n_resamples),
        confidence_level=confidence,
        method=method,
        **_rng(seed, scipy.stats.bootstrap),
    )
    ci = res.confidence_interval
    return Interval(
        float(statistic(*samples)),
        float(ci.low),
        float(ci.high),
        float(res.standard_error),
        float(confidence),
        method,
        int(n_resamples),
    )


def auc_difference_summary(auc_real, auc_syn) -> DifferenceSummary:
    """Mean and spread of AUC_real - AUC_syn over seeds; `auc_real[i]` pairs with `auc_syn[i]`."""
    real, syn = _sample(auc_real, "auc_real"), _sample(auc_syn, "auc_syn")
    if len(real) != len(syn):
        raise DataError(f"auc_syn: got {len(syn)} values, expected {len(real)} (one per seed)")
    d = real - syn
    std = float(d.std(ddof=1)) if len(d) > 1 else math.nan
    return DifferenceSummary(
        float(d.mean()), std, std / math.sqrt(len(d)), float(d.min()), float(d.max()), len(d)
    )


def _sample(x, name: str, min_size: int = 1) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise DataError(f"{name}: got shape {a.shape}, expected a 1-D sample")
    if len(a) < min_size:
        raise DataError(f"{name}: got {len(a)} values, expected at least {min_size}")
    if not np.isfinite(a).all():
        raise DataError(f"{name}: holds NaN or infinite values, expected finite numbers")
    return a


def _alternative(alternative: str) -> str:
    if alternative not in ALTERNATIVES:
        raise ConfigError(f"alternative: got {alternative!r}, expected one of {ALTERNATIVES}")
    return alternative


def _rng(seed: int, function) -> dict:
    """scipy >= 1.15 takes `rng`; older versions `random_state` (same Generator either way)."""
    key = "rng" if "rng" in inspect.signature(function).parameters else "random_state"
    return {key: np.random.default_rng(seed)}
