"""Tabular fidelity: the scores of SDMetrics' single-table QualityReport, re-implemented.

Clean-room, vectorised numpy/pandas code written from the definitions in SDMetrics (MIT) 0.32;
`tests/eval/test_tabular_metrics.py` checks every number against the installed sdmetrics.

Column Shapes (one score per column; the property is their mean)
  numeric (integer, float, datetime)  KSComplement = 1 - D, D the two-sample Kolmogorov-Smirnov
                                      statistic; missing values dropped, float columns rounded to
                                      14 decimals first (sdmetrics: `sys.float_info.dig - 1`).
  discrete (categorical, binary)      TVComplement = 1 - 1/2 sum_c |p_real(c) - p_syn(c)|; missing
                                      values dropped; a category only the synthetic table has
                                      gets a real pseudo-count of 1e-6 (sdmetrics'
                                      `get_frequencies`), so it is counted, not divided by zero.

Column Pair Trends (one score per pair of columns)
  numeric x numeric    CorrelationSimilarity = 1 - |rho_real - rho_syn| / 2, rho the Pearson
                       correlation over rows where both values are present. Undefined (a constant
                       column, < 2 rows) -> NaN, left out of every mean.
  any other pair       ContingencySimilarity = 1 - 1/2 sum_ab |P_real(a, b) - P_syn(a, b)|, a missing
                       value being a category of its own. A numeric column is first cut into the
                       bins of `np.histogram_bin_edges` (10 equal-width bins) - computed on the real
                       table for the real values and on the synthetic table for the synthetic ones,
                       exactly as sdmetrics' ColumnPairTrends does - and labelled by `np.digitize`,
                       which puts the column maximum (and any missing value) in an 11th label.

Which pairs are counted. Since sdmetrics 0.27 the QualityReport averages only the pairs whose
*real* data show a relationship worth reproducing: a numeric pair counts when |rho_real| > 0.5
(strictly), any other pair when the real Cramér's V (bias-uncorrected chi-squared, the same
contingency table as above) > 0.3 (strictly); a pair whose real association is undefined (a
column with a single value) never counts. Pairs without a real relationship otherwise pad the
average with near-1 scores that any independent-columns sampler earns. Every published CTGAN-era
number, however, averaged all pairs, so both are reported: pass `correlation_threshold=0` (or None)
and `association_threshold=0` to count every pair; `quality` returns both scores. Unlike sdmetrics'
details table, `column_pair_trends` keeps the score of a pair below the threshold and marks the
counted ones in `meets_threshold`.

Overall quality is the nan-mean of the two property scores (a one-column table has no pairs).

Large tables. sdmetrics computes KS, TV and Pearson on every row and subsamples only the
contingency pairs, to 50,000 rows of each table with more (unseeded, after binning, a new sample per
pair). Here the subsample is drawn once per table from `seed`, so results are reproducible, and two
tables of equal length keep the same row positions, so a table compared with itself still scores 1
(independent samples would cost it about 0.01); the bins are still computed on all rows, the real
Cramér's V on the subsample, as sdmetrics does.

`correlation_matrices` and `correlation_heatmaps` show the same associations for every pair:
Pearson for numeric pairs, Cramér's V (binned as above, all rows) for pairs involving a discrete
column.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from jaxsyn.errors import ConfigError, DataError
from jaxsyn.files import atomic_path

# jaxsyn's tabular schema kinds (jaxsyn.data.tabular.schema.KINDS), repeated to keep imports light.
DISCRETE = ("categorical", "binary")
NUMERIC = ("integer", "float", "datetime")
KINDS = DISCRETE + NUMERIC

# sdmetrics.reports.utils.DEFAULT_REAL_CORRELATION_THRESHOLD (0.27 and later): |rho_real| > 0.5.
CORRELATION_THRESHOLD = 0.5
# sdmetrics.reports.utils.DEFAULT_REAL_ASSOCIATION_THRESHOLD (0.27 and later): Cramér's V > 0.3.
ASSOCIATION_THRESHOLD = 0.3
# sdmetrics.reports.utils.DEFAULT_NUM_ROWS_SUBSAMPLE: contingency pairs use at most this many rows.
MAX_ROWS = 50_000
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
# Public API


def column_shapes(
    real: pd.DataFrame, synthetic: pd.DataFrame, kinds: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Per-column shape similarity: KSComplement (numeric) or TVComplement (discrete).

    Returns one row per column, in `real`'s column order, with columns `column`, `metric`
    ("KSComplement" or "TVComplement") and `score` (in [0, 1]; NaN when a column has no value in
    one of the tables).
    """
    return _column_shapes(_prepare(real, synthetic, kinds))


