"""The table parts of `jaxsyn evaluate`: fidelity (sdmetrics-equivalent quality, column shapes,
association heat maps), privacy (distance to closest record) and utility (gradient boosting or an
MLP trained on real vs synthetic rows, tested on held-out real rows)."""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import pandas as pd

from jaxsyn.errors import ConfigError, DataError
from jaxsyn.eval import privacy
from jaxsyn.eval.report import figure
from jaxsyn.eval.sections import utility_figure


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    from jaxsyn.data.clinical import read_table as read

    path = Path(path)
    return read(path / "synthetic.parquet" if path.is_dir() else path)


def tables(report, real, synthetic, holdout) -> None:
    from jaxsyn.eval import tabular

    real_df, syn_df = read_table(real), read_table(synthetic)
    hold_df = read_table(holdout) if holdout else None
    id_cols = [c for c in real_df.columns if _is_id(real_df[c], c)]
    cols = [c for c in real_df.columns if c not in id_cols]
    absent = [c for c in cols if c not in syn_df.columns]
    if absent:
        raise DataError(f"{synthetic}: no column(s) {absent}; expected the real table's columns")
    real_df, syn_df = real_df[cols], syn_df[cols]
    small_table_note(report, {"real": (real, real_df), "synthetic": (synthetic, syn_df)})
    q = tabular.quality(real_df, syn_df)
    report.numbers("fidelity.quality", q, settings={"ignored_id_columns": id_cols,
                   "definition": "sdmetrics QualityReport (>= 0.27 thresholds; all pairs too)"})  # fmt: skip
    shapes = tabular.column_shapes(real_df, syn_df)
    report.numbers(
        "fidelity.column_shapes", dict(zip(shapes["column"], shapes["score"], strict=True))
    )
    path = Path(report.out_dir) / "figures" / "fidelity_heatmaps.png"
    report.written.append(path)  # drawn outside report.figure: discard() must know it too
    tabular.correlation_heatmaps(real_df, syn_df, path, title="associations")
    report.figures.append(("fidelity", "figures/fidelity_heatmaps.png",
                           "real / synthetic / difference associations"))  # fmt: skip
    encoded = [privacy.encode_table(t, fit_on=real_df) for t in (real_df, syn_df)]
    hold = None if hold_df is None else privacy.encode_table(hold_df[cols], fit_on=real_df)
    dcr = privacy.distance_to_closest_record(encoded[0], encoded[1], hold)
    summary = {k: v for k, v in dataclasses.asdict(dcr).items()
               if k not in ("dcr", "nearest_train", "holdout_dcr")}  # fmt: skip
    report.numbers("privacy.dcr", summary, settings={"encoding": "standardised numbers, one-hot "
                   "categories (privacy.encode_table fitted on the real table)", "metric": "l2"})  # fmt: skip
    if hold is None:
        report.text("privacy", "No --holdout: DCR without the train-vs-holdout share.")
    fig, ax = figure(6, 3.5)
    ax[0, 0].hist(dcr.dcr, bins=40, alpha=0.6, label="to train")
    if dcr.holdout_dcr is not None:
        ax[0, 0].hist(dcr.holdout_dcr, bins=40, alpha=0.6, label="to holdout")
    ax[0, 0].set(xlabel="distance to closest record", ylabel="synthetic rows")
    ax[0, 0].legend(fontsize=7)
    report.figure(
        "privacy", "dcr", fig, caption="distance of synthetic rows to the closest real row"
    )


MIN_ROWS = 2
# Ours: below this many rows a perfect generator's column shapes score visibly under 1: the
# mean two-sample KS statistic of one distribution is about 1.23 / sqrt(n) (0.12 at 100 rows).
FEW_ROWS = 100


def small_table_note(report, tables: dict) -> None:
    """Refuse a table under MIN_ROWS rows (naming its flag and file); note and warn under
    FEW_ROWS that the quality scores are then dominated by sampling noise."""
    for flag, (path, df) in tables.items():
        if len(df) < MIN_ROWS:
            raise DataError(f"--{flag} {path}: {len(df)} row; expected at least {MIN_ROWS}")
    n = {flag: len(df) for flag, (_, df) in tables.items()}
    if min(n.values()) < FEW_ROWS:
        message = (f"fidelity: {n['real']} real and {n['synthetic']} synthetic rows: below "
                   f"{FEW_ROWS}, even two samples of one distribution score visibly under 1 "
                   f"(column shape about 1 - 1.23 / sqrt(n) = "
                   f"{1 - 1.23 / min(n.values()) ** 0.5:.2f} here); compare scores only between "
                   "sets of the same sizes.")  # fmt: skip
        report.text("fidelity", message)
        warnings.warn(message, stacklevel=2)


def _is_id(s: pd.Series, name: str) -> bool:
    return (
        s.is_unique
        and s.dtype == object
        and ("id" in name.lower().split("_") or name.lower() == "id")
    )


def table_utility(report, real, synthetic, test, labels, augment, model: str = "hgb") -> None:
    from jaxsyn.eval import utility

    if len(labels) != 1:
        raise ConfigError(f"--labels {labels}: a table takes one target column")
    if model not in utility.TABLE_MODELS:
        raise ConfigError(f"--utility-model {model!r}: tables take one of {utility.TABLE_MODELS}")
    result = utility.tstr_table(read_table(real), read_table(synthetic), read_table(test),
                                labels[0], augment=augment, n_threads=1, model=model)  # fmt: skip
    report.numbers("utility", result.asdict(), settings={"target": labels[0], "model": model})
    utility_figure(report, result)
