"""Privacy of a synthetic set: nearest neighbours, pGAN's membership attacks, DCR for tables.

The pieces live in `jaxsyn.eval.neighbours` (exact nearest neighbours, l2 and cosine) and
`jaxsyn.eval.attacks` (pGAN's pairwise and distribution attacks, UMAP embedding); this module
re-exports them and holds what concerns tables:

  non-members and vs each non-member group (Figure S3: train vs validation, train vs test); top
  tables (Table S1): each group's count among the 50 and the n // 3 (333 of 1000) highest scores,
  ties in a seeded random order (the notebooks shuffle before sorting).

Distance to closest record (tables): a synthetic row's distance to its nearest training row
(table-GAN, Park et al. 2018), as percentiles (the 5th is CTAB-GAN's, Zhao et al. 2021). With a
holdout, the share of synthetic rows closer to train than to holdout, ties 1/2 (Platzer &

Results are frozen dataclasses of plain numbers, lists and dicts: `dataclasses.asdict(result)` is
JSON-ready.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pandas as pd

from jaxsyn.errors import DataError
from jaxsyn.eval.attacks import (  # noqa: F401  re-exported: the public API predates the split
    N_CANDIDATES,
    QUANTILE_EMBEDDING,
    QUANTILE_INPUT,
    TOP_K,
    UMAP_SETTINGS,
    UMAP_SETTINGS_SPREAD,
    DistributionAttack,
    PairwiseAttack,
    Ranking,
    _auc,
    _ranking,
    _roc,
    distribution_attack,
    make_candidates,
    membership_attacks,
    pairwise_attack,
    umap_embedding,
)
from jaxsyn.eval.neighbours import (  # noqa: F401
    BATCH,
    METRICS,
    PAIR_ELEMENTS,
    ROUNDING,
    SHORTLIST,
    _check_int,
    _exact,
    _matrix,
    _pair,
    nearest_neighbours,
)
from jaxsyn.eval.tabular_scores import (  # column kinds read as QualityReport
    NUMERIC,
    _kind,
    _to_float,
)

# Not from a paper: the DCR distribution is reported at these percentiles (5th: CTAB-GAN).
PERCENTILES = (0, 1, 5, 25, 50, 75, 95, 100)


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
