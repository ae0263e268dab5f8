"""jaxsyn's CTGAN against the `ctgan` package on four real clinical tables (issue 18 item 1).

    .venv/bin/python experiments/tabular_real/run.py --epochs 100,300 --seeds 0,1,2,3,4 \
        --records /tmp/tabular_real/records.json          # trains; resumable, saved per fit
    .venv/bin/python experiments/tabular_real/summarise.py /tmp/tabular_real/records.json

Tables (tables.py, fixed before any tuning): diabetes, whas500, actg175, gbsg2; `--tables
flchain` is the tuning table, never reported with them. Per table and seed the real rows are
split 75 / 25 (stratified on a binary target, `random_state` = seed): every arm trains on the
same 75 % and is judged against it and the 25 % hold-out. Four arms, each at `--epochs` epochs
as ctgan counts them (batch 500, pac 10, its network sizes; every fit on one CPU device):

  reference  jaxsyn in the reference's mode: soft single-column conditions (hard_conditions
             False, extra_condition_p 0), log-frequency training conditions, and the reference's
             sampling: BatchNorm with each 500-row batch's own statistics, free conditions drawn
             with the log-frequency probabilities (ctgan's `sample`), and the reference's
             mixture start (k-means++ seeds, Lloyd to convergence; `MixtureConfig(init=
             "kmeans++")`), which keeps about the reference's mode counts.
  reference-quantiles  the same with jaxsyn's mixture start (quantiles; more modes on small
             tables: jaxsyn/data/tabular/mixture.py): the reference arm of the first runs.
  defaults   jaxsyn's defaults (`CTGANTrainConfig(seed=...)`, `TableSynthesizer.load`).
  auto-batch the defaults with `batch_size=None`: `auto_batch` of the table (50 on all four;
             tuned on flchain only, tune.py's batch variants).
  ctgan      the `ctgan` package 0.12.1, `CTGAN(epochs=..., enable_gpu=False)`,
             `set_random_state(seed)` and `torch.manual_seed(seed)`, one torch thread (on
             shared cores torch's OpenMP threads spin: 848 s for 100 epochs of diabetes with two).

Each arm samples as many rows as the training split has (seeded). Scores per fit:
  quality      `jaxsyn.eval.tabular.quality` (sdmetrics' QualityReport: column shapes, pair trends
               at sdmetrics' thresholds, overall; also every pair counted) against the training
               split, with the table's kinds. For seed 0 sdmetrics itself is run too, when it is
               installed, to check the two agree.
  utility      a fixed gradient-boosting model (scikit-learn HistGradientBoosting, its defaults,
               random_state 0, one thread) trained on the synthetic rows to predict the target
               from the other columns, tested on the hold-out: AUC (binary) or R² (continuous);
               the same model trained on the real training split is the ceiling.
  dcr          `jaxsyn.eval.privacy`: each synthetic row's distance to its closest training row
               and to its closest hold-out row (one-hot + standardised encoding fitted on the
               training split): the median distance to training and the share of synthetic rows
               closer to training than to hold-out (no memorisation: n_train / (n_train + n_hold),
               0.75 here).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import jax
import numpy as np
import pandas as pd

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import tables as tables_lib  # noqa: E402

from jaxsyn import files  # noqa: E402
from jaxsyn.cli import cache  # noqa: E402
from jaxsyn.data.tabular import TransformerConfig, infer_schema  # noqa: E402
from jaxsyn.data.tabular.mixture import MixtureConfig  # noqa: E402
from jaxsyn.eval import privacy, utility  # noqa: E402
from jaxsyn.eval import tabular as metrics  # noqa: E402
from jaxsyn.infer.ctgan import TableSynthesizer  # noqa: E402
from jaxsyn.models.ctgan import CTGANConfig  # noqa: E402
from jaxsyn.train import ctgan as train  # noqa: E402

ARMS = ("reference", "reference-quantiles", "defaults", "auto-batch", "ctgan")
HOLDOUT = 0.25


def split(table: tables_lib.Table, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    df = table.frame
    strata = df[table.target] if table.task == "binary" else None
    tr, ho = train_test_split(df, test_size=HOLDOUT, random_state=seed, stratify=strata)
    return tr.reset_index(drop=True), ho.reset_index(drop=True)


def reference_config(seed: int, start: str = "kmeans++") -> train.CTGANTrainConfig:
    """The reference's training: one soft condition per row, log-frequency conditions, and its
    mixtures' k-means++ start (`start="quantiles"`: jaxsyn's, the first runs' reference arm)."""
    mixture = MixtureConfig(init="kmeans++", init_seed=seed, n_kmeans_iter=300)
    return train.CTGANTrainConfig(
        seed=seed, extra_condition_p=0.0, log_frequency=True,
        model=CTGANConfig(hard_conditions=False),
        transformer=TransformerConfig(mixture=mixture if start == "kmeans++" else MixtureConfig()),
    )  # fmt: skip