def _column_shapes(columns: list[_Column]) -> pd.DataFrame:
    rows = []
    for c in columns:
        if c.numeric:
            score = _ks_complement(c.real, c.synthetic, *c.round_ks)
            rows.append((c.name, "KSComplement", score))
        else:
            rows.append((c.name, "TVComplement", _tv_complement(c.real, c.synthetic)))
    return pd.DataFrame(rows, columns=["column", "metric", "score"]).astype({"score": float})


def column_pair_trends(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    kinds: Mapping[str, str] | None = None,
    *,
    correlation_threshold: float | None = CORRELATION_THRESHOLD,
    association_threshold: float | None = ASSOCIATION_THRESHOLD,
    max_rows: int | None = MAX_ROWS,
    seed: int = 0,
) -> pd.DataFrame:
    """Per-pair trend similarity: CorrelationSimilarity (numeric pairs), else ContingencySimilarity.

    Returns one row per pair of columns (in `itertools.combinations` order of `real`'s columns)
    with `column_1`, `column_2`, `metric`, `score` (NaN when undefined), `real_correlation`
    (Pearson, numeric pairs; else NaN), `real_association` (Cramér's V, other pairs; else NaN) and
    `meets_threshold`: whether the pair counts in the thresholded property score (|rho_real| >
    `correlation_threshold`, V_real > `association_threshold`; a threshold of 0 or None counts
    every pair). A pair with an undefined score is never counted. `max_rows`: contingency pairs
    use a `seed`-ed subsample of at most this many rows of each table (None: all rows).
    """
    return _column_pair_trends(
        _prepare(real, synthetic, kinds),
        correlation_threshold,
        association_threshold,
        max_rows,
        seed,
    )


def _column_pair_trends(
    columns: list[_Column],
    correlation_threshold: float | None,
    association_threshold: float | None,
    max_rows: int | None,
    seed: int,
) -> pd.DataFrame:
    correlation_threshold = _threshold(correlation_threshold, "correlation_threshold")
    association_threshold = _threshold(association_threshold, "association_threshold")
    if max_rows is not None and (isinstance(max_rows, bool) or int(max_rows) < 1):
        raise ConfigError(f"max_rows: got {max_rows!r}, expected a positive integer or None")
    labels_real, labels_syn = _subsample(
        [c.labels_real for c in columns], [c.labels_synthetic for c in columns], max_rows, seed
    )
    rho_real = _pearson_matrix([c.real if c.numeric else None for c in columns])
    rho_syn = _pearson_matrix([c.synthetic if c.numeric else None for c in columns])
    rows = []
    for (i, a), (j, b) in itertools.combinations(enumerate(columns), 2):
        if a.numeric and b.numeric:
            score = 1.0 - abs(rho_real[i, j] - rho_syn[i, j]) / 2.0
            meets = correlation_threshold == 0 or bool(abs(rho_real[i, j]) > correlation_threshold)
            rows.append(
                (a.name, b.name, "CorrelationSimilarity", score, rho_real[i, j], np.nan, meets)
            )
        else:
            ar, br, as_, bs = labels_real[i], labels_real[j], labels_syn[i], labels_syn[j]
            score = _contingency_similarity(ar, br, as_, bs)
            v_real = _cramers_v(ar, br)
            meets = association_threshold == 0 or bool(v_real > association_threshold)
            rows.append((a.name, b.name, "ContingencySimilarity", score, np.nan, v_real, meets))
    names = ["column_1", "column_2", "metric", "score", "real_correlation", "real_association"]
    table = pd.DataFrame(rows, columns=[*names, "meets_threshold"])
    return table.astype(
        {
            "score": float,
            "real_correlation": float,
            "real_association": float,
            "meets_threshold": bool,
        }
    )


