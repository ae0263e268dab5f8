"""Where a CTGAN training step's time goes: jaxsyn's jitted step against one `ctgan` step, same
table, each in its own process (issue 18 item 3: why the epoch ratio moved).

    .venv/bin/python benchmarks/tabular_step.py                     # 200k rows, default threads
    .venv/bin/python benchmarks/tabular_step.py --threads 1         # both single-threaded
    .venv/bin/python benchmarks/tabular_step.py --rows 20000 --impl jaxsyn --profile

The table is benchmarks/tabular.py's (`make_table`). Each implementation prints one JSON line:
  step_seconds_min / _p10 / _median   over `--steps` steps after a warm-up. jaxsyn: the step
                returned by `jaxsyn.train.ctgan.make_step`, blocked on after each step (no
                training loop around it: no metrics log, no progress bar). ctgan: the time
                between successive generator optimiser updates inside `CTGAN.fit` (one per
                step: a critic update, then a generator update), epochs enough for `--steps`.
  threads       jaxsyn: XLA's CPU threads (`--threads 1` sets XLA_FLAGS to one intra-op
                thread); ctgan: torch.set_num_threads.
  profile       jaxsyn with `--profile`: the share of the step's thunk time by kind of XLA op
                (matmuls, the rolled threefry loops of jax.random on CPU, copies/transposes,
                sorts, the single-device all-reduce, other fusions), from a jax.profiler trace.
The minimum is the figure to compare on a shared machine (the other percentiles show the load);
on a quiet machine all three agree.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import glob
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import tabular as bench  # noqa: E402

ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def summary(times: list[float]) -> dict:
    t = np.asarray(times)
    return {"step_seconds_min": float(t.min()), "step_seconds_p10": float(np.percentile(t, 10)),
            "step_seconds_median": float(np.median(t)), "steps_timed": len(t)}  # fmt: skip


def jaxsyn_steps(rows: int, steps: int, profile: bool) -> dict:
    import jax
    import jax.numpy as jnp

    from jaxsyn.data.tabular import ConditionSampler, TableTransformer, infer_schema
    from jaxsyn.train import ctgan, parallel
    from jaxsyn.train.state import born_replicated

    df = bench.make_table(rows, 0)
    config = ctgan.CTGANTrainConfig(batch_size=bench.BATCH_SIZE, seed=0)
    schema = infer_schema(df, kinds=bench.KINDS)
    transformer = TableTransformer.fit(df, schema, config=config.transformer, progress=False)
    data = np.asarray(transformer.transform(df, jax.random.key(0), progress=False), np.float32)
    config = dataclasses.replace(config, model=config.model.bind(transformer.layout))
    sampler = ConditionSampler.from_data(transformer.layout, data, log_frequency=True)
    mesh = parallel.make_mesh(jax.devices()[:1])
    table = ctgan.TableArrays(jnp.asarray(data), jax.tree.map(jnp.asarray, sampler.arrays))
    with jax.set_mesh(mesh):
        state = born_replicated(functools.partial(ctgan.init_state, config), mesh)
        step = ctgan.make_step(config, mesh, table)
        state = jax.block_until_ready(step(state, None)[0])  # compile
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            state = jax.block_until_ready(step(state, None)[0])
            times.append(time.perf_counter() - t)
        out = summary(times)
        if profile:
            with tempfile.TemporaryDirectory() as tmp:
                jax.profiler.start_trace(tmp)
                for _ in range(20):
                    state = jax.block_until_ready(step(state, None)[0])
                jax.profiler.stop_trace()
                out["profile"] = shares(tmp)
    return out


def shares(trace_dir: str) -> dict[str, float]:
    """Share of the leaf XLA thunks' time by kind, from the newest trace under trace_dir."""
    path = sorted(glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True))[-1]
    with gzip.open(path) as f:
        events = json.load(f)["traceEvents"]
    wrapper = re.compile(r"^(\$|ThunkExecutor|PjitFunction|CommonPjRt|end: |Pjrt|TfrtCpu)")
    kinds = {"while": "random (threefry loops)", "ynn_fusion": "matmul", "dot": "matmul",
             "sort": "sort", "all-reduce": "all-reduce", "copy": "copy/transpose",
             "transpose": "copy/transpose"}  # fmt: skip
    total = collections.Counter()
    for e in events:
        if e.get("ph") != "X" or wrapper.match(e["name"]):
            continue
        kind = next((v for k, v in kinds.items() if e["name"].startswith(k)), "other fusions")
        total[kind] += e.get("dur", 0)
    s = sum(total.values()) or 1
    return {k: round(v / s, 3) for k, v in total.most_common()}


def ctgan_steps(rows: int, steps: int) -> dict:
    import torch
    from ctgan import CTGAN

    df = bench.make_table(rows, 0)
    marks: list[float] = []
    original = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        marks.append(time.perf_counter())
        return out

    torch.optim.Adam.step = step
    per_epoch = max(rows // bench.BATCH_SIZE, 1)
    model = CTGAN(epochs=-(-(steps + 1) // per_epoch), batch_size=bench.BATCH_SIZE, pac=10,
                  enable_gpu=False)  # fmt: skip
    model.fit(df, discrete_columns=bench.DISCRETE)
    g_updates = np.asarray(marks[1::2])  # critic, generator, critic, generator, ...
    return summary(np.diff(g_updates).tolist())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=0, help="0: each library's default")
    p.add_argument("--impl", default="jaxsyn,ctgan")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--child", choices=("jaxsyn", "ctgan"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child == "jaxsyn":
        row = jaxsyn_steps(args.rows, args.steps, args.profile)
    elif args.child == "ctgan":
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        row = ctgan_steps(args.rows, args.steps)
    if args.child:
        row |= {"impl": args.child, "rows": args.rows, "threads": args.threads or "default",
                "load_average_1min": os.getloadavg()[0]}  # fmt: skip
        print(json.dumps(row))
        return
    for impl in args.impl.split(","):
        env = dict(os.environ)
        if impl == "jaxsyn" and args.threads == 1:
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + ONE_THREAD).strip()
        cmd = [sys.executable, __file__, "--child", impl, "--rows", str(args.rows),
               "--steps", str(args.steps), "--threads", str(args.threads)]  # fmt: skip
        if args.profile:
            cmd.append("--profile")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        print(proc.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
