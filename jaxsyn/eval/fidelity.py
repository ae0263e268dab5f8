"""Distribution metrics on feature arrays [N, F]: KID, MMD, PRDC; FID from `jaxsyn.eval.fid`.

The features come from an extractor (Inception-v3, a 3D ResNet, a domain classifier); every metric
here sees only float arrays of shape [N, F], one row per sample. Statistics are float64 numpy.

FID, FID_rr and r_FID (`fid`, `fid_real_real`, `fid_halves`, `fid_ratio`, `frechet_distance`,
`feature_stats`, `FeatureStats`, `fid_of_stats`, `FID_SPLITS`) live in `jaxsyn.eval.fid` and are
re-exported here, so `from jaxsyn.eval.fidelity import fid` works.

KID (Bińkowski et al. 2018, "Demystifying MMD GANs", §4): the unbiased MMD^2 with the cubic
  polynomial kernel k(a, b) = (a.b / F + 1)^3, averaged over random subsets; reported as the mean
  and standard deviation over subsets.
MMD (Gretton et al. 2012, "A kernel two-sample test", eq. 3): the unbiased MMD^2 with the Gaussian
  kernel k(a, b) = exp(-|a - b|^2 / (2 sigma^2)), sigma by default the median distance between the
  points of the pooled sample (the paper's §8 heuristic).
PRDC (Naeem et al. 2020, "Reliable fidelity and diversity metrics for generative models", §3, and
  their clovaai/generative-evaluation-prdc code): B(x, r) the open ball, NND_k(x) the distance from
  x to its k-th nearest neighbour in its own set (itself excluded),
    precision = mean_j 1[exists i: Y_j in B(X_i, NND_k(X_i))]
    recall    = mean_i 1[exists j: X_i in B(Y_j, NND_k(Y_j))]
    density   = 1/k mean_j sum_i 1[Y_j in B(X_i, NND_k(X_i))]
    coverage  = mean_i 1[exists j: Y_j in B(X_i, NND_k(X_i))]
  with X the real and Y the synthetic features. Distances are Euclidean, computed after
  subtracting the real mean from both sets (fewer cancellations in |a|^2 + |b|^2 - 2 a.b); a point
  within TIE_RTOL of a radius is taken as outside its ball. So two identical sets without ties
  give precision = recall = coverage = 1 and density exactly 1 (each Y_j = X_j lies in its own
  ball and in those of the X_i that have it among their k - 1 nearest neighbours: n k in all).

Memory. MMD, the median heuristic and PRDC compute pairwise distances or kernels in row blocks of
at most BLOCK_ELEMENTS entries (32 MiB of float64) and keep one float64 copy of each feature set;
KID casts only the subsets it draws.
"""

from __future__ import annotations

import math

import numpy as np

from jaxsyn.errors import DataError

# FID's public names, re-exported; `_array` and `_finite`, the checks the metrics here share
from jaxsyn.eval.fid import (  # noqa: F401
    FID_SPLITS,
    FeatureStats,
    _array,
    _finite,
    feature_stats,
    fid,
    fid_halves,
    fid_of_stats,
    fid_ratio,
    fid_real_real,
    frechet_distance,
)

# Not from a paper: row blocks of pairwise distances / kernel values hold at most 4 Mi float64
# entries (32 MiB), whatever N; rows per block = BLOCK_ELEMENTS // (columns).
BLOCK_ELEMENTS = 1 << 22
# torch-fidelity (kid_subsets) and clean-fid (num_subsets) default; Bińkowski's compute_scores.py
# used 50 or 10.
KID_SUBSETS = 100
# Bińkowski's compute_scores.py, torch-fidelity and clean-fid: subsets of 1000 samples.
KID_SUBSET_SIZE = 1000
# Not from a paper: the median heuristic uses at most this many pooled points (8.4 Mi distances,
# 64 MiB); a larger pooled sample is subsampled first, from `seed`.
MEDIAN_POINTS = 4096
# Naeem et al. 2020, §4 and the prdc package's examples: k = 5 nearest neighbours.
PRDC_K = 5
# Not from a paper: a distance within this relative margin of a PRDC radius counts as on the
# sphere, i.e. outside the open ball. Rounding (~1e-15 relative after centring) then cannot put a
# point that lies exactly on it inside - which happens whenever the sets share points: the k-th
# neighbour of X_i, copied into the synthetic set, sits exactly at NND_k(X_i).
TIE_RTOL = 1e-9


