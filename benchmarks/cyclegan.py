"""CycleGAN training-step time: jaxsyn's DUIIT translator against a PyTorch CycleGAN of the same
architecture (`benchmarks/cyclegan_torch.py`), in the same run.

    .venv/bin/python benchmarks/cyclegan.py --sizes 128,256 --steps 10 --out cyclegan.json
    .venv/bin/python benchmarks/cyclegan.py --sizes 64 --steps 2 --impl both      # a smoke run

One step is one CycleGAN iteration at batch 1, as CycleGAN trains: G_AB and G_BA on the LSGAN
and cycle losses (lambda_cyc 10, no identity loss), then D_A and D_B on real images and on fakes
drawn through the 50-image history buffers; Adam 2e-4 (beta1 0.5). jaxsyn's is
`jaxsyn.train.duiit.make_step` of the `cyclegan` setting without labels (the translators alone:
`jaxsyn.models.cyclegan`'s ResNet generator, 6 residual blocks at 128 px and 9 above, and the
70 x 70 PatchGAN), on one device; torch's the same networks with torch's Adam. Images are
uniform noise in [-1, 1]: the cost does not depend on them. Each implementation and size runs in
its own process (its peak RSS is its own); the time is the median of --steps steps after
--warmup warm-up steps (the first includes jaxsyn's compilation, reported apart).
Prints one JSON line per implementation and size and writes them all to --out.
Run it on a quiet machine: the numbers are wall-clock times.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def jaxsyn_step(size: int, steps: int, warmup: int, dtype: str) -> dict:
    import jax
    import numpy as np

    from jaxsyn.models.cyclegan import CycleGANConfig
    from jaxsyn.train import duiit, parallel

    base = duiit.setting_defaults("cyclegan", sources=1)
    model = dataclasses.replace(base.model, translator=CycleGANConfig(size=size, dtype=dtype),
                                predict=False)  # fmt: skip
    config = dataclasses.replace(base, model=model, batch_size=1, steps=max(steps + warmup, 2))
    mesh = parallel.make_mesh(jax.devices()[:1])
    rng = np.random.default_rng(0)

    def cohort():
        image = rng.uniform(-1, 1, (1, size, size, 1)).astype(np.float32)
        return {"image": image, "label": np.zeros((1,), np.float32)}

    host = {"target": cohort(), "s0": cohort()}
    with jax.set_mesh(mesh):
        state = duiit.make_state(config, mesh)
        step = duiit.make_step(config, mesh)
        batch = parallel.shard_batch(host, mesh)
        times = []
        for _ in range(warmup + steps):
            t0 = time.perf_counter()
            state, metrics = step(state, batch)
            jax.block_until_ready(metrics)
            times.append(time.perf_counter() - t0)
    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    return {"impl": "jaxsyn", "size": size, "batch": 1, "steps": steps, "dtype": dtype,
            "step_seconds": statistics.median(times[warmup:]), "first_seconds": times[0],
            "parameters": int(n_params), "jax_version": jax.__version__,
            "devices": str(jax.devices()[0].platform)}  # fmt: skip


def run_child(cmd: list[str]) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,256", help="image sides, comma-separated")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (median)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--impl", choices=("jaxsyn", "torch", "both"), default="both")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--dtype", default="float32", help="jaxsyn compute dtype")
    parser.add_argument("--out", type=Path, help="JSON file of every row")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        row = jaxsyn_step(args.child, args.steps, args.warmup, args.dtype)
        row["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps(row))
        return
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        if args.impl in ("jaxsyn", "both"):
            cmd = [sys.executable, __file__, "--child", str(size), "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--dtype", args.dtype]  # fmt: skip
            rows.append(run_child(cmd))
            print(json.dumps(rows[-1]), flush=True)
        if args.impl in ("torch", "both"):
            try:
                import torch  # noqa: F401
            except ImportError:
                rows.append({"impl": "torch", "size": size,
                             "skipped": "torch not installed (pip install '.[bench]')"})  # fmt: skip
            else:
                cmd = [sys.executable, str(HERE / "cyclegan_torch.py"), "--size", str(size),
                       "--steps", str(args.steps), "--warmup", str(args.warmup),
                       "--threads", str(args.threads)]  # fmt: skip
                rows.append(run_child(cmd))
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        sys.path.insert(0, str(HERE.parent))
        from jaxsyn.files import write_json

        write_json(args.out, {"command": " ".join(sys.argv), "machine": platform.machine(),
                              "cpus": os.cpu_count(), "rows": rows})  # fmt: skip


if __name__ == "__main__":
    main()
