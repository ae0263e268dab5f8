"""DUIIT's Tables 2-5 (Wang, Xie et al., ICLR 2021 submission) at CPU scale on the head phantoms.

    .venv/bin/python experiments/duiit/run.py --quick        # 1 split, few steps: it runs end to end
    .venv/bin/python experiments/duiit/run.py                # 10 splits x 11 settings (~2.7 h, README)
    .venv/bin/python experiments/duiit/run.py --report-only  # tables, tests and figure from runs.jsonl
    .venv/bin/python experiments/duiit/run.py --continue-from experiments/duiit/results.json \
        --work NEW   # a later session: only the runs results.json lacks

Data (`jaxsyn phantom head`, one anatomy in three contrasts, age driving atrophy and PET uptake):
a scarce CT cohort (--ct-patients patients x --slices axial slices) and plentiful MRI and PET
cohorts (--source-patients each), every modality from its own simulated patients. Each of
--splits random patient-level splits of the CT cohort (`jaxsyn.data.labelled.split_by_patient`,
seed = split) holds out --test-fraction of the CT patients; the sources are used whole.
Per split, each setting is one `jaxsyn train duiit` run on the training CTs (and the sources), then
`jaxsyn predict` on the held-out CTs; the score is the MSE of the predicted age (years^2).
Settings (`--settings`, names as in the paper's tables):
  Table 2  pure (PURE-CT), joint-mri (MIX-CT-MRI), joint-pet (MIX-CT-PET), joint-mri-pet
  Table 3  tl-, mtl-, dann-, cyclegan- (translate, then train) with -mri and -pet sources
  Table 4  augment (Simple Augment), autoaugment, erasing (on the training CTs)
Reported: mean +- sd of the MSE over splits per setting; the paper's Student t-test (appendix C,
here paired over splits: both settings see the same split) of each joint setting against every
non-joint setting, two-sided, significance threshold 0.1 as the paper's; Table 5: FID of source
images translated into CT by the CycleGAN and the joint translator of split 0 (against all real
CTs; Inception pool3 features when the weights file is installed, and pixel features), and the
Inception Score where the weights hold the classifier layer (else the reason it is unavailable);
a figure of translations (source, CycleGAN, joint). Every run is appended to WORK/runs.jsonl as it
ends, so an interrupted experiment resumes where it stopped.
Writes results.json, table.md and figure.png into --out (default: this folder; --quick: WORK/quick).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
JAXSYN = [sys.executable, "-m", "jaxsyn.cli"]

TABLE2 = ("pure", "joint-mri", "joint-pet", "joint-mri-pet")
TABLE3 = tuple(f"{s}-{m}" for m in ("mri", "pet") for s in ("tl", "mtl", "dann", "cyclegan"))
TABLE4 = ("augment", "autoaugment", "erasing")
SETTINGS = TABLE2 + TABLE3 + TABLE4
DEFAULT = TABLE2 + TABLE3[:4] + TABLE4  # the PET baselines of Table 3 on request (--settings)
PAPER_MSE = {  # Tables 2-4: mean (sd) over 10 splits, years^2
    "pure": (103.88, 64.27), "joint-mri": (76.91, 8.31), "joint-pet": (75.75, 20.52),
    "joint-mri-pet": (71.37, 18.92), "tl-mri": (91.52, 13.88), "mtl-mri": (99.26, 22.12),
    "dann-mri": (88.13, 21.86), "cyclegan-mri": (147.06, 79.89), "tl-pet": (102.08, 15.37),
    "mtl-pet": (92.94, 28.26), "dann-pet": (148.72, 40.16), "cyclegan-pet": (96.70, 42.44),
    "augment": (96.80, 26.00), "autoaugment": (84.65, 15.28), "erasing": (84.87, 8.55),
}  # fmt: skip

# The CPU scale: what each run trains (the paper: 256-650 px, ResNet-50, 100-200 epochs).
# translator_batch: the batch (per cohort) of the settings with translators (joint, cyclegan;
# A.1: 16); the others keep their appendix batch, clamped to the training CTs.
# Sizing (CPU seconds measured on the loaded 2-core machine, startup and compilation included):
# pure at 64 px, predictor 16 wide, 300 steps: 77 s; joint at 64 px, translator 16 wide with 3
# blocks, batch 16, 30 steps: 98 s (about 2 s a step). Hence the translators at width 8 and
# batch 8 (about a quarter of that a step) meant to bring 10 splits x 11 settings near 2 hours;
# measured on the quiet machine, 2.7 h (README "Sizing").
FULL = dict(size=64, steps=300, g_width=8, d_width=8, n_blocks=3, p_width=16, p_depth=18,
            translator_batch=8)  # fmt: skip
QUICK = dict(size=32, steps=8, g_width=4, d_width=8, n_blocks=1, p_width=4, p_depth=18,
             translator_batch=4)  # fmt: skip


def run(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run a jaxsyn command, its output to `log`; stop the experiment on failure. (wall seconds,
    CPU seconds of the child: on a loaded machine the CPU time is the steadier figure)."""
    t0, cpu0 = time.perf_counter(), _child_cpu()
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if proc.returncode:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"{' '.join(cmd)} failed (rc {proc.returncode}); log {log}:\n{tail}")
    return time.perf_counter() - t0, _child_cpu() - cpu0


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def make_data(args, work: Path) -> dict[str, Path]:
    """The three phantom cohorts, written once with `jaxsyn phantom head`."""
    folders = {}
    for modality, n in (("ct", args.ct_patients), ("mri", args.source_patients),
                        ("pet", args.source_patients)):  # fmt: skip
        out = work / "data" / f"{modality}-{n}x{args.slices}-{args.size}-seed{args.seed}"
        if not (out / "manifest.json").is_file():
            shutil.rmtree(out, ignore_errors=True)
            run([*JAXSYN, "phantom", "head", "--modality", modality, "--n", str(n), "--slices",
                 str(args.slices), "--size", str(args.size), "--seed", str(args.seed),
                 "--out", str(out)], work / "phantom.log")  # fmt: skip
        folders[modality] = out
    return folders


