"""Privacy of a synthetic set: nearest neighbours, pGAN's membership attacks, DCR for tables.

Samples are rows of [N, F] arrays (images [N, H, W, C] are flattened), any real dtype, finite.

Distances (`nearest_neighbours`): l2 = ||x - y|| (pixel space: pGAN §6.5, DuMont et al. S.6);
cosine = 1 - x.y / (||x|| ||y||) (DuMont et al. S.6 on classifier features; scipy's `cosine`;
an all-zero row is refused). Computed on the default JAX device in [batch, batch] tiles in the
matmul form |x|^2 + |y|^2 - 2 x.y (centred data; unit rows for cosine), float32 at HIGHEST
precision. It shortlists k + 8 references per query, re-scored exactly in float64 from the
differences: a copy is at 0.0, and results equal brute force unless two distances differ by less
than float32 rounding. Ties go to the lower index. Memory: [batch, F] and [batch, batch] tiles.

Membership attacks (pGAN: Sun et al. 2021, "A Deep Learning Approach to Private Data Sharing of
Medical Images Using Conditional GANs", §2.3, §6.5, Table S1; tcoroller/pGAN Privacy notebooks).
Candidates are equal parts training data (members), held-out data from the same source and test
data (the notebooks: 334 train + 333 validation + 333 external test; `make_candidates`). Every
candidate gets a membership score, higher claiming membership, from its distances to every
synthetic sample (memory: batch x S; pairs the float32 form cannot tell from identical are
recomputed exactly, so copies are at 0 and never tie by rounding).
  pairwise      scores -min, -median and -min/median. The paper defines the minimum; the
                notebooks rank by min/median (`norm_L2_dist`); all three are reported.
  distribution  the number of synthetic samples with d <= t, t = sort(all Q x S distances)[
                floor(q Q S)]: q = 1 % in input space, 0.1 % in an embedding (§6.5; notebook 5:
                `L2_sort[100000]`, `u_sort[10000]` of 10^7). The notebooks count d < t, which
                scores 0 everywhere once more than floor(q Q S) copies sit at d = 0. Each
                candidate has ~q S random neighbours, so copies stand out only when a member has
                more than that many (S / n_train >> q S, i.e. q n_train << 1): not at pGAN's 1 %.
  embed="umap"  both attacks in a 32-d UMAP (n_neighbors 20, min_dist 0, random_state 10:
                notebook 2; the paper says 64-d) fitted on candidates + synthetic (issue 7; the
                notebooks fit 5,000 other real images). Needs umap-learn.
  Per score: ROC AUC (Mann-Whitney, ties 1/2: sklearn's roc_auc_score) of members vs all
  non-members and vs each non-member group (Figure S3: train vs validation, train vs test); top
  tables (Table S1): each group's count among the 50 and the n // 3 (333 of 1000) highest scores,
  ties in a seeded random order (the notebooks shuffle before sorting).

Distance to closest record (tables): a synthetic row's distance to its nearest training row
(table-GAN, Park et al. 2018), as percentiles (the 5th is CTAB-GAN's, Zhao et al. 2021). With a
holdout, the share of synthetic rows closer to train than to holdout, ties 1/2 (Platzer &
Reutterer 2021; sdmetrics' DCROverfittingProtection counts ties as holdout): n_train / (n_train
+ n_holdout) without memorisation (0.5 for equal sizes), 1.0 when every row copies a training
row. Callers encode tables first, e.g. with `encode_table` (standardised numbers, one-hot).

Results are frozen dataclasses of plain numbers, lists and dicts: `dataclasses.asdict(result)` is
JSON-ready.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy.stats import rankdata

from jaxsyn.errors import ConfigError, DataError
from jaxsyn.eval.tabular import NUMERIC, _kind, _to_float  # column kinds read as QualityReport

METRICS = ("l2", "cosine")
# Not from a paper: 1024 x 1024 float32 distance tiles (4 MiB) keep memory bounded on any device.
BATCH = 1024
# Not from a paper: candidates re-scored exactly beyond k, guarding against float32 near-ties.
SHORTLIST = 8
# Measured (F = 16 .. 36864): float32 |x|^2 + |y|^2 - 2 x.y erred < 1.5 sqrt(F) u (|x|^2 + |y|^2).
ROUNDING = 4.0
# Not from a paper: float64 re-scoring works on at most this many array elements at a time.
PAIR_ELEMENTS = 1 << 22
# pGAN §6.5 / notebook 5: neighbourhood = 1st percentile of distances in pixel space ...
QUANTILE_INPUT = 0.01
# ... and 0.1st percentile in the UMAP embedding.
QUANTILE_EMBEDDING = 0.001
# pGAN Table S1: cut-off 50 (the top 5 % of 1000 candidates); the other cut-off is n // 3 (333).
TOP_K = 50
# pGAN notebook 2: umap.UMAP(n_neighbors=20, random_state=10, min_dist=0.0, n_components=32).
UMAP_SETTINGS = {"n_components": 32, "n_neighbors": 20, "min_dist": 0.0, "random_state": 10}
# pGAN notebook 1: the candidate set is 1000 images.
N_CANDIDATES = 1000
# Not from a paper: the DCR distribution is reported at these percentiles (5th: CTAB-GAN).
PERCENTILES = (0, 1, 5, 25, 50, 75, 95, 100)


# ------------------------------------------------------------------------------------------------
# Results


@dataclasses.dataclass(frozen=True, kw_only=True)
class Ranking:
    """Candidates ranked by one membership score (higher: more likely a training member)."""

    score: str  # what was ranked, e.g. "-min_distance"
    scores: list[float]  # per candidate, input order
    order: list[int]  # candidate indices, highest score first (ties: seeded random order)
    auc: float  # members vs all non-members
    auc_by_group: dict[str, float]  # members vs each non-member group
    roc_fpr: list[float]  # ROC curve at every distinct score, from (0, 0) to (1, 1)
    roc_tpr: list[float]
    top_k: int
    top_k_hits: int  # members among the top_k highest scores
    top_k_by_group: dict[str, int]
    top_third: int  # n // 3
    top_third_hits: int
    top_third_by_group: dict[str, int]


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Attack:
    metric: str
    space: str  # "input" or "umap"
    n_candidates: int
    n_members: int
    n_synthetic: int
    is_member: list[bool]
    groups: list[str]


@dataclasses.dataclass(frozen=True, kw_only=True)
class PairwiseAttack(_Attack):
    min_distance: list[float]  # per candidate: to its nearest synthetic sample (exact)
    nearest: list[int]  # the index of that synthetic sample
    median_distance: list[float]  # per candidate: median over the synthetic set (float32)
    by_min: Ranking
    by_median: Ranking
    by_ratio: Ranking  # min / median: the notebooks' score


@dataclasses.dataclass(frozen=True, kw_only=True)
class DistributionAttack(_Attack):
    quantile: float
    threshold: float  # the quantile of all candidate-synthetic distances
    counts: list[int]  # per candidate: synthetic samples within the threshold
    by_count: Ranking


@dataclasses.dataclass(frozen=True, kw_only=True)
class DCR:
    metric: str
    n_train: int
    n_synthetic: int
    dcr: list[float]  # per synthetic row: distance to the nearest training row
    nearest_train: list[int]
    percentiles: dict[str, float]  # "p5": 5th percentile, ...
    mean: float
    exact_copies: int  # synthetic rows at distance 0 from a training row
    n_holdout: int | None = None
    holdout_dcr: list[float] | None = None  # per synthetic row: to the nearest holdout row
    holdout_percentiles: dict[str, float] | None = None
    share_closer_to_train: float | None = None  # ties count 1/2
    expected_share: float | None = None  # n_train / (n_train + n_holdout)


# ------------------------------------------------------------------------------------------------
# Nearest neighbours


def nearest_neighbours(
    queries, references, *, metric: str = "l2", k: int = 1, batch: int = BATCH
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest references of each query: exact float64 distances [Q, k] and int64 indices
    [Q, k], nearest first, ties to the lower index (see the module docstring)."""
    q, r = _pair(queries, references, "queries", "references", metric)
    _check_int(batch, "batch")
    _check_int(k, "k")
    if k > len(r):
        raise DataError(f"k = {k} neighbours requested, but references have {len(r)} rows")
    m = min(k + SHORTLIST, len(r))
    shortlist = np.empty((len(q), m), np.int64)
    bq, br = min(batch, len(q)), min(batch, len(r))
    for q0 in range(0, len(q), bq):
        qt, nq = _tile(q, q0, bq)
        best_d, best_i = [], []  # the m nearest of every reference tile: [nq, m x tiles]
        for r0 in range(0, len(r), br):
            rt, nr = _tile(r, r0, br)
            d, i = _nearest_tile(qt, rt, nr, metric, min(m, br))
            best_d.append(np.asarray(d)[:nq])
            best_i.append(np.asarray(i)[:nq] + r0)
        best_d, best_i = np.concatenate(best_d, 1), np.concatenate(best_i, 1)
        keep = np.argpartition(best_d, m - 1, axis=1)[:, :m]
        shortlist[q0 : q0 + nq] = np.take_along_axis(best_i, keep, 1)
    return _refine(q, r, shortlist, metric, k)


