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

p-values: for small samples the exact null distribution, ties included; otherwise scipy's normal
approximation (Mann-Whitney with continuity correction). scipy's `method="auto"` is exact only
without ties and takes the normal approximation as soon as two values tie, which at the sizes of a
seed study gives p-values below the smallest the data can reach (3 vs 3 seeds, every a above every
b, one tie: 0.030 where no arrangement can give less than 1/C(6, 3) = 0.05). So tied samples with
at most EXACT_LIMIT arrangements (C(N+M, N) for Mann-Whitney, 2^n sign flips for Wilcoxon)
enumerate them all, mid-ranks for the ties, and count how many reach the observed statistic.
"""

from __future__ import annotations

import inspect
import itertools
import math
import warnings
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
EXACT_LIMIT = 100_000  # arrangements enumerated for an exact p-value with ties (~0.1 s)


@dataclass(frozen=True)
class HypothesisResult:
    """A test's statistic and p-value, with the alternative it tested."""

    test: str  # "mann_whitney" or "wilcoxon"
    statistic: float
    pvalue: float
    alternative: str
    n_a: int
    n_b: int


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
    """Mann-Whitney U test of independent samples `a` [N] and `b` [M]; H1 (default): a > b."""
    a, b = _sample(a, "a"), _sample(b, "b")
    alternative = _alternative(alternative)
    tied = len(np.unique(np.concatenate([a, b]))) < len(a) + len(b)
    if tied and math.comb(len(a) + len(b), len(a)) <= EXACT_LIMIT:
        ranks = scipy.stats.rankdata(np.concatenate([a, b]))  # ties share their mean rank
        n = len(a)
        chosen = np.array(list(itertools.combinations(range(len(ranks)), n)))
        null = ranks[chosen].sum(axis=1) - n * (n + 1) / 2  # U of every arrangement
        u = ranks[:n].sum() - n * (n + 1) / 2
        return HypothesisResult(
            "mann_whitney", float(u), _exact_p(u, null, alternative), alternative, n, len(b)
        )
    res = scipy.stats.mannwhitneyu(a, b, alternative=alternative)
    return HypothesisResult(
        "mann_whitney", float(res.statistic), float(res.pvalue), alternative, len(a), len(b)
    )


def wilcoxon(a, b, alternative: str = "greater") -> HypothesisResult:
    """Wilcoxon signed-rank test of paired samples `a` [N] and `b` [N]; H1 (default): a > b.

    `b` may be a number: the one-sample test of a - b (e.g. accuracies against chance, 0.5).
    If every difference is zero there is nothing to rank: scipy (1.17) answers statistic 0 and
    p-value 1, no evidence of a difference, and its 0 / 0 warning is silenced here.
    """
    a = _sample(a, "a")
    b = np.full(len(a), float(b)) if np.ndim(b) == 0 else _sample(b, "b")
    if not np.isfinite(b).all():
        raise DataError(f"b: got {b[0]!r}, expected a finite number")
    if len(a) != len(b):
        raise DataError(f"b: got {len(b)} values, expected {len(a)} paired with a")
    alternative = _alternative(alternative)
    d = (a - b)[a != b]  # zero differences are dropped ("wilcox")
    if len(d) and len(np.unique(np.abs(d))) < len(d) and 2 ** len(d) <= EXACT_LIMIT:
        ranks = scipy.stats.rankdata(np.abs(d))
        signs = np.array(list(itertools.product((0, 1), repeat=len(d))))
        null = signs @ ranks  # W+ of every sign pattern
        w_plus = ranks[d > 0].sum()
        w = min(w_plus, ranks.sum() - w_plus) if alternative == "two-sided" else w_plus
        p = _exact_p(w_plus, null, alternative)
        return HypothesisResult("wilcoxon", float(w), p, alternative, len(a), len(b))
    with warnings.catch_warnings():
        if np.all(a == b):  # scipy divides 0 by 0 and warns
            warnings.simplefilter("ignore", RuntimeWarning)
        res = scipy.stats.wilcoxon(a, b, alternative=alternative)
    return HypothesisResult(
        "wilcoxon", float(res.statistic), float(res.pvalue), alternative, len(a), len(b)
    )


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
    from `np.random.default_rng(seed)`. BCa on data with a single distinct value is undefined:
    scipy then warns and the bounds are NaN.
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
    res = scipy.stats.bootstrap(
        samples,
        statistic,
        n_resamples=int(n_resamples),
        confidence_level=confidence,
        method=method,
        **_rng(seed),
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


def _exact_p(observed: float, null: np.ndarray, alternative: str) -> float:
    """p-value of `observed` among the equally likely statistics `null` of every arrangement; the
    two-sided p doubles the smaller tail (scipy's permutation tests do the same)."""
    slack = 1e-9 * max(1.0, float(np.abs(null).max()))  # sums of mid-ranks: halves, exact
    greater = float(np.mean(null >= observed - slack))
    less = float(np.mean(null <= observed + slack))
    if alternative == "two-sided":
        return min(1.0, 2 * min(greater, less))
    return greater if alternative == "greater" else less


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


def _rng(seed: int) -> dict:
    """scipy >= 1.15 takes `rng`; older versions `random_state` (same Generator either way)."""
    key = "rng" if "rng" in inspect.signature(scipy.stats.bootstrap).parameters else "random_state"
    return {key: np.random.default_rng(seed)}