# ------------------------------------------------------------------------------------------------
# Kernel distances


def kid(
    x,
    y,
    *,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> tuple[float, float]:
    """KID of `x` [N, F] and `y` [M, F]: (mean, standard deviation) of MMD^2_u over subsets.

    Kernel (a.b / F + 1)^3. Each subset draws m = min(subset_size, N, M) rows of x and then of y
    without replacement (`rng.choice(N, m, replace=False)`, rng = `np.random.default_rng(seed)`,
    x before y, subset after subset); a subset_size larger than a set shrinks to it, as in
    clean-fid. Per subset the estimate is Bińkowski et al.'s unbiased one:
      sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1))
        - 2 sum_{i, j} k(x_i, y_j) / m^2.
    The standard deviation is over subsets (ddof 0, as torch-fidelity); it is 0 when m = N = M.
    """
    if isinstance(subsets, bool) or int(subsets) != subsets or subsets < 1:
        raise DataError(f"subsets: got {subsets!r}, expected a positive integer")
    if isinstance(subset_size, bool) or int(subset_size) != subset_size or subset_size < 2:
        raise DataError(f"subset_size: got {subset_size!r}, expected an integer >= 2")
    x, y = _pair(x, y, cast=False)  # only the subsets are cast to float64 (and checked finite)
    m = min(int(subset_size), len(x), len(y))
    f = x.shape[1]

    def kernel(a, b):
        return (a @ b.T / f + 1.0) ** 3

    rng = np.random.default_rng(seed)
    values = np.empty(int(subsets))
    for s in range(len(values)):
        xs = _finite(x[rng.choice(len(x), m, replace=False)].astype(np.float64), "x")
        ys = _finite(y[rng.choice(len(y), m, replace=False)].astype(np.float64), "y")
        values[s] = _mmd2_unbiased(xs, ys, kernel)
    return float(values.mean()), float(values.std())


def mmd(x, y, *, bandwidth: float | None = None, seed: int = 0) -> float:
    """Unbiased MMD^2 of `x` [N, F] and `y` [M, F] (N, M >= 2) with a Gaussian kernel.

    k(a, b) = exp(-|a - b|^2 / (2 bandwidth^2)); bandwidth None takes `median_heuristic(x, y,
    seed=seed)`. MMD^2_u = sum_{i != j} k(x_i, x_j) / (N (N - 1)) + sum_{i != j} k(y_i, y_j) /
    (M (M - 1)) - 2 sum_{i, j} k(x_i, y_j) / (N M); it can be slightly negative when the two
    distributions match.
    """
    x, y = _pair(x, y)
    if bandwidth is None:
        bandwidth = median_heuristic(x, y, seed=seed)
    elif not (math.isfinite(bandwidth) and bandwidth > 0):
        raise DataError(f"bandwidth: got {bandwidth!r}, expected a positive number or None")
    scale = -0.5 / float(bandwidth) ** 2

    def kernel(a, b):
        return np.exp(scale * _sq_dists(a, b))

    return _mmd2_unbiased(x, y, kernel)


def median_heuristic(x, y, *, seed: int = 0) -> float:
    """Median Euclidean distance over the distinct pairs of the pooled sample x ∪ y.

    A pooled sample of more than MEDIAN_POINTS rows is first subsampled to that many (without
    replacement, `np.random.default_rng(seed)`), which keeps the cost bounded.
    """
    x, y = _pair(x, y)
    z = np.concatenate([x, y])
    if len(z) > MEDIAN_POINTS:
        z = z[np.sort(np.random.default_rng(seed).choice(len(z), MEDIAN_POINTS, replace=False))]
    n = len(z)
    pairs = np.empty(n * (n - 1) // 2)
    filled = 0
    for rows in _row_blocks(n, n):
        d = _sq_dists(z[rows], z)
        for r, i in enumerate(range(rows.start, rows.stop)):  # the upper triangle, row by row
            pairs[filled : filled + n - i - 1] = d[r, i + 1 :]
            filled += n - i - 1
    median = math.sqrt(float(np.median(pairs)))
    if median == 0:
        raise DataError(
            "median pairwise distance is 0 (most samples are duplicates), expected a positive "
            "bandwidth; pass bandwidth= explicitly"
        )
    return median


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray, kernel) -> float:
    n, m = len(x), len(y)
    kxx = _kernel_sum(x, x, kernel, same=True)
    kyy = _kernel_sum(y, y, kernel, same=True)
    kxy = _kernel_sum(x, y, kernel, same=False)
    return float(kxx / (n * (n - 1)) + kyy / (m * (m - 1)) - 2.0 * kxy / (n * m))


def _kernel_sum(a: np.ndarray, b: np.ndarray, kernel, *, same: bool) -> float:
    """sum_{i, j} kernel(a_i, b_j), in row blocks; `same` (a is b) leaves out i == j."""
    total = 0.0
    for rows in _row_blocks(len(a), len(b)):
        block = kernel(a[rows], b)
        if same:
            block[np.arange(block.shape[0]), np.arange(rows.start, rows.stop)] = 0.0
        total += float(block.sum())
    return total


# ------------------------------------------------------------------------------------------------
# Precision, recall, density, coverage


def prdc(real, fake, *, k: int = PRDC_K) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al. 2020) of `fake` [M, F] against `real`.

    k-nearest-neighbour balls (open, Euclidean) in feature space; see the module docstring.
    Needs N, M > k. Returns {"precision", "recall", "density", "coverage"}: all in [0, 1] except
    density, which is about 1 when the two sets come from one distribution and can exceed 1.
    """
    real, fake = _pair(real, fake, names=("real", "fake"))
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise DataError(f"k: got {k!r}, expected a positive integer")
    for name, a in (("real", real), ("fake", fake)):
        if len(a) <= k:
            raise DataError(f"{name}: got {len(a)} samples, expected more than k = {k}")
    centre = real.mean(axis=0)
    real, fake = real - centre, fake - centre
    # squared radii, shrunk by the tie margin, compared with squared distances
    r_real = _knn_sq_radii(real, k) * (1.0 - TIE_RTOL) ** 2
    r_fake = _knn_sq_radii(fake, k) * (1.0 - TIE_RTOL) ** 2
    fake_sq = (fake * fake).sum(axis=1)
    in_real_ball = np.zeros(len(fake), dtype=bool)  # precision: Y_j in some real ball
    ball_count = np.zeros(len(fake))  # density: how many real balls hold Y_j
    recalled = covered = 0
    for rows in _row_blocks(len(real), len(fake)):
        d = _sq_dists(real[rows], fake, b_sq=fake_sq)  # [rows, M]
        inside = d < r_real[rows, None]  # Y_j in B(X_i, NND_k(X_i))
        in_real_ball |= inside.any(axis=0)
        ball_count += inside.sum(axis=0)
        covered += int(inside.any(axis=1).sum())
        recalled += int((d < r_fake[None, :]).any(axis=1).sum())  # X_i in some fake ball
    return {
        "precision": float(in_real_ball.mean()),
        "recall": recalled / len(real),
        "density": float(ball_count.mean() / k),
        "coverage": covered / len(real),
    }


def _knn_sq_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each row of x to its k-th nearest other row."""
    out = np.empty(len(x))
    sq = (x * x).sum(axis=1)
    for rows in _row_blocks(len(x), len(x)):
        d = _sq_dists(x[rows], x, a_sq=sq[rows], b_sq=sq)
        d[np.arange(d.shape[0]), np.arange(rows.start, rows.stop)] = np.inf  # not its own neighbour
        out[rows] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return out


# ------------------------------------------------------------------------------------------------
# Helpers


def _row_blocks(n_rows: int, n_cols: int):
    """Slices of rows such that a [rows, n_cols] block holds at most BLOCK_ELEMENTS entries."""
    step = max(1, BLOCK_ELEMENTS // max(n_cols, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def _sq_dists(a: np.ndarray, b: np.ndarray, a_sq=None, b_sq=None) -> np.ndarray:
    """[len(a), len(b)] squared Euclidean distances, |a|^2 + |b|^2 - 2 a.b clipped at 0."""
    a_sq = (a * a).sum(axis=1) if a_sq is None else a_sq
    b_sq = (b * b).sum(axis=1) if b_sq is None else b_sq
    d = a @ b.T
    d *= -2.0
    d += a_sq[:, None]
    d += b_sq[None, :]
    return np.maximum(d, 0.0, out=d)


def _pair(
    x, y, names: tuple[str, str] = ("x", "y"), cast: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    a, b = _array(x, names[0], cast), _array(y, names[1], cast)
    if a.shape[1] != b.shape[1]:
        raise DataError(
            f"{names[1]}: got {b.shape[1]} features, expected {a.shape[1]} like {names[0]}"
        )
    return a, b