@functools.partial(jax.jit, static_argnames=("metric",))
def _distance_tile(q, r, metric):
    """[bq, F] x [br, F] -> [bq, br] float32 distances in the matmul form, and the squared norms
    [bq], [br] of the rows it multiplied (which bound its rounding error)."""
    q, r = q.astype(jnp.float32), r.astype(jnp.float32)
    hi = jax.lax.Precision.HIGHEST  # else accelerators may multiply in TF32/bfloat16
    if metric == "l2":
        centre = r.mean(0)  # any centre is exact; a near one cancels less in |q|^2 + |r|^2 - 2 q.r
        q, r = q - centre, r - centre
        qn, rn = (q * q).sum(1), (r * r).sum(1)
        sq = qn[:, None] + rn[None, :] - 2.0 * jnp.dot(q, r.T, precision=hi)
        return jnp.sqrt(jnp.maximum(sq, 0.0)), qn, rn
    q = q / jnp.maximum(jnp.linalg.norm(q, axis=1, keepdims=True), 1e-30)  # padding rows are 0
    r = r / jnp.maximum(jnp.linalg.norm(r, axis=1, keepdims=True), 1e-30)
    d = jnp.clip(1.0 - jnp.dot(q, r.T, precision=hi), 0.0, 2.0)
    return d, jnp.ones(q.shape[0]), jnp.ones(r.shape[0])


