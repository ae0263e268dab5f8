"""Exact nearest neighbours between two sets of samples (pixel or feature space).

Samples are rows of [N, F] arrays (images [N, H, W, C] are flattened), any real dtype, finite.

Distances (`nearest_neighbours`): l2 = ||x - y|| (pixel space: pGAN §6.5, DuMont et al. S.6);
cosine = 1 - x.y / (||x|| ||y||) (DuMont et al. S.6 on classifier features; scipy's `cosine`;
an all-zero row is refused). Computed on the default JAX device in [batch, batch] tiles in the
matmul form |x|^2 + |y|^2 - 2 x.y (centred data; unit rows for cosine), float32 at HIGHEST
precision. It shortlists k + 8 references per query, re-scored exactly in float64 from the
differences: a copy is at 0.0, and results equal brute force unless two distances differ by less
than float32 rounding. Ties go to the lower index. Memory: [batch, F] and [batch, batch] tiles.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxsyn.errors import ConfigError, DataError

METRICS = ("l2", "cosine")
# Not from a paper: 1024 x 1024 float32 distance tiles (4 MiB) keep memory bounded on any device.
BATCH = 1024
# Not from a paper: candidates re-scored exactly beyond k, guarding against float32 near-ties.
SHORTLIST = 8
# Measured (F = 16 .. 36864): float32 |x|^2 + |y|^2 - 2 x.y erred < 1.5 sqrt(F) u (|x|^2 + |y|^2).
ROUNDING = 4.0
# Not from a paper: float64 re-scoring works on at most this many array elements at a time.
PAIR_ELEMENTS = 1 << 22


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
