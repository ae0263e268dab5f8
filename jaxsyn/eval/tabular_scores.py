"""Column preparation and the per-column / per-pair scores behind `jaxsyn.eval.tabular`.

The definitions (sdmetrics' KSComplement, TVComplement, CorrelationSimilarity,
ContingencySimilarity and the real Cramér's V that decides which pairs count) are documented in
`jaxsyn.eval.tabular`; here they are computed on prepared columns (`_prepare`), vectorised.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from jaxsyn.errors import ConfigError, DataError

# jaxsyn's tabular schema kinds (jaxsyn.data.tabular.schema.KINDS), repeated to keep imports light.
DISCRETE = ("categorical", "binary")
NUMERIC = ("integer", "float", "datetime")
KINDS = DISCRETE + NUMERIC
# ColumnPairTrends._discretize_column calls np.histogram_bin_edges with its default, bins=10.
N_BINS = 10
# KSComplement.MAX_DECIMALS = sys.float_info.dig - 1: float samples are rounded to this first.
KS_DECIMALS = 14
# Not sdmetrics: label-pair tables up to this many cells are counted densely (bincount), larger ones
# (high-cardinality categoricals) are first compressed to the label pairs present.
DENSE_CELLS = 1 << 22
# sdmetrics.utils.get_frequencies: real pseudo-count of a category only the synthetic table has.
UNSEEN_COUNT = 1e-6

# ------------------------------------------------------------------------------------------------
# Preparation


@dataclass(frozen=True)
class _Column:
    name: str
    numeric: bool
    round_ks: tuple[bool, bool]  # float dtype (real, synthetic): KSComplement rounds it
    # numeric: float64, NaN where missing; discrete: int64 codes shared by both tables, -1 missing
    real: np.ndarray
    synthetic: np.ndarray
    labels_real: np.ndarray  # non-negative int64 contingency labels (binned numeric; NaN a label)
    labels_synthetic: np.ndarray


def _prepare(
    real: pd.DataFrame, synthetic: pd.DataFrame, kinds: Mapping[str, str] | None
) -> list[_Column]:
    for name, table in (("real", real), ("synthetic", synthetic)):
        if not isinstance(table, pd.DataFrame):
            raise DataError(
                f"{name} table: got {type(table).__name__}, expected a pandas DataFrame"
            )
        if table.columns.duplicated().any():
            dup = sorted(map(str, table.columns[table.columns.duplicated()]))
            raise DataError(f"{name} table: duplicate column(s) {dup}, expected unique names")
        if len(table.columns) == 0 or len(table) == 0:
            raise DataError(
                f"{name} table is empty ({len(table)} rows, {len(table.columns)} columns), "
                "expected at least one row and one column"
            )
    missing = [c for c in real.columns if c not in synthetic.columns]
    extra = [c for c in synthetic.columns if c not in real.columns]
    if missing or extra:
        raise DataError(
            "real and synthetic tables have different columns: "
            f"missing from synthetic {missing}, only in synthetic {extra}; expected the same columns"
        )
    out = []
    for name in real.columns:
        kind = _kind(name, real[name], kinds)
        r, s = real[name], synthetic[name]
        if kind in NUMERIC:
            xr, xs = _to_float(name, r, kind), _to_float(name, s, kind)
            out.append(
                _Column(
                    name=name,
                    numeric=True,
                    round_ks=(_rounds(r, kind), _rounds(s, kind)),
                    real=xr,
                    synthetic=xs,
                    labels_real=_bin(xr),
                    labels_synthetic=_bin(xs),
                )
            )
        else:
            codes, uniques = pd.factorize(pd.concat([r, s], ignore_index=True).astype(object))
            codes = codes.astype(np.int64)
            labels = np.where(codes < 0, len(uniques), codes)  # a missing value is a category
            n = len(r)
            out.append(
                _Column(name, False, (False, False), codes[:n], codes[n:], labels[:n], labels[n:])
            )
    return out


def _kind(name, series: pd.Series, kinds: Mapping[str, str] | None) -> str:
    if kinds is not None:
        if name not in kinds:
            raise DataError(f"column {name!r} has no entry in kinds, expected one of {KINDS}")
        if kinds[name] not in KINDS:
            raise DataError(f"column {name!r}: kind {kinds[name]!r}, expected one of {KINDS}")
        return kinds[name]
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "binary"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    return "categorical"  # object, category, string and anything else: compared by value


def _to_float(name, series: pd.Series, kind: str) -> np.ndarray:
    """A numeric-kind column as float64 with NaN for missing (datetime: ns since the epoch)."""
    try:
        if kind == "datetime":
            t = series if pd.api.types.is_datetime64_any_dtype(series) else pd.to_datetime(series)
            if isinstance(t.dtype, pd.DatetimeTZDtype):
                t = t.dt.tz_convert("UTC").dt.tz_localize(None)
            t = t.astype("datetime64[ns]")
            x = t.to_numpy().astype(np.int64).astype(np.float64)
            x[t.isna().to_numpy()] = np.nan
        else:
            x = pd.to_numeric(series).to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError) as e:
        raise DataError(
            f"column {name!r} (kind {kind!r}): cannot read it as numbers ({e}); expected {kind} "
            "values, or pass kinds to treat it as categorical"
        ) from None
    if np.isinf(x).any():
        raise DataError(f"column {name!r} holds infinite values, expected finite numbers or NaN")
    return x


def _varies(column: _Column, side: str) -> bool:
    """Whether a column holds two different values: else even its self-association is undefined."""
    if column.numeric:
        x = getattr(column, side)
        x = x[~np.isnan(x)]
        return len(x) > 1 and bool((x != x[0]).any())
    labels = getattr(column, f"labels_{side}")
    return bool((labels != labels[0]).any())


def _rounds(series: pd.Series, kind: str) -> bool:
    """KSComplement rounds a float column to 14 decimals (a no-op on integers and datetimes)."""
    return kind != "datetime" and pd.api.types.is_float_dtype(series)


def _bin(x: np.ndarray) -> np.ndarray:
    """ColumnPairTrends' labels: 10 histogram bins of this table's values; max and NaN -> 11."""
    edges = np.histogram_bin_edges(x[~np.isnan(x)], bins=N_BINS)
    return np.digitize(x, edges).astype(np.int64)


def _subsample(real: list, synthetic: list, max_rows: int | None, seed: int) -> tuple[list, list]:
    out = []
    for arrays in (real, synthetic):
        n = len(arrays[0])
        if max_rows is None or n <= max_rows:
            out.append(arrays)
        else:  # the same generator for both: equally long tables keep the same row positions
            rng = np.random.default_rng(seed)
            keep = np.sort(rng.choice(n, size=int(max_rows), replace=False))
            out.append([a[keep] for a in arrays])
    return out[0], out[1]


def _threshold(value: float | None, name: str) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(
            f"{name}: got {value!r}, expected a number in [0, 1] (0 or None: all pairs)"
        )
    return float(value)


# ------------------------------------------------------------------------------------------------
# Metrics


def _ks_complement(
    real: np.ndarray, synthetic: np.ndarray, round_real: bool, round_syn: bool
) -> float:
    x, y = real[~np.isnan(real)], synthetic[~np.isnan(synthetic)]
    if len(x) == 0 or len(y) == 0:
        return math.nan  # sdmetrics: ks_2samp refuses empty data -> NaN
    if round_real:
        x = np.round(x, KS_DECIMALS)
    if round_syn:
        y = np.round(y, KS_DECIMALS)
    x, y = np.sort(x), np.sort(y)
    both = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, both, side="right") / len(x)
    cdf_y = np.searchsorted(y, both, side="right") / len(y)
    return float(1.0 - np.max(np.abs(cdf_x - cdf_y)))


def _tv_complement(real: np.ndarray, synthetic: np.ndarray) -> float:
    x, y = real[real >= 0], synthetic[synthetic >= 0]
    if len(x) == 0 or len(y) == 0:
        return math.nan  # sdmetrics raises IncomputableMetricError; the report records NaN
    k = int(max(x.max(), y.max())) + 1
    count_x = np.bincount(x, minlength=k).astype(np.float64)
    count_y = np.bincount(y, minlength=k).astype(np.float64)
    count_x[(count_x == 0) & (count_y > 0)] = UNSEEN_COUNT
    total_variation = np.abs(count_y / count_y.sum() - count_x / count_x.sum()).sum()
    return float(1.0 - 0.5 * total_variation)


def _standardise(x: np.ndarray) -> np.ndarray:
    """(x - mean) / ||x - mean||, scipy.stats.pearsonr's form; NaN for < 2 rows or a constant."""
    if len(x) < 2 or (x == x[0]).all():
        return np.full(len(x), np.nan)  # pearsonr: constant input -> NaN; < 2 rows -> error
    xm = x - x.mean()
    return xm / np.linalg.norm(xm)