@functools.partial(jax.jit, static_argnames=("metric", "m"))
def _nearest_tile(q, r, n_valid, metric, m):
    d = _distance_tile(q, r, metric)[0]
    d = jnp.where(jnp.arange(r.shape[0])[None, :] < n_valid, d, jnp.inf)  # padding never wins
    neg, idx = jax.lax.top_k(-d, m)
    return -neg, idx


def _distance_rows(q: np.ndarray, r: np.ndarray, metric: str, batch: int):
    """Yield (start, [b, R] float32 distances) for blocks of query rows: b x R memory.

    Pairs the matmul form cannot tell from identical (d^2 or 1 - cos within 4x its rounding
    bound) are recomputed exactly, so copies sit at 0 and near-copies keep their order."""
    bq, br = min(batch, len(q)), min(batch, len(r))
    bound = ROUNDING * np.sqrt(q.shape[1]) * 2.0**-24  # x (|x|^2 + |y|^2): float32 unit roundoff
    for q0 in range(0, len(q), bq):
        qt, nq = _tile(q, q0, bq)
        rows = np.empty((nq, len(r)), np.float32)
        for r0 in range(0, len(r), br):
            rt, nr = _tile(r, r0, br)
            d, qn, rn = (np.asarray(a) for a in _distance_tile(qt, rt, metric))
            d = rows[:, r0 : r0 + nr] = d[:nq, :nr]
            err = bound * (qn[:nq, None] + rn[None, :nr])
            i, j = np.nonzero((d * d if metric == "l2" else d) <= 4.0 * err)
            rows[i, j + r0] = _exact(q, r, i + q0, j + r0, metric)
        yield q0, rows


def _tile(x: np.ndarray, start: int, size: int) -> tuple[np.ndarray, int]:
    """Rows start:start+size as float32, zero-padded to `size` (one compiled shape per call)."""
    t = np.asarray(x[start : start + size], dtype=np.float32)
    n = len(t)
    return (np.pad(t, ((0, size - n), (0, 0))) if n < size else t), n


