"""Quality of jaxsyn's CTGAN on a real clinical table and on the CT phantom's table, beside the
`ctgan` package at equal epochs, and how well multi-column conditions carry the rest of a row.

    .venv/bin/python experiments/ctgan_quality/run.py [--epochs 300] [--seeds 0,1,2] [--no-ctgan]

Tables
  diabetes  sklearn's diabetes study (Efron et al. 2004): 442 real patients, age, sex, BMI, blood
            pressure, six serum measurements and a disease-progression target; it ships inside
            scikit-learn (`load_diabetes(scaled=False)`), nothing is downloaded. `sex` is discrete.
  phantom   `jaxsyn.data.phantoms.ct.clinical_table(2000, seed=0)`: 22 columns of four kinds with
            missing values (pack_years). ctgan refuses missing values in continuous columns, so
            its copy has them filled with 0 (jaxsyn models them; the scores compare each to the
            table it was given).
Each implementation trains `--epochs` epochs as ctgan counts them (batch 500, pac 10, the
defaults), samples as many rows as the real table has, and is scored with
`jaxsyn.eval.tabular.quality` (sdmetrics' QualityReport, checked against it in the tests): the
overall score with sdmetrics >= 0.27's default pair thresholds and with every pair counted.
Conditional check (phantom): rows conditioned on sex_male = 1 and bmi_class = 3 are compared with
the real patients of that subgroup (column shapes of the other columns), beside unconditional rows
compared with the same subgroup: a model whose other columns follow the conditional distribution
scores clearly higher conditioned.

Writes results.json, RESULTS.md and heat maps (real / synthetic / difference) beside this file.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from jaxsyn import files
from jaxsyn.data.phantoms.ct import clinical_table
from jaxsyn.eval import tabular as metrics
from jaxsyn.infer.ctgan import TableSynthesizer
from jaxsyn.train import ctgan as train

HERE = Path(__file__).parent
CONDITION = {"sex_male": 1, "bmi_class": 3}


def tables() -> dict[str, tuple[pd.DataFrame, list[str], str | None]]:
    from sklearn.datasets import load_diabetes

    diabetes = load_diabetes(as_frame=True, scaled=False).frame
    diabetes["sex"] = diabetes["sex"].astype(int)
    phantom = clinical_table(2000, seed=0)
    return {"diabetes": (diabetes, ["sex"], None), "phantom": (phantom, [], "patient_id")}


def jaxsyn_fit_sample(df, discrete, id_column, epochs, seed, work: Path):
    run = work / f"jaxsyn-{seed}"
    t = time.perf_counter()
    config = train.CTGANTrainConfig(seed=seed)
    train.run(run, df, epochs=epochs, config=config, discrete=discrete, id_column=id_column,
              progress=False, checkpoint_every=10**9, devices=jax.devices()[:1])  # fmt: skip
    seconds = time.perf_counter() - t
    synth = TableSynthesizer.load(run)
    kinds = {c.name: c.kind for c in synth.transformer.schema.columns}
    return synth, synth.sample(len(df), key=seed, ids=False), kinds, seconds


def ctgan_fit_sample(df, discrete, epochs, seed):
    import torch
    from ctgan import CTGAN

    torch.manual_seed(seed)
    np.random.seed(seed)
    t = time.perf_counter()
    model = CTGAN(epochs=epochs, verbose=False, enable_gpu=False)
    model.set_random_state(seed)
    model.fit(df, discrete_columns=discrete)
    seconds = time.perf_counter() - t
    return model.sample(len(df)), seconds


def score(real, synthetic, kinds) -> dict:
    q = metrics.quality(real, synthetic, kinds)
    return {k: q[k] for k in ("overall", "overall_all_pairs", "column_shapes",
                              "column_pair_trends", "pairs_counted", "pairs_total")}  # fmt: skip


def conditional_check(synth: TableSynthesizer, real: pd.DataFrame, kinds, seed: int) -> dict:
    subgroup = real
    for k, v in CONDITION.items():
        subgroup = subgroup[subgroup[k] == v]
    others = [c for c in kinds if c not in CONDITION]
    cond = synth.sample(2000, conditions=CONDITION, key=seed + 100, ids=False)
    free = synth.sample(2000, key=seed + 200, ids=False)
    assert all((cond[k] == v).all() for k, v in CONDITION.items())
    sub_kinds = {c: kinds[c] for c in others}

    def shapes(syn):
        return float(
            metrics.column_shapes(subgroup[others], syn[others], sub_kinds)["score"].mean()
        )

    return {
        "condition": CONDITION,
        "real_subgroup_rows": len(subgroup),
        "shapes_conditioned": shapes(cond),
        "shapes_unconditioned": shapes(free),
        "weight_kg_mean": {
            "real_subgroup": float(subgroup["weight_kg"].mean()),
            "conditioned": float(cond["weight_kg"].mean()),
            "unconditioned": float(free["weight_kg"].mean()),
        },  # fmt: skip
        "hypertension_rate": {
            "real_subgroup": float(subgroup["hypertension"].mean()),
            "conditioned": float(cond["hypertension"].mean()),
            "unconditioned": float(free["hypertension"].mean()),
        },  # fmt: skip
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=300)  # ctgan.py CTGAN(epochs=300)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--no-ctgan", action="store_true")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    results = {"epochs": args.epochs, "seeds": seeds, "machine": platform.processor() or
               platform.machine(), "date": time.strftime("%Y-%m-%d"), "tables": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as work:
        for name, (df, discrete, id_column) in tables().items():
            real = df.drop(columns=[id_column]) if id_column else df
            rows = {"jaxsyn": [], "ctgan": []}
            for seed in seeds:
                synth, syn, kinds, secs = jaxsyn_fit_sample(
                    df, discrete, id_column, args.epochs, seed, Path(work) / name
                )
                rows["jaxsyn"].append({**score(real, syn, kinds), "train_seconds": secs})
                if seed == seeds[0]:
                    metrics.correlation_heatmaps(real, syn, HERE / f"heatmap_{name}_jaxsyn.png",
                                                 kinds, title=f"{name}: jaxsyn CTGAN")  # fmt: skip
                if name == "phantom":
                    rows["jaxsyn"][-1]["conditional"] = conditional_check(synth, real, kinds, seed)
                if not args.no_ctgan:
                    filled = real.copy()
                    for c in filled.columns[filled.isna().any()]:  # ctgan refuses NaN
                        filled[c] = filled[c].astype(float).fillna(0.0)
                    ctgan_discrete = discrete or [c for c, k in kinds.items()
                                                  if k in ("categorical", "binary")]  # fmt: skip
                    syn_c, secs_c = ctgan_fit_sample(filled, ctgan_discrete, args.epochs, seed)
                    rows["ctgan"].append({**score(filled, syn_c, kinds), "train_seconds": secs_c})
            summary = {}
            for impl, rs in rows.items():
                if rs:
                    summary[impl] = {
                        k: {"mean": statistics.mean(r[k] for r in rs),
                            "stdev": statistics.stdev(r[k] for r in rs) if len(rs) > 1 else 0.0}
                        for k in ("overall", "overall_all_pairs", "train_seconds")
                    }  # fmt: skip
            results["tables"][name] = {"rows": len(df), "runs": rows, "summary": summary}
            print(json.dumps({name: summary}), flush=True)
    files.write_json(HERE / "results.json", results)
    files.write_text(HERE / "RESULTS.md", markdown(results))


def markdown(results: dict) -> str:
    lines = [
        "# CTGAN quality: jaxsyn vs the ctgan package",
        "",
        f"`.venv/bin/python experiments/ctgan_quality/run.py --epochs {results['epochs']}` "
        f"({results['date']}, {results['machine']}, seeds {results['seeds']}). Quality = "
        "sdmetrics' QualityReport overall score (mean ± sd over seeds); 'thresholded' counts "
        "only the strongly related pairs (sdmetrics >= 0.27), 'all pairs' every pair. 'train s' "
        "is wall time on a shared machine, not a benchmark (benchmarks/RESULTS.md times both).",
        "",
        "| table | rows | impl | quality (thresholded) | quality (all pairs) | train s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, t in results["tables"].items():
        for impl, s in t["summary"].items():
            lines.append(
                f"| {name} | {t['rows']} | {impl} | {s['overall']['mean']:.3f} ± "
                f"{s['overall']['stdev']:.3f} | {s['overall_all_pairs']['mean']:.3f} ± "
                f"{s['overall_all_pairs']['stdev']:.3f} | {s['train_seconds']['mean']:.0f} |"
            )
    cond = [r["conditional"] for r in results["tables"].get("phantom", {}).get("runs", {})
            .get("jaxsyn", []) if "conditional" in r]  # fmt: skip
    if cond:
        c = cond[0]
        lines += [
            "",
            f"Conditioned on {c['condition']} (phantom, seed {results['seeds'][0]}; "
            f"{c['real_subgroup_rows']} real patients in the subgroup): column shapes of the "
            f"other columns vs the real subgroup {c['shapes_conditioned']:.3f} conditioned, "
            f"{c['shapes_unconditioned']:.3f} unconditioned; mean weight "
            f"{c['weight_kg_mean']['conditioned']:.1f} kg conditioned vs "
            f"{c['weight_kg_mean']['real_subgroup']:.1f} real subgroup "
            f"({c['weight_kg_mean']['unconditioned']:.1f} unconditioned); hypertension rate "
            f"{c['hypertension_rate']['conditioned']:.2f} vs "
            f"{c['hypertension_rate']['real_subgroup']:.2f} "
            f"({c['hypertension_rate']['unconditioned']:.2f} unconditioned).",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
