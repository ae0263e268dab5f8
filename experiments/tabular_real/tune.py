"""Where jaxsyn's defaults lose quality, measured on the tuning table only (flchain, never
reported with the four).

    .venv/bin/python experiments/tabular_real/tune.py --rows 1500 --epochs 100 --seeds 0,1,2 \
        --records /tmp/tabular_real/tune.json

flchain cut to `--rows` random rows (seeded, fixed across variants), split 75 / 25 as run.py.
Trained variants (each otherwise jaxsyn's defaults):
  defaults       CTGANTrainConfig(seed=...)
  single         extra_condition_p = 0: hard conditions, but one named column per training row
  soft           hard_conditions False and extra_condition_p 0 (the reference's training)
  iters300       the mode-specific normalisation's mixtures fitted for 300 variational
  iters1000      (1000) iterations instead of the reference's 100 (see RESULTS.md: modes)
  lr5e-4, lr1e-3 both Adam learning rates (the reference's 2e-4): a small table gets one step an
                 epoch at batch 500, so 100 epochs are 100-200 steps
  batch50,       batch_size 50 / 100 / 200 instead of the reference's 500 (multiples of pac 10):
  batch100,      more steps an epoch on a small table (max(N // batch, 1)), so more generator
  batch200       steps at equal epochs
Each trained model is sampled two ways: `running` (the defaults: BatchNorm running statistics,
empirical free conditions) and `batch` (each training-size batch's own statistics: 500 rows
at the defaults, the variant's batch_size for batchN; empirical conditions). Scores as run.py
(quality, utility, DCR).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import jax

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import run as study  # noqa: E402
import tables as tables_lib  # noqa: E402

from jaxsyn import files  # noqa: E402
from jaxsyn.cli import cache  # noqa: E402
from jaxsyn.data.tabular import TransformerConfig, infer_schema  # noqa: E402
from jaxsyn.data.tabular.mixture import MixtureConfig  # noqa: E402
from jaxsyn.infer.ctgan import TableSynthesizer  # noqa: E402
from jaxsyn.models.ctgan import CTGANConfig  # noqa: E402
from jaxsyn.train import ctgan as train  # noqa: E402

VARIANTS = {
    "defaults": {},
    "single": {"extra_condition_p": 0.0},
    "soft": {"extra_condition_p": 0.0, "model": CTGANConfig(hard_conditions=False)},
    "iters300": {"transformer": TransformerConfig(mixture=MixtureConfig(n_iter=300))},
    "iters1000": {"transformer": TransformerConfig(mixture=MixtureConfig(n_iter=1000))},
    "lr5e-4": {"g_lr": 5e-4, "d_lr": 5e-4},
    "lr1e-3": {"g_lr": 1e-3, "d_lr": 1e-3},
    "batch50": {"batch_size": 50},
    "batch100": {"batch_size": 100},
    "batch200": {"batch_size": 200},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1500)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--records", default="/tmp/tabular_real/tune.json")
    args = p.parse_args()
    cache.configure()
    full = tables_lib.load(tables_lib.TUNING)
    frame = full.frame.sample(n=min(args.rows, len(full.frame)), random_state=0)
    table = dataclasses.replace(full, frame=frame.reset_index(drop=True))
    path = Path(args.records)
    state = json.loads(path.read_text()) if path.is_file() else {
        "command": " ".join(["python", *sys.argv]), "records": []}  # fmt: skip
    done = {(r["seed"], r["variant"], r["sampling"]) for r in state["records"]}
    with tempfile.TemporaryDirectory(prefix="tabular-tune-") as work:
        for seed in [int(s) for s in args.seeds.split(",")]:
            train_df, holdout = study.split(table, seed)
            for variant in args.variants.split(","):
                if (seed, variant, "running") in done:
                    continue
                config = train.CTGANTrainConfig(seed=seed, **VARIANTS[variant])
                run_dir = Path(work) / f"{variant}-{seed}"
                t = time.perf_counter()
                train.run(run_dir, train_df, epochs=args.epochs, config=config,
                          schema=infer_schema(train_df, kinds=table.kinds(), detect_id=False),
                          progress=False, checkpoint_every=10**9, keep=1,
                          devices=jax.devices()[:1])  # fmt: skip
                seconds = time.perf_counter() - t
                synth = TableSynthesizer.load(run_dir)
                batch = TableSynthesizer(synth.transformer, synth.config, synth.params,
                                         synth.counts, stats=None,
                                         batch_size=synth.batch_size)  # fmt: skip
                for sampling, s in (("running", synth), ("batch", batch)):
                    syn = s.sample(len(train_df), key=seed + 1000, ids=False)
                    rec = {"seed": seed, "variant": variant, "sampling": sampling,
                           "epochs": args.epochs, "rows": len(table.frame), "fit_seconds":
                           seconds, **study.score(table, train_df, syn, holdout, seed=-1)}  # fmt: skip
                    state["records"].append(rec)
                    files.write_json(path, state)
                    print(json.dumps({k: rec[k] for k in ("seed", "variant", "sampling",
                          "overall", "column_shapes", "column_pair_trends")}
                          | {"utility": rec["utility"]["synthetic"]}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