def quality(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    kinds: Mapping[str, str] | None = None,
    *,
    correlation_threshold: float | None = CORRELATION_THRESHOLD,
    association_threshold: float | None = ASSOCIATION_THRESHOLD,
    max_rows: int | None = MAX_ROWS,
    seed: int = 0,
) -> dict:
    """The QualityReport's scores, thresholded as sdmetrics >= 0.27 and over all pairs.

    Returns `column_shapes` (mean column score), `column_pair_trends` (mean score of the pairs that
    meet the thresholds; NaN if none does), `column_pair_trends_all_pairs` (mean over every pair,
    the pre-0.27 score), `overall` and `overall_all_pairs` (nan-mean of shapes and the matching pair
    score), `pairs_counted` (pairs meeting the thresholds with a defined score) and `pairs_total`.
    """
    columns = _prepare(real, synthetic, kinds)
    shapes = _column_shapes(columns)
    pairs = _column_pair_trends(
        columns, correlation_threshold, association_threshold, max_rows, seed
    )
    counted = pairs["meets_threshold"].to_numpy() & np.isfinite(pairs["score"].to_numpy())
    shape_score = _nanmean(shapes["score"].to_numpy())
    trends = _nanmean(pairs["score"].to_numpy()[counted])
    trends_all = _nanmean(pairs["score"].to_numpy())
    return {
        "column_shapes": shape_score,
        "column_pair_trends": trends,
        "column_pair_trends_all_pairs": trends_all,
        "overall": _nanmean(np.array([shape_score, trends])),
        "overall_all_pairs": _nanmean(np.array([shape_score, trends_all])),
        "pairs_counted": int(counted.sum()),
        "pairs_total": len(pairs),
    }


def correlation_matrices(
    real: pd.DataFrame, synthetic: pd.DataFrame, kinds: Mapping[str, str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pairwise association matrices of the real and of the synthetic table (columns x columns).

    Pearson's rho (in [-1, 1], rows where both are present) for two numeric columns; Cramér's V (in
    [0, 1]) for a pair involving a discrete column, a numeric one cut into the 10 histogram bins
    the contingency score uses and a missing value counted as a category. 1 on the diagonal; NaN
    where undefined (a column with a single value, its diagonal included). No subsampling.
    """
    columns = _prepare(real, synthetic, kinds)
    names = [c.name for c in columns]
    out = []
    for side in ("real", "synthetic"):
        m = _pearson_matrix([getattr(c, side) if c.numeric else None for c in columns])
        for (i, a), (j, b) in itertools.combinations(enumerate(columns), 2):
            if not (a.numeric and b.numeric):
                v = _cramers_v(getattr(a, f"labels_{side}"), getattr(b, f"labels_{side}"))
                m[i, j] = m[j, i] = v
        np.fill_diagonal(m, [1.0 if _varies(c, side) else np.nan for c in columns])
        out.append(pd.DataFrame(m, index=names, columns=names))
    return out[0], out[1]


def correlation_heatmaps(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    path: str | os.PathLike,
    kinds: Mapping[str, str] | None = None,
    *,
    title: str | None = None,
) -> Path:
    """Write one PNG with three heat maps: real, synthetic and |real - synthetic| associations.

    The matrices are `correlation_matrices`; real and synthetic share a diverging -1..1 scale, the
    difference a 0..1 one (a larger difference, possible for Pearson, saturates). Undefined cells
    are grey. Written atomically; returns `path`.
    """
    import matplotlib as mpl  # here, so importing this module stays light
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg, no pyplot global state
    from matplotlib.figure import Figure

    m_real, m_syn = correlation_matrices(real, synthetic, kinds)
    diff = (m_real - m_syn).abs()
    names = list(m_real.columns)
    side = max(3.5, 0.32 * len(names) + 2.0)  # inches per panel: room for the column names
    fig = Figure(figsize=(3 * side + 1.5, side + (0.5 if title else 0.0)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    panels = (
        (m_real, "Real", "coolwarm", -1.0, 1.0, "Pearson ρ / Cramér's V"),
        (m_syn, "Synthetic", "coolwarm", -1.0, 1.0, "Pearson ρ / Cramér's V"),
        (diff, "|Real - Synthetic|", "Reds", 0.0, 1.0, "absolute difference"),
    )
    for ax, (matrix, label, cmap_name, lo, hi, bar_label) in zip(axes, panels, strict=True):
        cmap = mpl.colormaps[cmap_name].with_extremes(bad="lightgrey")
        image = ax.imshow(np.ma.masked_invalid(matrix.to_numpy()), cmap=cmap, vmin=lo, vmax=hi)
        ax.set_title(label)
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        fig.colorbar(image, ax=ax, shrink=0.8, label=bar_label)
    if title:
        fig.suptitle(title)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


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