def reference_sampler(synth: TableSynthesizer) -> TableSynthesizer:
    """ctgan's `sample`: batch statistics per 500-row batch, log-frequency free conditions."""
    log_counts = {k: np.log1p(np.asarray(v, float)).tolist() for k, v in synth.counts.items()}
    return TableSynthesizer(
        synth.transformer, synth.config, synth.params, log_counts, stats=None,
        batch_size=synth.batch_size,
    )  # fmt: skip


def fit_jaxsyn(table, train_df, arm: str, epochs: int, seed: int, work: Path) -> pd.DataFrame:
    config = (
        reference_config(seed) if arm == "reference"
        else reference_config(seed, "quantiles") if arm == "reference-quantiles"
        else train.CTGANTrainConfig(seed=seed, batch_size=None) if arm == "auto-batch"
        else train.CTGANTrainConfig(seed=seed)
    )  # fmt: skip
    schema = infer_schema(train_df, kinds=table.kinds(), detect_id=False)
    run_dir = work / f"{table.name}-{arm}-{epochs}-{seed}"
    train.run(run_dir, train_df, epochs=epochs, config=config, schema=schema, progress=False,
              checkpoint_every=10**9, keep=1, devices=jax.devices()[:1])  # fmt: skip
    synth = TableSynthesizer.load(run_dir)
    if arm.startswith("reference"):
        synth = reference_sampler(synth)
    return synth.sample(len(train_df), key=seed + 1000, ids=False)


