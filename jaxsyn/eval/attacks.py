"""pGAN's membership attacks on a synthetic set: pairwise and distribution.

Samples are rows of [N, F] arrays (images [N, H, W, C] are flattened); distances come from
`jaxsyn.eval.neighbours` (exact, float64 re-scored).

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
                `copy_quantile` (ours, issue 17.7) is a quantile that can flag copies.
  embed="umap"  both attacks in a 32-d UMAP (n_neighbors 20, min_dist 0, random_state 10:
                notebook 2; the paper says 64-d) fitted on candidates + synthetic (issue 7; the
                notebooks fit 5,000 other real images). Needs umap-learn. `umap_embedding`
                also takes other settings: `UMAP_SETTINGS_SPREAD` (ours, min_dist 1) is the
                one where noisy copies are flagged (issue 17.7).

Results are frozen dataclasses of plain numbers and lists: `dataclasses.asdict` is JSON-ready.
`cutoff_curves` gives pGAN's cut-off curves of a ranking (each group's share of the top k for
every k; Fig. S4) and `cutoff_table` their values at given cut-offs (Table S1: 50 and n // 3).
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

from jaxsyn.errors import ConfigError, DataError
from jaxsyn.eval.neighbours import (
    BATCH,
    SHORTLIST,
    _check_int,
    _distance_rows,
    _pair,
    _refine,
)

# pGAN §6.5 / notebook 5: neighbourhood = 1st percentile of distances in pixel space ...
QUANTILE_INPUT = 0.01
# ... and 0.1st percentile in the UMAP embedding.
QUANTILE_EMBEDDING = 0.001
# pGAN Table S1: cut-off 50 (the top 5 % of 1000 candidates); the other cut-off is n // 3 (333).
TOP_K = 50
# pGAN notebook 2: umap.UMAP(n_neighbors=20, random_state=10, min_dist=0.0, n_components=32).
UMAP_SETTINGS = {"n_components": 32, "n_neighbors": 20, "min_dist": 0.0, "random_state": 10}
# Ours (issue 17.7): pGAN's UMAP with min_dist 1.0 (umap-learn's spread, the most it allows). At
# min_dist 0 UMAP packs a held-out sample into the clump of its nearest training sample's copies,
# where it counts them; kept apart, noisy copies are flagged (0.91-0.92 at the copy quantile over
# three random states, pGAN's setting 0.80; an independent generator 0.48-0.49).
UMAP_SETTINGS_SPREAD = {**UMAP_SETTINGS, "min_dist": 1.0}
# pGAN notebook 1: the candidate set is 1000 images.
N_CANDIDATES = 1000


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


def copy_quantile(n_candidates: int, n_members: int, n_train: int) -> float:
    """A distribution-attack quantile at which a generator that copies its training samples is
    flagged (ours, issue 17.7; pGAN's 1 % cannot, see the module docstring).

    A generator that emits each of its n_train training samples equally often, S / n_train
    times, puts n_members S / n_train copies among the Q S candidate-synthetic distances
    (Q = n_candidates): a share n_members / (Q n_train). The quantile returned is half that
    share, n_members / (2 Q n_train): the threshold then falls at about the median copy distance,
    so while copies lie closer than other samples a member counts about half its copies and a
    non-member none, and about q S = n_members S / (2 Q n_train) random neighbours (S / (6
    n_train) for pGAN's equal thirds) are fewer than a member's S / n_train copies. For 1000
    candidates (334 members) and 300 training samples: 5.6e-4, against pGAN's 1e-2.
    """
    for value, name in ((n_candidates, "n_candidates"), (n_members, "n_members"),
                        (n_train, "n_train")):  # fmt: skip
        _check_int(value, name)
    if n_members >= n_candidates:
        raise DataError(f"n_members: got {n_members}, expected fewer than {n_candidates}")
    return n_members / (2.0 * n_candidates * n_train)


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


def umap_embedding(candidates, synthetic, settings=None) -> tuple[np.ndarray, np.ndarray]:
    """Fit a UMAP on candidates + synthetic and embed both: pGAN's (`UMAP_SETTINGS`: 32-d,
    n_neighbors 20, min_dist 0) unless `settings` (umap.UMAP's keywords) are given."""
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
        z = umap.UMAP(**(UMAP_SETTINGS if settings is None else settings)).fit_transform(x)
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


def cutoff_curves(ranking: Ranking, groups: Sequence[str]) -> dict[str, list[float]]:
    """pGAN's cut-off curves (Fig. S4, Table S1): for each cut-off k = 1..n, the share of each
    candidate group among the k highest-ranked candidates (the attack's "outliers").
    {"cut_off": [1..n], <group>: [share at each k]}; the groups' shares sum to 1 at every k."""
    labels = np.asarray([str(g) for g in groups])
    if len(labels) != len(ranking.order):
        raise DataError(f"groups: got {len(labels)} labels, expected {len(ranking.order)}")
    ranked = labels[np.asarray(ranking.order)]
    k = np.arange(1, len(ranked) + 1)
    out: dict[str, list[float]] = {"cut_off": k.tolist()}
    for g in _unique(labels):
        out[g] = (np.cumsum(ranked == g) / k).tolist()
    return out


def cutoff_table(curves: dict[str, list[float]], cut_offs: Sequence[int]) -> dict[str, dict]:
    """The shares at given cut-offs (pGAN Table S1 uses 50 and n // 3): {k: {group: share}}."""
    n = len(curves["cut_off"])
    return {
        str(k): {g: v[k - 1] for g, v in curves.items() if g != "cut_off"}
        for k in dict.fromkeys(min(max(int(c), 1), n) for c in cut_offs)
    }
