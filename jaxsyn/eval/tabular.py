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
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from jaxsyn.errors import ConfigError
from jaxsyn.eval.tabular_scores import (  # noqa: F401  DISCRETE, NUMERIC, KINDS: re-exported
    DENSE_CELLS,
    DISCRETE,
    KINDS,
    KS_DECIMALS,
    N_BINS,
    NUMERIC,
    UNSEEN_COUNT,
    _Column,
    _contingency_similarity,
    _cramers_v,
    _kind,
    _ks_complement,
    _nanmean,
    _pearson_matrix,
    _prepare,
    _subsample,
    _threshold,
    _to_float,
    _tv_complement,
    _varies,
)
from jaxsyn.files import atomic_path

# sdmetrics.reports.utils.DEFAULT_REAL_CORRELATION_THRESHOLD (0.27 and later): |rho_real| > 0.5.
CORRELATION_THRESHOLD = 0.5
# sdmetrics.reports.utils.DEFAULT_REAL_ASSOCIATION_THRESHOLD (0.27 and later): Cramér's V > 0.3.
ASSOCIATION_THRESHOLD = 0.3
# sdmetrics.reports.utils.DEFAULT_NUM_ROWS_SUBSAMPLE: contingency pairs use at most this many rows.
MAX_ROWS = 50_000


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
