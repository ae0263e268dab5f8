"""Variational Gaussian mixtures for many 1-D columns at once, in JAX.

CTGAN's mode-specific normalisation fits one Bayesian Gaussian mixture per numeric column with a
Dirichlet-process (stick-breaking) weight prior: max 10 components, concentration 1e-3, and the
usual conjugate Normal-Wishart priors set from the data (mean prior = the column mean, mean
precision 1, degrees of freedom 1, covariance prior = the column variance). We run the same
variational EM (Bishop, PRML §10.2; Blei & Jordan 2006 for the stick-breaking weights) for every
column together: the data is one array [n_chunks, C, chunk] with a weight per value (its count,
0 for padding), the sufficient statistics are summed chunk by chunk under `lax.scan`,
and a fixed number of iterations runs under `jit` (the reference's fits mostly stop at their
100-iteration cap unconverged, so a fixed count is the closest equivalent, and it batches).

Repeated values are merged first (`compress`: a value and its count; exact for EM, and large for
rounded clinical columns). Initialisation: component centres at the weighted quantiles
(k + 1/2) / K of each column, a few Lloyd (k-means) iterations, then the first M-step from the
hard assignments, as the reference's k-means initialisation does. It uses no randomness, so a fit
is a function of the data alone.

Where this is not the reference: its k-means starts from random centres, ours from spread
quantiles, and after 100 iterations neither fit has converged (the stick-breaking prior goes on
emptying components for hundreds more), so the kept mode counts differ. On small tables ours
keeps more: 47 modes over WHAS500's seven numeric columns against the reference's 26, 52 against
36 on diabetes (experiments/tabular_real/README.md). Fitted longer, ours ends with 2-4 modes a
column, and that measured worse on the tuning table (quality 0.70 against 0.73), so the count
stays at 100. scikit-learn's variational EM started from our assignments gives our weights, so
the start is the whole difference: `MixtureConfig(init="kmeans++", init_seed=s,
n_kmeans_iter=300)` starts as the reference does (k-means++ seeds, Lloyd to convergence) and
keeps about its mode counts (whas500 27-30 against 26; the reference arm of
experiments/tabular_real uses it).

Every statistic is taken about the current component centre, so float32 sums stay accurate when a
narrow mode sits far from zero; callers standardise columns first (`fit` expects roughly unit
scale, which also makes `reg_covar` scale-free).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma
from tqdm.auto import tqdm

from jaxsyn.errors import ConfigError

_LARGE_ROWS = 1 << 20  # distinct values per column above which the fit shows progress
_EPS = 10 * float(np.finfo(np.float32).eps)  # keeps an empty component's count positive


@dataclasses.dataclass(frozen=True, kw_only=True)
class MixtureConfig:
    n_components: int = 10  # ctgan DataTransformer max_clusters
    weight_threshold: float = 0.005  # ctgan DataTransformer weight_threshold
    weight_concentration_prior: float = 1e-3  # RDT ClusterBasedNormalizer, dirichlet_process
    mean_precision_prior: float = 1.0  # sklearn BayesianGaussianMixture default
    degrees_of_freedom_prior: float = 1.0  # sklearn default: n_features
    reg_covar: float = 1e-6  # sklearn default (here in standardised units)
    n_iter: int = 100  # sklearn max_iter, which the reference's fits mostly hit
    n_kmeans_iter: int = 10  # ours: Lloyd steps after the start
    chunk_rows: int = 8192  # ours: [C, K, chunk] temporaries stay in cache (fastest on CPU)
    # The start: "quantiles" (ours, no randomness) or "kmeans++" (the reference's: scikit-learn's
    # k-means, k-means++ seeding drawn with `init_seed`; give it n_kmeans_iter ~300, as its Lloyd
    # runs to convergence).
    init: str = "quantiles"
    init_seed: int = 0

    ADDED_FIELDS = {"init": "quantiles", "init_seed": 0}  # runs saved before these fields

    def __post_init__(self):
        if self.init not in ("quantiles", "kmeans++"):
            raise ConfigError(
                f"MixtureConfig.init is {self.init!r}; expected 'quantiles' or 'kmeans++'"
            )
        if self.n_components < 1 or self.n_iter < 1 or self.chunk_rows < 1:
            raise ConfigError(
                f"n_components {self.n_components}, n_iter {self.n_iter}, chunk_rows"
                f" {self.chunk_rows}; expected each >= 1"
            )
        if not 0.0 <= self.weight_threshold < 1.0 / self.n_components:
            raise ConfigError(
                f"weight_threshold {self.weight_threshold}; expected in [0, 1/n_components)"
            )


class Mixture(NamedTuple):
    """Variational posterior of C mixtures with K components; every field is [C, K]."""

    alpha: jax.Array  # stick-breaking Beta posterior, first parameter
    beta: jax.Array  # stick-breaking Beta posterior, second parameter
    mean_precision: jax.Array  # beta_k of the Normal-Wishart posterior
    means: jax.Array  # m_k
    dof: jax.Array  # nu_k
    covariances: jax.Array  # W_k^-1 / nu_k, the posterior-mean covariance the transform uses


class Prior(NamedTuple):
    mean: jax.Array  # [C] the weighted column mean
    covariance: jax.Array  # [C] the weighted column variance (ddof 1)


def expected_log_weights(mix: Mixture) -> jax.Array:
    """E[ln pi_k] under the stick-breaking posterior, [C, K]."""
    total = digamma(mix.alpha + mix.beta)
    rest = jnp.cumsum(digamma(mix.beta) - total, axis=-1)
    rest = jnp.concatenate([jnp.zeros_like(rest[..., :1]), rest[..., :-1]], axis=-1)
    return digamma(mix.alpha) - total + rest


def weights(mix: Mixture) -> jax.Array:
    """Posterior-mean mixing weights [C, K] (sum to 1 per column)."""
    stick = mix.alpha / (mix.alpha + mix.beta)
    left = jnp.cumprod(mix.beta / (mix.alpha + mix.beta), axis=-1)
    left = jnp.concatenate([jnp.ones_like(left[..., :1]), left[..., :-1]], axis=-1)
    w = stick * left
    return w / w.sum(-1, keepdims=True)


def log_prob(x: jax.Array, mix: Mixture) -> jax.Array:
    """E_q[ln N(x | mu_k, lambda_k)] for x [C, m]: [C, K, m] (Bishop eq. 10.64-10.65, 1-D).

    K sits before the rows so the row axis stays innermost and contiguous (vectorises on CPU).
    """
    d = x[:, None, :] - mix.means[..., None]
    log_lambda = math.log(2.0) + digamma(0.5 * mix.dof)
    const = 0.5 * (log_lambda - 1.0 / mix.mean_precision - jnp.log(mix.covariances * mix.dof))
    return (const - 0.5 * math.log(2 * math.pi))[..., None] - 0.5 * d * d / mix.covariances[
        ..., None
    ]


def responsibilities(x: jax.Array, mix: Mixture) -> jax.Array:
    """Variational E-step responsibilities [C, K, m] for x [C, m] (sklearn's predict_proba)."""
    return jax.nn.softmax(expected_log_weights(mix)[..., None] + log_prob(x, mix), axis=1)


def _stats(x, w, centre, resp):
    """Weighted count, first and second moments about `centre`, each [C, K]."""
    r = resp * w[:, None, :]
    d = x[:, None, :] - centre[..., None]
    rd = r * d
    return r.sum(-1), rd.sum(-1), (rd * d).sum(-1)


def _scan_stats(x, w, centre, resp_fn):
    """Sum `_stats` over the chunks of x, w [n_chunks, C, chunk]."""

    def body(acc, xw):
        xc, wc = xw
        return jax.tree.map(jnp.add, acc, _stats(xc, wc, centre, resp_fn(xc))), None

    zeros = (jnp.zeros_like(centre),) * 3
    return jax.lax.scan(body, zeros, (x, w))[0]


def _m_step(stats, centre, prior: Prior, config: MixtureConfig) -> Mixture:
    """Posterior update from statistics about `centre` (Bishop eq. 10.58-10.63, 1-D)."""
    s0, s1, s2 = stats
    nk = s0 + _EPS
    xbar = centre + s1 / nk
    sk = jnp.maximum(s2 / nk - (s1 / nk) ** 2, 0.0) + config.reg_covar
    later = jnp.cumsum(nk[:, ::-1], axis=-1)[:, ::-1] - nk  # sum over components after k
    b0, m0 = config.mean_precision_prior, prior.mean[:, None]
    mean_precision = b0 + nk
    dof = config.degrees_of_freedom_prior + nk
    spread = prior.covariance[:, None] + nk * sk + nk * b0 / mean_precision * (xbar - m0) ** 2
    return Mixture(
        alpha=1.0 + nk,
        beta=config.weight_concentration_prior + later,
        mean_precision=mean_precision,
        means=(b0 * m0 + nk * xbar) / mean_precision,
        dof=dof,
        covariances=spread / dof,
    )


def _hard(centre):
    """One-hot nearest-centre assignment, as k-means labels."""

    def assign(xc):
        nearest = jnp.argmin(jnp.abs(xc[:, None, :] - centre[..., None]), axis=1)
        return jax.nn.one_hot(nearest, centre.shape[-1], axis=1)

    return assign


def _initialise(x, w, centre, prior: Prior, config: MixtureConfig) -> Mixture:
    """Lloyd iterations from `centre` [C, K], then the M-step of the hard assignments."""

    def lloyd(_, c):
        s0, s1, _ = _scan_stats(x, w, c, _hard(c))
        return c + jnp.where(s0 > 0, s1 / jnp.maximum(s0, 1.0), 0.0)

    centre = jax.lax.fori_loop(0, config.n_kmeans_iter, lloyd, centre)
    return _m_step(_scan_stats(x, w, centre, _hard(centre)), centre, prior, config)


def _iterate(mix: Mixture, x, w, prior: Prior, config: MixtureConfig, n: int) -> Mixture:
    """n variational EM iterations."""

    def step(_, m):
        stats = _scan_stats(x, w, m.means, lambda xc: responsibilities(xc, m))
        return _m_step(stats, m.means, prior, config)

    return jax.lax.fori_loop(0, n, step, mix)


_initialise_jit = jax.jit(_initialise, static_argnames="config")
_iterate_jit = jax.jit(_iterate, static_argnames=("config", "n"))


@functools.partial(jax.jit, static_argnames="config")
def _fit_small(x, w, centre, prior: Prior, config: MixtureConfig) -> Mixture:
    """The whole fit in one call (one compile), for data that needs no progress bar."""
    return _iterate(_initialise(x, w, centre, prior, config), x, w, prior, config, config.n_iter)


def kmeanspp_centres(values: np.ndarray, counts: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """[C, K] k-means++ seeds (Arthur & Vassilvitskii 2007) of `values` [C, U] weighted by
    `counts` [C, U]: the first drawn with probability proportional to its count, each next one to
    count x squared distance to the nearest seed so far (the reference's k-means start; not its
    random stream: scikit-learn also tries 2 + log k candidates a seed and keeps the best)."""
    out = np.zeros((values.shape[0], k), values.dtype)
    for c, (v, w) in enumerate(zip(values, counts.astype(float), strict=True)):
        rng = np.random.default_rng((seed, c))
        centres = [v[rng.choice(len(v), p=w / w.sum())]] if w.sum() > 0 else [v[0]]
        for _ in range(k - 1):
            p = w * np.min((v[:, None] - np.array(centres)[None]) ** 2, axis=1)
            centres.append(v[rng.choice(len(v), p=p / p.sum())] if p.sum() > 0 else centres[-1])
        out[c] = centres
    return out


def quantile_centres(values: np.ndarray, counts: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """[C, K] weighted quantiles (k + 1/2) / K of sorted `values` [C, U] with `counts` [C, U]
    (`seed` unused: this start has no randomness).

    One searchsorted for all columns: each column's cumulative count is offset past the last.
    """
    c, u = values.shape
    mass = np.cumsum(counts, axis=1)
    total = mass[:, -1:]
    lift = np.arange(c)[:, None] * (total.max() + 1.0)
    target = (np.arange(k) + 0.5) / k * total + lift
    at = np.searchsorted((mass + lift).ravel(), target.ravel()).reshape(c, k) % max(u, 1)
    return np.take_along_axis(values, at, axis=1)


def _prior(x, w) -> Prior:
    """Data-dependent priors (sklearn defaults): weighted mean and ddof-1 variance per column."""
    n = w.sum((0, 2))
    mean = (x * w).sum((0, 2)) / jnp.maximum(n, 1.0)
    ss = (w * (x - mean[None, :, None]) ** 2).sum((0, 2))
    return Prior(mean=mean, covariance=jnp.where(n > 1, ss / jnp.maximum(n - 1, 1.0), 1.0))


def compress(values: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[C, N] values and present mask -> [C, U] sorted distinct values and their counts.

    Exact for EM (a repeated value is one value with a count), and large for clinical columns,
    whose values are rounded (age: ~60 distinct values in 200k rows). Missing values drop out; a
    column's unused slots get value 0 and count 0. Vectorised over columns.
    """
    c, n = values.shape
    v = np.sort(np.where(present > 0, values, np.inf), axis=1)  # missing sort last
    new = np.ones((c, n), bool)
    new[:, 1:] = v[:, 1:] != v[:, :-1]
    new &= np.isfinite(v)  # missing values start no group
    group = np.cumsum(new, axis=1) - 1
    u = max(int(group[:, -1].max()) + 1, 1)
    flat = (np.arange(c)[:, None] * u + group).ravel()
    counts = np.bincount(flat, weights=np.isfinite(v).ravel(), minlength=c * u).reshape(c, u)
    out = np.zeros(c * u)
    out[flat[new.ravel()]] = v[new]
    return out.reshape(c, u), counts


def chunk_rows(values: np.ndarray, weight: np.ndarray, chunk: int) -> tuple[np.ndarray, ...]:
    """[C, N] values and weights -> float32 [n_chunks, C, chunk], zero-weight padded.

    A table smaller than one chunk is padded to a power of two, so few shapes get compiled."""
    c, n = values.shape
    chunk = min(chunk, 1 << max(8, (max(n, 1) - 1).bit_length()))
    n_chunks = -(-n // chunk)
    out = []
    for a in (values, weight):
        padded = np.zeros((c, n_chunks * chunk), np.float32)
        padded[:, :n] = a
        out.append(padded.reshape(c, n_chunks, chunk).transpose(1, 0, 2))
    return tuple(out)


def fit(
    values: np.ndarray,
    weight: np.ndarray,
    config: MixtureConfig = MixtureConfig(),
    *,
    progress: bool = True,
) -> Mixture:
    """Fit C mixtures to the rows of `values` [C, N] (weight [C, N]: 1 present, 0 missing).

    Columns should be standardised. Returns the posterior as numpy arrays [C, K]. A progress bar
    over iterations appears when over a million distinct values remain (`progress=False` hides it).
    """
    distinct, counts = compress(values, weight)
    start = quantile_centres if config.init == "quantiles" else kmeanspp_centres
    centre = jnp.asarray(
        start(distinct, counts, config.n_components, config.init_seed), jnp.float32
    )
    x, w = map(jnp.asarray, chunk_rows(distinct, counts, config.chunk_rows))
    prior = _prior(x, w)
    config = dataclasses.replace(config, init="quantiles", init_seed=0)  # started: one compile
    if x.shape[0] * x.shape[2] < _LARGE_ROWS:
        return Mixture(*(np.asarray(a) for a in _fit_small(x, w, centre, prior, config)))
    mix = _initialise_jit(x, w, centre, prior, config)
    with tqdm(total=config.n_iter, desc="mixture fit", unit="it", disable=not progress) as bar:
        for done in range(0, config.n_iter, 10):  # blocks of 10 iterations: progress, few calls
            n = min(10, config.n_iter - done)
            mix = _iterate_jit(mix, x, w, prior, config, n)
            bar.update(n)
    return Mixture(*(np.asarray(a) for a in mix))