def link_folder(src: Path, dst: Path, ids: list[str], table) -> Path:
    """A folder of symlinks to `ids`' PNGs of `src` with their labels.csv rows."""
    from jaxsyn.files import write_text

    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for i in ids:
        os.symlink((src / f"{i}.png").resolve(), dst / f"{i}.png")
    write_text(
        dst / "labels.csv", table.set_index("image_id").loc[ids].reset_index().to_csv(index=False)
    )
    return dst


def make_split(args, data: dict[str, Path], split: int, work: Path) -> dict[str, Path]:
    """Split `split` of the CT cohort by patient: train/ and test/ folders of links."""
    import pandas as pd

    from jaxsyn.data.labelled import load_labelled, split_by_patient

    ct = load_labelled(str(data["ct"]), "age", args.size, seed=0, progress=False)
    train, test = split_by_patient(ct, args.test_fraction, seed=split)
    table = pd.read_csv(data["ct"] / "labels.csv", dtype={"image_id": str, "patient_id": str})
    base = work / f"split{split:02d}"
    return {"train": link_folder(data["ct"], base / "train", train.image_ids, table),
            "test": link_folder(data["ct"], base / "test", test.image_ids, table)}  # fmt: skip


def train_command(args, setting: str, folders: dict[str, Path], run_dir: Path, seed: int):
    """`jaxsyn train duiit` for one setting name of SETTINGS."""
    kind, _, sources = setting.partition("-")
    cmd = [*JAXSYN, "train", "duiit", "--setting", kind, "--target", str(folders["train"]),
           "--label", "age", "--out", str(run_dir), "--steps", str(args.scale["steps"]),
           "--seed", str(seed)]  # fmt: skip
    for source in sources.split("-") if sources else ():
        cmd += ["--source", str(folders[source])]
    s = args.scale
    cmd += [f"--config.model.translator.size={s['size']}",
            f"--config.model.translator.g_width={s['g_width']}",
            f"--config.model.translator.d_width={s['d_width']}",
            f"--config.model.translator.n_blocks={s['n_blocks']}",
            f"--config.model.predictor.width={s['p_width']}",
            f"--config.model.predictor.depth={s['p_depth']}"]  # fmt: skip
    if kind in ("joint", "cyclegan"):
        cmd.append(f"--config.batch_size={s['translator_batch']}")
    return cmd


def mse_of(predictions: Path, test: Path) -> float:
    import pandas as pd

    pred = pd.read_csv(predictions, dtype={"image_id": str}).set_index("image_id")["prediction"]
    truth = pd.read_csv(test / "labels.csv", dtype={"image_id": str}).set_index("image_id")["age"]
    missing = set(truth.index) - set(pred.index)
    if missing:
        raise SystemExit(f"{predictions}: no prediction for {sorted(missing)[:5]}")
    return float(((pred.loc[truth.index] - truth) ** 2).mean())