def _exact(q, r, qi: np.ndarray, ri: np.ndarray, metric: str) -> np.ndarray:
    """Float64 distances of the pairs (q[qi], r[ri]) from their differences."""
    d = np.empty(len(qi))
    step = max(1, PAIR_ELEMENTS // q.shape[1])
    for s in range(0, len(qi), step):
        x = q[qi[s : s + step]].astype(np.float64)
        y = r[ri[s : s + step]].astype(np.float64)
        if metric == "cosine":  # 1 - cos = |x/|x| - y/|y||^2 / 2: exactly 0 for parallel rows
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            y /= np.linalg.norm(y, axis=1, keepdims=True)
        diff = x - y
        sq = np.einsum("ij,ij->i", diff, diff)
        d[s : s + step] = sq / 2.0 if metric == "cosine" else np.sqrt(sq)
    return d


def _refine(q, r, shortlist: np.ndarray, metric: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact distances of each query's shortlisted references; the k nearest of them."""
    qi = np.repeat(np.arange(len(q)), shortlist.shape[1])
    d = _exact(q, r, qi, shortlist.ravel(), metric).reshape(shortlist.shape)
    order = np.lexsort((shortlist, d))[:, :k]  # by distance, then by index
    return np.take_along_axis(d, order, 1), np.take_along_axis(shortlist, order, 1)


# ------------------------------------------------------------------------------------------------
# Membership attacks


def make_candidates(members, holdout, test=None, *, n: int = N_CANDIDATES, seed: int = 0):
    """pGAN's candidate set: n rows in equal parts from members, holdout and test (if given).

    Members get the remainder (1000 -> 334 + 333 + 333, as the notebooks); rows are drawn without
    replacement from `seed`. Returns candidates [n, ...] (members first), is_member [n] bool and
    groups [n] ("train", "holdout", "test").
    """
    sets = {"train": members, "holdout": holdout} | ({} if test is None else {"test": test})
    _check_int(n, "n")
    share = n // len(sets)
    sizes = {g: share for g in sets} | {"train": n - share * (len(sets) - 1)}
    rng = np.random.default_rng(seed)
    data, groups = [], []
    for g, x in sets.items():
        x = np.asarray(x)
        if x.ndim == 0 or len(x) < sizes[g]:
            raise DataError(f"{g} set has {len(x) if x.ndim else 0} rows, expected >= {sizes[g]}")
        data.append(x[np.sort(rng.choice(len(x), size=sizes[g], replace=False))])
        groups += [g] * sizes[g]
    if len({d.shape[1:] for d in data}) > 1:
        raise DataError(f"sample shapes differ: {[d.shape[1:] for d in data]}, expected one shape")
    return np.concatenate(data), np.array([g == "train" for g in groups]), groups


def pairwise_attack(candidates, is_member, synthetic, **options) -> PairwiseAttack:
    """pGAN's pairwise attack (min, median, min/median); options as `membership_attacks`."""
    return membership_attacks(candidates, is_member, synthetic, **options)["pairwise"]


def distribution_attack(candidates, is_member, synthetic, **options) -> DistributionAttack:
    """pGAN's distribution attack (neighbour counts); options as `membership_attacks`."""
    return membership_attacks(candidates, is_member, synthetic, **options)["distribution"]


def membership_attacks(
    candidates,
    is_member,
    synthetic,
    *,
    groups: Sequence[str] | None = None,
    metric: str = "l2",
    embed: str | None = None,
    quantile: float | None = None,
    top_k: int = TOP_K,
    batch: int = BATCH,
    seed: int = 0,
) -> dict:
    """Both pGAN attacks from one pass over the candidate-synthetic distances.

    candidates [Q, ...] and synthetic [S, ...] (flattened to [., F]); is_member [Q] bool (needs
    members and non-members); groups [Q] labels such as "train"/"holdout"/"test" (default
    "member"/"non-member"); metric "l2" or "cosine"; embed None or "umap" (fit on candidates +
    synthetic); quantile: the distribution attack's neighbourhood (default 1 % in input space,
    0.1 % in UMAP space); top_k: the first cut-off of the top tables; seed orders tied scores.
    Returns {"pairwise": PairwiseAttack, "distribution": DistributionAttack}. Memory: the
    distances of `batch` candidates to all S synthetic samples at a time.
    """
    if embed not in (None, "umap"):
        raise ConfigError(f"embed: got {embed!r}, expected None or 'umap'")
    c, s = _pair(candidates, synthetic, "candidates", "synthetic", metric)
    member, groups = _labels(is_member, groups, len(c))
    _check_int(batch, "batch")
    _check_int(top_k, "top_k")
    if quantile is None:
        quantile = QUANTILE_INPUT if embed is None else QUANTILE_EMBEDDING
    if isinstance(quantile, bool) or not 0.0 < float(quantile) < 1.0:
        raise ConfigError(f"quantile: got {quantile!r}, expected a number in (0, 1)")
    if embed == "umap":
        c, s = umap_embedding(c, s)
    low, nearest, median, threshold, counts = _scan(c, s, metric, batch, float(quantile))
    common = dict(
        metric=metric,
        space="input" if embed is None else "umap",
        n_candidates=len(c),
        n_members=int(member.sum()),
        n_synthetic=len(s),
        is_member=member.tolist(),
        groups=groups.tolist(),
    )
    rank = functools.partial(_ranking, member=member, groups=groups, top_k=top_k, seed=seed)
    ratio = np.divide(low, median, out=np.zeros(len(c)), where=median > 0)  # 0/0: a copy
    pairwise = PairwiseAttack(
        **common,
        min_distance=low.tolist(),
        nearest=nearest.tolist(),
        median_distance=median.tolist(),
        by_min=rank("-min_distance", -low),
        by_median=rank("-median_distance", -median),
        by_ratio=rank("-min_distance/median_distance", -ratio),
    )
    distribution = DistributionAttack(
        **common,
        quantile=float(quantile),
        threshold=threshold,
        counts=counts.tolist(),
        by_count=rank("neighbour_count", counts.astype(np.float64)),
    )
    return {"pairwise": pairwise, "distribution": distribution}


def _scan(c: np.ndarray, s: np.ndarray, metric: str, batch: int, quantile: float):
    """One pass over all candidate-synthetic distances: per candidate the exact minimum, its
    synthetic index and the median; the quantile threshold and each candidate's count."""
    m = min(1 + SHORTLIST, len(s))
    shortlist, median = np.empty((len(c), m), np.int64), np.empty(len(c))
    kth = int(quantile * len(c) * len(s))  # threshold = sort(all distances)[kth]
    vals, rows, t = np.empty(0, np.float32), np.empty(0, np.int64), np.inf
    for q0, d in _distance_rows(c, s, metric, batch):
        shortlist[q0 : q0 + len(d)] = np.argpartition(d, m - 1, axis=1)[:, :m]
        median[q0 : q0 + len(d)] = np.median(d, axis=1)
        # Keep every distance <= the running kth smallest (ties all count): ~kth values in memory.
        if t == np.inf and d.size > kth:  # the kth of any subset bounds the global kth
            t = np.partition(d, kth, axis=None)[kth]
        i, j = np.nonzero(d <= t)
        vals, rows = np.concatenate([vals, d[i, j]]), np.concatenate([rows, i + q0])
        if len(vals) > kth + 1:
            t = np.partition(vals, kth)[kth]
            vals, rows = vals[vals <= t], rows[vals <= t]
    low, nearest = _refine(c, s, shortlist, metric, 1)
    threshold = np.partition(vals, kth)[kth]
    counts = np.bincount(rows[vals <= threshold], minlength=len(c))
    return low[:, 0], nearest[:, 0], median, float(threshold), counts


def umap_embedding(candidates, synthetic) -> tuple[np.ndarray, np.ndarray]:
    """Fit pGAN's UMAP (32-d, n_neighbors 20, min_dist 0) on candidates + synthetic; embed both."""
    try:
        import umap  # optional: numba and llvmlite make it ~210 MB
    except ImportError:
        raise ConfigError(
            "embed='umap' needs umap-learn, which is not installed: run `pip install umap-learn` "
            "(or pass embed=None to attack in input space)"
        ) from None
    c, s = np.asarray(candidates), np.asarray(synthetic)
    x = np.concatenate([c.reshape(len(c), -1), s.reshape(len(s), -1)]).astype(np.float32)
    with warnings.catch_warnings():  # a fixed random_state turns off parallelism: said, known
        warnings.filterwarnings("ignore", message=".*n_jobs value.*", category=UserWarning)
        z = umap.UMAP(**UMAP_SETTINGS).fit_transform(x)
    return np.asarray(z[: len(c)], np.float64), np.asarray(z[len(c) :], np.float64)


def _ranking(name, scores, *, member, groups, top_k, seed) -> Ranking:
    n = len(scores)
    perm = np.random.default_rng(seed).permutation(n)  # tied scores: seeded random order
    order = perm[np.argsort(-scores[perm], kind="stable")]
    k, third = min(top_k, n), n // 3
    hits = [int(member[order[:cut]].sum()) for cut in (k, third)]
    by_group = [
        {g: int((groups[order[:cut]] == g).sum()) for g in _unique(groups)} for cut in (k, third)
    ]
    fpr, tpr = _roc(scores, member)
    return Ranking(
        score=name,
        scores=scores.astype(np.float64).tolist(),
        order=order.tolist(),
        auc=_auc(scores[member], scores[~member]),
        auc_by_group={
            g: _auc(scores[member], scores[~member & (groups == g)])
            for g in _unique(groups[~member])
        },
        roc_fpr=fpr.tolist(),
        roc_tpr=tpr.tolist(),
        top_k=k,
        top_k_hits=hits[0],
        top_k_by_group=by_group[0],
        top_third=third,
        top_third_hits=hits[1],
        top_third_by_group=by_group[1],
    )


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score_pos > score_neg) + P(tie) / 2: the Mann-Whitney form of the ROC AUC."""
    ranks = rankdata(np.concatenate([pos, neg]))  # average ranks for ties
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))


def _roc(scores: np.ndarray, member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every distinct score, highest first, with (0, 0) in front."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], member[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # the last row of each distinct score
    tps, fps = np.cumsum(y)[last], np.cumsum(~y)[last]
    return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]


def _labels(is_member, groups, n: int) -> tuple[np.ndarray, np.ndarray]:
    member = np.asarray(is_member)
    if member.shape != (n,) or member.dtype != bool:
        raise DataError(
            f"is_member: got {member.dtype} of shape {member.shape}, expected bool of shape ({n},)"
        )
    if member.all() or not member.any():
        msg = f"{int(member.sum())} of {n} candidates are members, expected members and others"
        raise DataError(f"is_member: {msg}")
    if groups is None:
        return member, np.where(member, "member", "non-member")
    labels = np.asarray([str(g) for g in groups])
    if labels.shape != (n,):
        raise DataError(f"groups: got {len(labels)} labels, expected one per candidate ({n})")
    return member, labels


def _unique(labels: np.ndarray) -> list[str]:
    return [str(g) for g in dict.fromkeys(labels.tolist())]


# ------------------------------------------------------------------------------------------------
# Distance to closest record (tables)


def distance_to_closest_record(
    real_train, synthetic, real_holdout=None, *, metric: str = "l2", batch: int = BATCH
) -> DCR:
    """DCR of every synthetic row to the training rows (and to the holdout rows, if given).

    Arrays [N, F] already numeric, e.g. from `encode_table` with `fit_on=real_train_table`, so all
    three share one encoding. The share is only comparable to 0.5 when train and holdout have
    the same number of rows; `expected_share` gives the no-memorisation value otherwise.
    """
    s, t = _pair(synthetic, real_train, "synthetic", "real_train", metric)
    d, i = (a[:, 0] for a in nearest_neighbours(s, t, metric=metric, batch=batch))
    out = dict(
        metric=metric,
        n_train=len(t),
        n_synthetic=len(s),
        dcr=d.tolist(),
        nearest_train=i.tolist(),
        percentiles=_percentiles(d),
        mean=float(d.mean()),
        exact_copies=int((d == 0).sum()),
    )
    if real_holdout is not None:
        _, h = _pair(s, real_holdout, "synthetic", "real_holdout", metric)
        dh = nearest_neighbours(s, h, metric=metric, batch=batch)[0][:, 0]
        out |= dict(
            n_holdout=len(h),
            holdout_dcr=dh.tolist(),
            holdout_percentiles=_percentiles(dh),
            share_closer_to_train=float(np.mean((d < dh) + 0.5 * (d == dh))),
            expected_share=len(t) / (len(t) + len(h)),
        )
    return DCR(**out)


def _percentiles(d: np.ndarray) -> dict[str, float]:
    values = np.percentile(d, PERCENTILES).tolist()
    return {f"p{p}": v for p, v in zip(PERCENTILES, values, strict=True)}


def encode_table(
    df: pd.DataFrame, kinds: Mapping[str, str] | None = None, *, fit_on: pd.DataFrame | None = None
) -> np.ndarray:
    """A table as [N, F] float64 for distances: standardised numbers and one-hot categories.

    Numeric kinds (integer, float, datetime as ns): (x - mean) / std with `fit_on`'s statistics
    (population std; 1 for a constant column); a missing value becomes the mean (0) and every
    numeric column gets a 0/1 missing-indicator column. Discrete kinds (categorical, binary):
    one column per category of `fit_on`, plus one for missing; a category `fit_on` lacks encodes
    as all zeros. `fit_on` (default `df`) fixes the encoding: pass the real training table when
    encoding train, synthetic and holdout. Kinds are inferred from `fit_on`'s dtypes unless given
    (as `jaxsyn.eval.tabular`: bool, datetime, integer, float, anything else categorical).
    """
    fit = df if fit_on is None else fit_on
    for name, t in (("table", df), ("fit_on", fit)):
        if not isinstance(t, pd.DataFrame) or t.empty:
            got = f"{type(t).__name__} {getattr(t, 'shape', '')}"
            raise DataError(f"{name}: got {got}, expected a pandas DataFrame with rows and columns")
    missing = [c for c in fit.columns if c not in df.columns]
    if missing:
        raise DataError(f"table lacks column(s) {missing} of fit_on, expected the same columns")
    parts = []
    for name in fit.columns:
        kind = _kind(name, fit[name], kinds)
        if kind in NUMERIC:
            ref, x = _to_float(name, fit[name], kind), _to_float(name, df[name], kind)
            ok = ~np.isnan(ref)
            mean = ref[ok].mean() if ok.any() else 0.0
            std = ref[ok].std() if ok.any() else 0.0
            z = (x - mean) / (std if std > 0 else 1.0)
            parts += [np.nan_to_num(z, nan=0.0)[:, None], np.isnan(x)[:, None]]
        else:
            categories = pd.Index(fit[name].dropna().astype(object).unique())
            code = categories.get_indexer(df[name].astype(object))
            onehot = code[:, None] == np.arange(len(categories))[None, :]
            parts += [onehot, df[name].isna().to_numpy()[:, None]]
    return np.concatenate([p.astype(np.float64) for p in parts], axis=1)


# ------------------------------------------------------------------------------------------------
# Checks


def _pair(a, b, name_a: str, name_b: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    if metric not in METRICS:
        raise ConfigError(f"metric: got {metric!r}, expected one of {METRICS}")
    a, b = _matrix(a, name_a, metric), _matrix(b, name_b, metric)
    if a.shape[1] != b.shape[1]:
        raise DataError(
            f"{name_a} have {a.shape[1]} features per row, {name_b} {b.shape[1]}; "
            "expected the same number (same image size, same table encoding)"
        )
    return a, b


def _matrix(x, name: str, metric: str) -> np.ndarray:
    """x as a numeric [N, F] array (no copy where possible): non-empty, finite, and for cosine
    without all-zero rows."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":  # bool, integers, floats
        raise DataError(f"{name}: got dtype {a.dtype}, expected real numbers")
    if a.ndim < 2 or a.shape[0] == 0 or a[0].size == 0:
        raise DataError(
            f"{name}: got shape {a.shape}, expected a non-empty [N, F] array "
            "(N >= 1 samples of F >= 1 features; images [N, ...] are flattened)"
        )
    a = a.reshape(len(a), -1)
    for s in range(0, len(a), 4096):  # in chunks: no full-size temporaries
        chunk = a[s : s + 4096]
        if a.dtype.kind == "f" and not np.isfinite(chunk).all():
            raise DataError(
                f"{name} holds NaN or infinite values, expected finite numbers "
                "(encode missing values first, e.g. with encode_table)"
            )
        if metric == "cosine" and not (chunk != 0).any(axis=1).all():
            row = s + int(np.argmin((chunk != 0).any(axis=1)))
            raise DataError(f"{name} row {row} is all zeros: no direction for cosine, use l2")
    return a


def _check_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name}: got {value!r}, expected a positive integer")
