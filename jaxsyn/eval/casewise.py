"""Per-test-case views of one classifier (pGAN, Sun et al. 2021 §6.3 and Fig. 3): the test AUC's
confidence interval from resampling the test cases, and the confusion matrix.

auc_interval      the 95 % BCa bootstrap interval of `utility.mean_auroc` over the test cases
                  (2000 resamples of the cases with replacement, as pGAN: "bias-corrected and
                  accelerated bootstrapping with 2000 resamples"; the percentile interval
                  above BCA_MAX_CASES cases, where BCa's jackknife costs n^2); it measures the test set's
                  sampling error for one trained model, not the spread over training seeds.
                  None under `stats.BCA_MIN_VALUES` cases; resamples in which no label keeps
                  both classes are scored NaN, and an interval with a NaN bound is given as is.
confusion_matrix  "multiclass": [K, K] counts, row = true class, column = argmax of the scores
                  (pGAN's max F(x_i)); "multilabel": per label [[TN, FP], [FN, TP]] at a score
                  of 0.5 ([L, 2, 2]).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from jaxsyn.errors import ConfigError, DataError
from jaxsyn.eval import stats

# Ours: BCa's acceleration needs a jackknife of n AUCs over n - 1 cases each (n^2 log n); above
# this many cases the percentile interval is given (`Interval.method` says which).
BCA_MAX_CASES = 1000
CHUNK_ELEMENTS = 1 << 22  # case counts held at once (32 MiB of float64)
THRESHOLD = 0.5  # multilabel: a label is predicted present at score >= 0.5


def auc_interval(y_true, probs, task: str, *, n_resamples: int = stats.N_RESAMPLES, seed: int = 0):
    """`stats.Interval` of the test AUC (`utility.mean_auroc(y_true, probs, task)`, computed
    here for all resamples at once) from a BCa bootstrap over the test cases, or None with fewer
    than `stats.BCA_MIN_VALUES` cases."""
    y, p = np.asarray(y_true), np.asarray(probs, np.float64)
    if len(y) != len(p):
        raise DataError(f"y_true has {len(y)} cases and probs {len(p)}; expected as many")
    if len(y) < stats.BCA_MIN_VALUES:
        return None
    if task == "multiclass":  # one-vs-rest per class, as mean_auroc
        if y.ndim != 1 or p.ndim != 2 or not np.isin(y, np.arange(p.shape[1])).all():
            raise DataError(f"y_true {y.shape} / probs {p.shape}: expected [N] class indices < K")
        y = (y[:, None] == np.arange(p.shape[1])[None, :]).astype(np.int64)
    elif task != "multilabel":
        raise ConfigError(f"task: got {task!r}, expected 'multiclass' or 'multilabel'")
    y, p = (y[:, None], p[:, None]) if y.ndim == 1 else (y, p)
    if y.shape != p.shape or not np.isin(y, (0, 1)).all():
        raise DataError(f"y_true {y.shape} / probs {p.shape}: expected 0/1 labels [N, L] alike")
    auc = _resampled_auc(y, p)
    if np.isnan(auc(np.arange(len(y)))):
        raise DataError("y_true: no label (or class) has both positives and negatives")
    method = "BCa" if len(y) <= BCA_MAX_CASES else "percentile"
    with warnings.catch_warnings():  # constant AUCs (a perfect classifier) make BCa degenerate
        warnings.simplefilter("ignore")
        return stats.bootstrap_ci(
            np.arange(len(y)), auc, n_resamples=n_resamples, seed=seed, method=method
        )


def _resampled_auc(y: np.ndarray, p: np.ndarray):
    """A statistic of case indices [..., n] (bootstrap_ci's resamples, as float64) -> the mean
    over labels with both classes of the rank AUC (ties 1/2; `utility.roc_auc`) of each resample
    of y, p [N, L]: NaN where no label has both. A resample is the cases' counts; with each label's
    scores sorted once, its AUC is sum over tie groups of pos_g (neg below g + neg_g / 2) / (P Q),
    O(N) per resample instead of a sort."""
    labels = []
    for k in range(y.shape[1]):
        order = np.argsort(p[:, k], kind="stable")
        s = p[order, k]
        starts = np.r_[0, np.nonzero(np.diff(s))[0] + 1]  # first row of each tie group
        labels.append((order, y[order, k].astype(np.float64), starts))

    def statistic(index, axis=-1):
        index = np.moveaxis(np.asarray(index), axis, -1).astype(np.int64)
        rows = index.reshape(-1, index.shape[-1])
        n = len(y)
        step = max(1, CHUNK_ELEMENTS // n)  # bounded memory: step x N counts at a time
        out = []
        for r in np.split(rows, range(step, len(rows), step)):
            flat = (np.arange(len(r))[:, None] * n + r).ravel()
            counts = np.bincount(flat, minlength=len(r) * n).reshape(len(r), n).astype(np.float64)
            aucs = []
            for order, pos, starts in labels:
                c = counts[:, order]
                pos_g = np.add.reduceat(c * pos, starts, axis=1)
                neg_g = np.add.reduceat(c * (1 - pos), starts, axis=1)
                below = np.cumsum(neg_g, axis=1) - neg_g
                pq = pos_g.sum(1) * neg_g.sum(1)
                with np.errstate(invalid="ignore", divide="ignore"):
                    aucs.append(np.where(pq > 0, (pos_g * (below + neg_g / 2)).sum(1) / pq, np.nan))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # no label with both: NaN
                out.append(np.nanmean(np.stack(aucs, 1), axis=1))
        return np.concatenate(out).reshape(index.shape[:-1])

    return statistic


def confusion_matrix(y_true, probs, task: str) -> np.ndarray:
    """Counts (int64): [K, K] for "multiclass" (y_true [N] indices, probs [N, K]), [L, 2, 2] for
    "multilabel" (y_true and probs [N, L] or [N])."""
    y, p = np.asarray(y_true), np.asarray(probs, np.float64)
    if task == "multiclass":
        if y.ndim != 1 or p.ndim != 2 or len(y) != len(p):
            raise DataError(f"y_true {y.shape} / probs {p.shape}: expected [N] and [N, K]")
        k = p.shape[1]
        out = np.zeros((k, k), np.int64)
        np.add.at(out, (y.astype(np.int64), p.argmax(1)), 1)
        return out
    if task == "multilabel":
        y, p = (y[:, None], p[:, None]) if y.ndim == 1 else (y, p)
        if y.shape != p.shape:
            raise DataError(f"y_true {y.shape} / probs {p.shape}: expected the same [N, L]")
        pred = p >= THRESHOLD
        truth = y.astype(bool)
        return np.stack(
            [
                [[(~t & ~q).sum(), (~t & q).sum()], [(t & ~q).sum(), (t & q).sum()]]
                for t, q in zip(truth.T, pred.T, strict=True)
            ]
        ).astype(np.int64)
    raise ConfigError(f"task: got {task!r}, expected 'multiclass' or 'multilabel'")


def summary(y_true, probs_by_set: dict[str, list[np.ndarray]], task: str, seed: int = 0) -> dict:
    """The report's per-test-case numbers for each training set's per-seed test scores:
    `auc_interval` per seed ({"estimate", "low", "high", ...} or None) and the confusion matrix
    summed over the seeds (each test case counted once per seed)."""
    out: dict = {"auc_interval": {}, "confusion": {}}
    for name, per_seed in probs_by_set.items():
        intervals = [auc_interval(y_true, p, task, seed=seed) for p in per_seed]
        out["auc_interval"][name] = [
            None if i is None else dataclasses.asdict(i) for i in intervals
        ]
        out["confusion"][name] = sum(confusion_matrix(y_true, p, task) for p in per_seed).tolist()
    out["settings"] = {
        "interval": f"BCa bootstrap over the test cases, {stats.N_RESAMPLES} resamples, "
        f"{stats.CONFIDENCE:.0%} (pGAN §6.3; percentile above {BCA_MAX_CASES} cases); one per "
        f"seed, for that seed's trained model; none under {stats.BCA_MIN_VALUES} cases",
        "confusion": "summed over seeds; rows true, columns predicted: argmax (multiclass) or "
        f"score >= {THRESHOLD} per label as [[TN, FP], [FN, TP]] (multilabel)",
    }
    return out
