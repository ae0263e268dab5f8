"""The study's table from the records `run.py` wrote (whatever part of the run is done).

    .venv/bin/python experiments/tabular_real/summarise.py /tmp/tabular_real/records.json \
        [/tmp/tabular_real/tune.json ...]           # each tune.py records file its own table

Writes results.json (every record and the summary) and RESULTS.md beside this file. Per epoch
count, table and arm: mean ± sd over seeds (sample sd) of the quality scores, the utility and
the DCR figures. Two comparisons, on quality and on utility:
  reference vs ctgan  faithful when |mean difference| <= one sd of ctgan's seeds.
  defaults vs ctgan   one-sided Mann-Whitney U (H1: defaults > ctgan), with the smallest p the
                      seed counts allow (`jaxsyn.eval.stats.mann_whitney`).
"""

from __future__ import annotations

import itertools
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[1]))

from jaxsyn import files  # noqa: E402
from jaxsyn.eval.stats import mann_whitney  # noqa: E402

ARMS = ("reference", "reference-quantiles", "defaults", "auto-batch", "ctgan")
REFERENCE_ARMS = ("reference", "reference-quantiles")
FIELDS = {
    "overall": lambda r: r["overall"],
    "shapes": lambda r: r["column_shapes"],
    "pair_trends": lambda r: r["column_pair_trends"],
    "overall_all_pairs": lambda r: r["overall_all_pairs"],
    "utility": lambda r: r["utility"]["synthetic"],
    "utility_real": lambda r: r["utility"]["real"],
    "dcr_share": lambda r: r["dcr"]["share_closer_to_train"],
    "dcr_median": lambda r: r["dcr"]["median_to_train"],
    "fit_seconds": lambda r: r["fit_seconds"],
}


def _ms(values: list[float]) -> dict:
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return {"mean": statistics.mean(values), "sd": sd, "n": len(values), "values": values}


def summary(records: list[dict]) -> dict:
    out: dict = {}
    keys = sorted({(r["epochs"], r["table"]) for r in records})
    for epochs, table in keys:
        rows = [r for r in records if r["epochs"] == epochs and r["table"] == table]
        by_arm = {
            arm: {f: _ms([get(r) for r in rows if r["arm"] == arm]) for f, get in FIELDS.items()}
            for arm in ARMS
            if any(r["arm"] == arm for r in rows)
        }
        entry = {"arms": by_arm}
        if "ctgan" in by_arm:
            c = by_arm["ctgan"]
            for metric, ref in itertools.product(("overall", "utility"), REFERENCE_ARMS):
                if ref in by_arm:
                    diff = by_arm[ref][metric]["mean"] - c[metric]["mean"]
                    entry[f"{ref}_{metric}"] = {
                        "difference": diff,
                        "ctgan_sd": c[metric]["sd"],
                        "within_spread": abs(diff) <= c[metric]["sd"],
                    }
            for metric in ("overall", "utility"):
                if "defaults" in by_arm and c[metric]["n"] > 1 < by_arm["defaults"][metric]["n"]:
                    d = by_arm["defaults"][metric]
                    test = mann_whitney(d["values"], c[metric]["values"], "greater")
                    entry[f"defaults_{metric}"] = {
                        "difference": d["mean"] - c[metric]["mean"],
                        "p": test.pvalue,
                        "min_p": test.min_pvalue,
                    }
        sd = [r["sdmetrics_overall"] for r in rows if r.get("sdmetrics_overall") is not None]
        ours = [r["overall"] for r in rows if r.get("sdmetrics_overall") is not None]
        if sd:
            entry["sdmetrics_max_abs_difference"] = max(
                abs(a - b) for a, b in zip(sd, ours, strict=True)
            )
        out[f"{epochs}/{table}"] = entry
    return out