def done_runs(path: Path) -> dict[tuple[int, str], dict]:
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["split"], r["setting"]): r for r in rows}


def experiment(args, work: Path) -> list[dict]:
    data = make_data(args, work)
    log_path = work / "runs.jsonl"
    done = done_runs(log_path)
    for split in range(args.splits):
        folders = {**data, **make_split(args, data, split, work)}
        for setting in args.settings:
            if (split, setting) in done:
                continue
            run_dir = work / f"split{split:02d}" / setting
            shutil.rmtree(run_dir, ignore_errors=True)
            log = work / f"split{split:02d}" / f"{setting}.log"
            seconds, cpu = run(train_command(args, setting, folders, run_dir, seed=split), log)
            pred = run_dir / "predictions"
            run([*JAXSYN, "predict", "--run", str(run_dir), "--images", str(folders["test"]),
                 "--out", str(pred)], log)  # fmt: skip
            row = {"split": split, "setting": setting, "mse": mse_of(pred / "predictions.csv",
                   folders["test"]), "train_seconds": seconds, "train_cpu_seconds": cpu,
                   "n_train": len(list(folders["train"].glob("*.png"))),
                   "n_test": len(list(folders["test"].glob("*.png")))}  # fmt: skip
            with open(log_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            done[(split, setting)] = row
            print(f"split {split} {setting}: MSE {row['mse']:.1f} ({seconds:.0f} s, CPU {cpu:.0f} s)",
                  flush=True)  # fmt: skip
    return [done[k] for k in sorted(done) if k[0] < args.splits and k[1] in args.settings]


def summarise(rows: list[dict], settings) -> dict:
    """Mean +- sd per setting and the paired t-tests of each joint setting against the rest."""
    from scipy import stats

    by = {s: {r["split"]: r["mse"] for r in rows if r["setting"] == s} for s in settings}
    table = {s: {"mean": float(np.mean(list(v.values()))),
                 "sd": float(np.std(list(v.values()), ddof=1)) if len(v) > 1 else None,
                 "n_splits": len(v)} for s, v in by.items() if v}  # fmt: skip
    tests = {}
    for joint in (s for s in table if s.startswith("joint")):
        for other in (s for s in table if not s.startswith("joint")):
            common = sorted(set(by[joint]) & set(by[other]))
            a = np.array([by[joint][k] for k in common])
            b = np.array([by[other][k] for k in common])
            entry = {"n": len(common), "mean_difference": float((a - b).mean()) if common else None}
            if len(common) >= 2 and np.any(a != b):
                t = stats.ttest_rel(a, b)
                entry.update(t=float(t.statistic), p=float(t.pvalue),
                             significant_at_0_1=bool(t.pvalue < 0.1))  # fmt: skip
            tests[f"{joint} vs {other}"] = entry
    return {"mse": table, "t_tests": tests}


def translation_quality(args, work: Path, data: dict[str, Path]) -> dict:
    """Table 5 and the figure: split 0's translators on source images, FID against all CTs."""
    import pandas as pd

    from jaxsyn.data.labelled import load_labelled
    from jaxsyn.eval import features
    from jaxsyn.eval.fidelity import fid

    out, fids = {}, {}
    real = (load_labelled(str(data["ct"]), None, args.size, 0, progress=False).images + 1) / 2
    extractors = {"pixels": features.pixels}
    try:
        extractors["inception"] = features.builtin("inception")
    except Exception as e:  # no weights file: say so
        out["inception_unavailable"] = f"{type(e).__name__}: {e}"
    real_features = {n: features.extract(f, real, progress=False) for n, f in extractors.items()}
    translated = {("real", "ct"): real}
    half = len(real) // 2  # the floor: FID between two halves of the real CTs
    for name in extractors:
        a, b = real_features[name][:half], real_features[name][half:]
        fids[f"real-ct-halves/{name}"] = float(fid(a, b))
    for source in ("mri", "pet"):
        table = pd.read_csv(data[source] / "labels.csv", dtype={"image_id": str})
        ids = table["image_id"].tolist()[: args.fid_n]
        subset = link_folder(data[source], work / "fid" / source, ids, table)
        for kind in ("cyclegan", "joint"):
            run_dir = work / "split00" / f"{kind}-{source}"
            if not (run_dir / "predictions").is_dir():
                continue
            dest = work / "fid" / f"{kind}-{source}"
            shutil.rmtree(dest, ignore_errors=True)
            run([*JAXSYN, "translate", "--run", str(run_dir), "--images", str(subset),
                 "--out", str(dest)], work / "fid" / "translate.log")  # fmt: skip
            images = (load_labelled(str(dest), None, args.size, 0, progress=False).images + 1) / 2
            translated[(kind, source)] = images
            for name, f in extractors.items():
                fake = features.extract(f, images, progress=False)
                fids[f"{kind}-{source}/{name}"] = float(fid(real_features[name], fake))
        source_images = (load_labelled(str(subset), None, args.size, 0, progress=False).images
                         + 1) / 2  # fmt: skip
        translated[("source", source)] = source_images
        for name, f in extractors.items():
            fids[f"untranslated-{source}/{name}"] = float(
                fid(real_features[name], features.extract(f, source_images, progress=False))
            )
    out["fid"] = fids
    out["fid_n"] = {"real_ct": len(real), "translated": args.fid_n}
    out["inception_score"] = inception_scores(translated)
    out["figure"] = figure(translated, args.out / "figure.png")
    return out


def inception_scores(translated) -> dict:
    try:
        from jaxsyn.eval import inception_score
    except ImportError as e:
        return {"unavailable": f"jaxsyn.eval has no inception_score ({e})"}
    scores = {}
    for (kind, source), images in translated.items():
        try:
            scores[f"{kind}-{source}"] = inception_score(images)
        except Exception as e:  # the weights file lacks the classifier layer: say so
            return {"unavailable": f"{type(e).__name__}: {e}"}
    return scores


def figure(translated, path: Path) -> str | None:
    """Rows: source, CycleGAN, joint, for each source with translations; 8 images a row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxsyn.files import atomic_path

    rows = [("real CT", translated[("real", "ct")])] if ("real", "ct") in translated else []
    rows += [(f"{k} ({s})", translated[(k, s)]) for s in ("mri", "pet")
            for k in ("source", "cyclegan", "joint") if (k, s) in translated]  # fmt: skip
    if len(rows) < 2:
        return None
    cols = min(8, min(len(x) for _, x in rows))
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.3 * cols, 1.4 * len(rows)), squeeze=False)
    for r, (name, images) in enumerate(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.imshow(images[c, ..., 0], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path.name


def table_markdown(summary: dict, quality: dict, meta: dict) -> str:
    lines = [f"# DUIIT at CPU scale: {meta['command']}", "",
             f"Scale: {json.dumps(meta['scale'])}; CT {meta['ct_patients']} patients x "
             f"{meta['slices']} slices, MRI and PET {meta['source_patients']} patients each; "
             f"{meta['splits']} splits holding out {meta['test_fraction']:.0%} of CT patients.", "",
             "| setting | MSE mean | sd | splits | paper mean (sd) |", "|---|---|---|---|---|"]  # fmt: skip
    for s, v in summary["mse"].items():
        sd = f"{v['sd']:.1f}" if v["sd"] is not None else "-"
        paper = PAPER_MSE.get(s)
        ref = f"{paper[0]:.1f} ({paper[1]:.1f})" if paper else "-"
        lines.append(f"| {s} | {v['mean']:.1f} | {sd} | {v['n_splits']} | {ref} |")
    lines += [
        "",
        "| paired t-test | n | mean difference | t | p | p < 0.1 |",
        "|---|---|---|---|---|---|",
    ]
    for name, t in summary["t_tests"].items():
        diff = f"{t['mean_difference']:+.1f}" if t["mean_difference"] is not None else "-"
        if "p" in t:
            lines.append(f"| {name} | {t['n']} | {diff} | {t['t']:.2f} | {t['p']:.3f} | "
                         f"{'yes' if t['significant_at_0_1'] else 'no'} |")  # fmt: skip
        else:
            lines.append(f"| {name} | {t['n']} | {diff} | - | - | - |")
    if quality:
        lines += ["", "| translation FID (split 0) | value |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in quality.get("fid", {}).items()]
        lines += ["", f"Inception Score: {json.dumps(quality.get('inception_score'))}"]
    return "\n".join(lines) + "\n"


def check_scale(work: Path, scale: dict) -> None:
    """runs.jsonl resumes only at the scale it was started with (else a table would mix runs of
    different lengths or data): WORK/scale.json records it."""
    path = work / "scale.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved != json.loads(json.dumps(scale)):
            diff = {k: (saved.get(k), scale.get(k)) for k in saved.keys() | scale.keys()
                    if saved.get(k) != scale.get(k)}  # fmt: skip
            raise SystemExit(f"{path}: this work folder's runs were made at another scale "
                             f"(saved, now): {diff}; use another --work or the same options")  # fmt: skip
        return
    from jaxsyn.files import write_json

    write_json(path, scale)


def continue_from(results: Path, work: Path, scale: dict) -> None:
    """WORK/runs.jsonl from `results`' runs, when WORK has none and `results` is at `scale`.
    The runs' folders are not in it: Table 5 and the figure need split 0's translators, so their
    runs are left out, to be trained again."""
    from jaxsyn.files import write_text

    if (work / "runs.jsonl").exists():
        raise SystemExit(f"--continue-from: {work / 'runs.jsonl'} exists; use a new --work")
    saved = json.loads(results.read_text())
    was = {**saved["scale"], **{k: saved[k] for k in ("ct_patients", "slices", "source_patients",
                                                       "test_fraction")}}  # fmt: skip
    now = {k: v for k, v in scale.items() if k != "seed"}  # results.json predates the seed key
    if json.loads(json.dumps(now)) != was:
        raise SystemExit(f"--continue-from {results}: made at {was}, not at {now}")
    keep = [r for r in saved["runs"]
            if not (r["split"] == 0 and r["setting"].startswith(("joint", "cyclegan")))]  # fmt: skip
    write_text(work / "runs.jsonl", "".join(json.dumps(r) + "\n" for r in keep))
    print(f"{work / 'runs.jsonl'}: {len(keep)} runs from {results}", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 split, tiny networks, few steps")
    p.add_argument("--splits", type=int)
    p.add_argument("--settings", help=f"comma-separated subset of {','.join(SETTINGS)}")
    p.add_argument("--steps", type=int, help="training steps per run (default: the scale's)")
    p.add_argument("--ct-patients", type=int, default=30)
    p.add_argument("--source-patients", type=int, default=150)
    p.add_argument("--slices", type=int, default=3, help="axial slices per patient")
    p.add_argument("--test-fraction", type=float, default=1 / 3)
    p.add_argument("--fid-n", type=int, default=96, help="source images translated for FID")
    p.add_argument("--seed", type=int, default=0, help="phantom cohorts' seed")
    p.add_argument("--work", type=Path, default=Path("/tmp/jaxsyn-duiit-experiment"))
    p.add_argument("--out", type=Path, help="results folder (default: this folder)")
    p.add_argument("--report-only", action="store_true", help="no training: tables from runs.jsonl")
    p.add_argument("--continue-from", type=Path, metavar="RESULTS_JSON",
                   help="start a new work folder's runs.jsonl from a results.json's runs (same "
                        "scale), so a later session runs only what is missing")  # fmt: skip
    args = p.parse_args(argv)
    args.scale = dict(QUICK if args.quick else FULL)
    if args.steps:
        args.scale["steps"] = args.steps
    args.size = args.scale["size"]
    args.splits = args.splits or (1 if args.quick else 10)
    args.settings = args.settings.split(",") if args.settings else list(DEFAULT)
    unknown = sorted(set(args.settings) - set(SETTINGS))
    if unknown:
        p.error(f"--settings {unknown}: unknown; expected some of {','.join(SETTINGS)}")
    work = args.work / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    scale = {**args.scale, "ct_patients": args.ct_patients, "slices": args.slices,
             "source_patients": args.source_patients, "seed": args.seed,
             "test_fraction": args.test_fraction}  # fmt: skip
    if args.continue_from:
        continue_from(args.continue_from, work, scale)
    check_scale(work, scale)
    args.out = args.out or (work / "results" if args.quick else HERE)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.report_only:
        rows = list(done_runs(work / "runs.jsonl").values())
        data = make_data(args, work)
    else:
        rows = experiment(args, work)
        data = make_data(args, work)
    summary = summarise(rows, args.settings)
    quality = translation_quality(args, work, data)
    command = " ".join(["experiments/duiit/run.py", *(argv if argv is not None else sys.argv[1:])])
    meta = {"command": command, "scale": args.scale, "ct_patients": args.ct_patients,
            "source_patients": args.source_patients, "slices": args.slices,
            "splits": args.splits, "test_fraction": args.test_fraction,
            "seconds": time.perf_counter() - t0}  # fmt: skip
    from jaxsyn.files import write_json, write_text

    write_json(args.out / "results.json", {**meta, **summary, "translation": quality, "runs": rows})
    write_text(args.out / "table.md", table_markdown(summary, quality, meta))
    print(table_markdown(summary, quality, meta))


if __name__ == "__main__":
    main()