def _pearson_matrix(xs: list[np.ndarray | None]) -> np.ndarray:
    """Pearson's rho of every pair of the given columns (None: not numeric -> NaN).

    Rows where both values are present. Columns without missing values are standardised once and
    correlated by one matrix product; a pair with a missing value is computed on its own rows.
    """
    p = len(xs)
    out = np.full((p, p), np.nan)
    numeric = [i for i, x in enumerate(xs) if x is not None]
    complete = [i for i in numeric if not np.isnan(xs[i]).any()]
    if complete:
        z = np.stack([_standardise(xs[i]) for i in complete], axis=1)
        out[np.ix_(complete, complete)] = z.T @ z
    full = set(complete)
    for i, j in itertools.combinations(numeric, 2):
        if i not in full or j not in full:
            keep = ~(np.isnan(xs[i]) | np.isnan(xs[j]))
            out[i, j] = out[j, i] = _standardise(xs[i][keep]) @ _standardise(xs[j][keep])
    return np.clip(out, -1.0, 1.0)


def _crosstab(a: np.ndarray, b: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Counts of the label pairs (a, b) as a dense table of `shape`."""
    return np.bincount(a * shape[1] + b, minlength=shape[0] * shape[1]).reshape(shape)


def _contingency_similarity(ar, br, as_, bs) -> float:
    """1 - total variation distance of the joint label distributions (labels are small ints)."""
    shape = (int(max(ar.max(), as_.max())) + 1, int(max(br.max(), bs.max())) + 1)
    if shape[0] * shape[1] > DENSE_CELLS:  # many categories: compress to the labels present
        _, inverse = np.unique(
            np.concatenate([ar * shape[1] + br, as_ * shape[1] + bs]), return_inverse=True
        )
        size = int(inverse.max()) + 1
        count_r = np.bincount(inverse[: len(ar)], minlength=size)
        count_s = np.bincount(inverse[len(ar) :], minlength=size)
    else:
        count_r, count_s = _crosstab(ar, br, shape), _crosstab(as_, bs, shape)
    return float(1.0 - np.abs(count_r / len(ar) - count_s / len(as_)).sum() / 2.0)


def _compact(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber non-negative labels 0..k-1 in order, dropping the unused ones; and k."""
    present = np.bincount(labels) > 0
    return (np.cumsum(present) - 1)[labels], int(present.sum())


def _cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    """Cramér's V of two label arrays (scipy.stats.contingency.association, no Yates correction)."""
    (a, rows), (b, cols) = _compact(a), _compact(b)
    if min(rows, cols) < 2:
        return math.nan  # sdmetrics: no association for a single-valued column -> never counted
    n = len(a)
    row_sum, col_sum = np.bincount(a, minlength=rows), np.bincount(b, minlength=cols)
    if rows * cols <= DENSE_CELLS:  # every cell, as scipy sums them
        expected = np.outer(row_sum, col_sum) / n
        chi2 = float(((_crosstab(a, b, (rows, cols)) - expected) ** 2 / expected).sum())
    else:  # sum (O - E)^2 / E = sum O^2 / E - n, over the observed cells only
        cells, observed = np.unique(a * cols + b, return_counts=True)
        expected = row_sum[cells // cols] * col_sum[cells % cols] / n
        chi2 = max(float((observed.astype(np.float64) ** 2 / expected).sum()) - n, 0.0)
    return math.sqrt(chi2 / n / (min(rows, cols) - 1))


def _nanmean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else math.nan