def markdown(state: dict, summ: dict) -> str:
    lines = [
        "# jaxsyn's CTGAN vs the ctgan package on four real clinical tables",
        "",
        f"Command: `{state['command']}` then `python experiments/tabular_real/summarise.py`; "
        f"started {state['started']}, last record {state.get('updated', '-')}, "
        f"{state['machine']}, {len(state['records'])} fits. Tables and arms: run.py's docstring. "
        "Mean ± sd over seeds (n = seeds done). Quality: sdmetrics' QualityReport overall "
        "(thresholded pairs) against the training split; utility: AUC (binary) or R² (diabetes) "
        "on the real hold-out of a gradient-boosting model trained on the synthetic rows (real: "
        "trained on the real training split); DCR share: synthetic rows closer to a training "
        "row than to a hold-out row (0.75 = no memorisation). fit s is wall time on a machine "
        "shared with other work, not a benchmark.",
        "",
        "| epochs | table | arm | n | quality | shapes | pair trends | utility (real) | DCR share "
        "| fit s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def f(m, digits=3):
        return f"{m['mean']:.{digits}f} ± {m['sd']:.{digits}f}"

    for key, entry in summ.items():
        epochs, table = key.split("/")
        for arm, a in entry["arms"].items():
            lines.append(
                f"| {epochs} | {table} | {arm} | {a['overall']['n']} | {f(a['overall'])} | "
                f"{f(a['shapes'])} | {f(a['pair_trends'])} | {f(a['utility'])} "
                f"({a['utility_real']['mean']:.3f}) | {f(a['dcr_share'])} | "
                f"{a['fit_seconds']['mean']:.0f} |"
            )
    lines += [
        "",
        "Reference mode vs ctgan (faithful: |mean difference| ≤ ctgan's sd; reference = the "
        "reference's mixture start, reference-quantiles = jaxsyn's) and jaxsyn's defaults vs "
        "ctgan (one-sided Mann–Whitney, H1 defaults > ctgan; min p = the smallest p the seed "
        "counts allow):",
        "",
        "| epochs | table | arm − ctgan quality (ctgan sd) | within | arm − ctgan utility "
        "(ctgan sd) | within |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for (key, e), arm in itertools.product(summ.items(), ("defaults", *REFERENCE_ARMS)):
        epochs, table = key.split("/")
        if arm == "defaults":
            cells = []
            for metric in ("overall", "utility"):
                d = e.get(f"defaults_{metric}")
                cells += [f"{d['difference']:+.3f}, p {d['p']:.3f} (min {d['min_p']:.3f})"
                          if d else "-", ""]  # fmt: skip
            lines.append(f"| {epochs} | {table} | defaults: " + " | ".join(cells) + " |")
            continue
        if f"{arm}_overall" not in e:
            continue
        cells = []
        for metric in ("overall", "utility"):
            r = e.get(f"{arm}_{metric}")
            cells += (
                [
                    f"{r['difference']:+.3f} ({r['ctgan_sd']:.3f})",
                    "yes" if r["within_spread"] else "no",
                ]
                if r
                else ["-", "-"]  # fmt: skip
            )
        lines.append(f"| {epochs} | {table} | {arm}: " + " | ".join(cells) + " |")
    sd = [
        e["sdmetrics_max_abs_difference"]
        for e in summ.values()
        if "sdmetrics_max_abs_difference" in e
    ]
    if sd:
        lines += [
            "",
            f"sdmetrics {_sdmetrics_version()} QualityReport on every seed-0 fit against "
            f"`jaxsyn.eval.tabular.quality`: largest |difference| {max(sd):.2g}.",
        ]
    return "\n".join(lines) + "\n"


def tuning(state: dict) -> str:
    """tune.py's records as a table: mean ± sd over seeds per (variant, sampling)."""
    recs = state["records"]
    lines = [
        "",
        f"## Tuning table (flchain, not reported with the four): `{state['command']}`"
        + (f" ({state['note']})" if state.get("note") else ""),
        "",
        "| variant | sampling | n | quality | shapes | pair trends | utility (AUC) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key in dict.fromkeys((r["variant"], r["sampling"]) for r in recs):
        rows = [r for r in recs if (r["variant"], r["sampling"]) == key]
        cells = [_ms([FIELDS[f](r) for r in rows]) for f in ("overall", "shapes", "pair_trends",
                                                              "utility")]  # fmt: skip
        sd = [f"{c['mean']:.3f} ± {c['sd']:.3f}" for c in cells]
        lines.append(f"| {key[0]} | {key[1]} | {len(rows)} | " + " | ".join(sd) + " |")
    return "\n".join(lines) + "\n"


def _sdmetrics_version() -> str:
    try:
        import sdmetrics

        return sdmetrics.__version__
    except ImportError:
        return "?"


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tabular_real/records.json")
    state = json.loads(path.read_text())
    summ = summary(state["records"])
    text = markdown(state, summ)
    out = {**state, "summary": summ}
    tunes = [json.loads(Path(p).read_text()) for p in sys.argv[2:]]  # each its own table
    text += "".join(tuning(t) for t in tunes)
    if tunes:
        out["tuning"] = tunes
    files.write_json(HERE / "results.json", out)
    files.write_text(HERE / "RESULTS.md", text)
    print(text)


if __name__ == "__main__":
    main()