def fit_ctgan(table, train_df, epochs: int, seed: int) -> pd.DataFrame:
    import torch
    from ctgan import CTGAN

    torch.manual_seed(seed)
    torch.set_num_threads(1)  # OpenMP spin-waits on shared cores: 100 epochs took 848 s with 2
    np.random.seed(seed)
    model = CTGAN(epochs=epochs, verbose=False, enable_gpu=False)
    model.set_random_state(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(train_df, discrete_columns=list(table.discrete))
    return model.sample(len(train_df))


def ml_utility(table, train_df, syn, holdout) -> dict:
    """AUC (binary) or R² (regression) on the hold-out of the fixed model trained on `syn`, and
    of the same model trained on the real training split."""
    if table.task == "binary":
        r = utility.tstr_table(train_df, syn, holdout, table.target, seeds=(0,), n_threads=1)
        return {"metric": "auc", "synthetic": r.auc_syn[0], "real": r.auc_real[0]}
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.metrics import r2_score

    kinds = {c: k for c, k in table.kinds().items() if c != table.target}
    fit_on = train_df.drop(columns=[table.target])

    def score(df):
        x = privacy.encode_table(df.drop(columns=[table.target]), kinds, fit_on=fit_on)
        model = HistGradientBoostingRegressor(random_state=0).fit(x, df[table.target])
        xh = privacy.encode_table(holdout.drop(columns=[table.target]), kinds, fit_on=fit_on)
        return float(r2_score(holdout[table.target], model.predict(xh)))

    from jaxsyn.eval.utility import _limit_threads

    with _limit_threads(1):
        return {"metric": "r2", "synthetic": score(syn), "real": score(train_df)}


def dcr(table, train_df, syn, holdout) -> dict:
    kinds = table.kinds()

    def enc(df):
        return privacy.encode_table(df, kinds, fit_on=train_df)

    d = privacy.distance_to_closest_record(enc(train_df), enc(syn), enc(holdout))
    return {"median_to_train": d.percentiles["p50"], "median_to_holdout":
            d.holdout_percentiles["p50"], "share_closer_to_train": d.share_closer_to_train,
            "expected_share": d.expected_share, "exact_copies": d.exact_copies}  # fmt: skip


def sdmetrics_quality(train_df, syn, kinds) -> float | None:
    """sdmetrics' own QualityReport score (None when sdmetrics is not installed)."""
    try:
        from sdmetrics.reports.single_table import QualityReport
    except ImportError:
        return None
    sdtype = {"categorical": "categorical", "integer": "numerical", "float": "numerical"}
    meta = {"columns": {c: {"sdtype": sdtype[k]} for c, k in kinds.items()}}
    report = QualityReport()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report.generate(train_df, syn[train_df.columns], meta, verbose=False)
    return float(report.get_score())


def score(table, train_df, syn, holdout, seed: int) -> dict:
    syn = syn[train_df.columns]
    kinds = table.kinds()
    q = metrics.quality(train_df, syn, kinds)
    out = {k: q[k] for k in ("overall", "overall_all_pairs", "column_shapes",
                             "column_pair_trends", "column_pair_trends_all_pairs")}  # fmt: skip
    out["utility"] = ml_utility(table, train_df, syn, holdout)
    out["dcr"] = dcr(table, train_df, syn, holdout)
    if seed == 0:
        out["sdmetrics_overall"] = sdmetrics_quality(train_df, syn, kinds)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", default="100,300")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--tables", default=",".join(tables_lib.REPORTED))
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--records", default="/tmp/tabular_real/records.json")
    args = p.parse_args()
    cache.configure()  # JAX's persistent compilation cache: seeds of one table compile once
    epochs_list = [int(e) for e in args.epochs.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = args.arms.split(",")
    path = Path(args.records)
    state = json.loads(path.read_text()) if path.is_file() else {
        "command": " ".join(["python", *sys.argv]), "started": time.strftime("%Y-%m-%d %H:%M"),
        "machine": platform.processor() or platform.machine(), "records": []}  # fmt: skip
    done = {(r["epochs"], r["table"], r["seed"], r["arm"]) for r in state["records"]}
    loaded = {name: tables_lib.load(name) for name in args.tables.split(",")}
    with tempfile.TemporaryDirectory(prefix="tabular-real-") as work:
        for epochs in epochs_list:  # every table at the first epoch count before the next
            for name, table in loaded.items():
                for seed in seeds:
                    train_df, holdout = split(table, seed)
                    for arm in arms:
                        if (epochs, name, seed, arm) in done:
                            continue
                        t = time.perf_counter()
                        if arm == "ctgan":
                            syn = fit_ctgan(table, train_df, epochs, seed)
                        else:
                            syn = fit_jaxsyn(table, train_df, arm, epochs, seed, Path(work))
                        seconds = time.perf_counter() - t
                        rec = {"epochs": epochs, "table": name, "seed": seed, "arm": arm,
                               "fit_seconds": seconds, "n_train": len(train_df),
                               "n_holdout": len(holdout),
                               **score(table, train_df, syn, holdout, seed)}  # fmt: skip
                        state["records"].append(rec)
                        state["updated"] = time.strftime("%Y-%m-%d %H:%M")
                        files.write_json(path, state)
                        print(json.dumps({k: rec[k] for k in ("epochs", "table", "seed", "arm",
                              "overall", "fit_seconds")} | {"utility": rec["utility"]["synthetic"]}),
                              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
