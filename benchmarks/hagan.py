"""HA-GAN throughput and memory: jaxsyn against our PyTorch implementation, in the same run.

    .venv/bin/python benchmarks/hagan.py --size 128 --batch 4 --steps 3
    .venv/bin/python benchmarks/hagan.py --size 256 --what generate --impl jaxsyn
    .venv/bin/python benchmarks/hagan.py --size 256 --what cli --impl jaxsyn   # `jaxsyn generate`
    .venv/bin/python benchmarks/hagan.py --size 128 --what train --conv both   # oneDNN vs XLA convs

Prints one JSON object per line per implementation: impl, size, batch, iteration_seconds (median
of --steps training iterations after one warm-up: D, G, E^H and E^G steps), volume_seconds (one
full-resolution volume, median of 2 after warm-up; jaxsyn: chunked G^H), peak_rss_bytes (of the
process that ran it: training and generation each run in their own process), and for jaxsyn
compiled_bytes_onepass / compiled_bytes_chunked (XLA's memory_analysis of generation).
The torch side is `benchmarks/hagan_torch.py` (the `bench` extra); skipped if torch is absent.
`--conv` picks jaxsyn's 3D convolution path (jaxsyn.kernels: `auto`, `xla`, `onednn`, or `both`
for one jaxsyn row per path, each in its own child processes via $JAXSYN_CONV3D); each jaxsyn row
says which path ran (`conv`).
Data are random volumes in [-1, 1]: throughput does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def jaxsyn_train(size: int, batch: int, steps: int) -> dict:
    import jax
    import numpy as np

    from jaxsyn.models.hagan import HAGANConfig
    from jaxsyn.train import hagan, parallel

    config = hagan.HAGANTrainConfig(model=HAGANConfig(size=size, batch_size=batch))
    mesh = parallel.make_mesh(jax.devices()[:1])
    rng = np.random.default_rng(0)
    s = size
    volume = rng.uniform(-1, 1, (batch, s, s, s, 1)).astype(np.float32)
    host = {
        "volume": volume,
        "slab": volume[:, : s // 8],
        "low": volume[:, ::4, ::4, ::4],
        "slab_index": np.zeros((batch,), np.int32),
        "conditions": np.zeros((batch, 0), np.float32),
    }
    with jax.set_mesh(mesh):
        state = hagan.make_state(config, mesh)
        step = hagan.make_step(config, mesh)
        batch_arrays = parallel.shard_batch(host, mesh)
        times = []
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            state, metrics = step(state, batch_arrays)
            jax.block_until_ready(metrics)
            times.append(time.perf_counter() - t0)
    return {
        "iteration_seconds": statistics.median(times[1:]),
        "compile_and_first_seconds": times[0],
    }


def jaxsyn_generate(size: int, chunk: int, fused: bool = True) -> dict:
    import jax

    from jaxsyn.infer import hagan as infer
    from jaxsyn.models import hagan

    config = hagan.HAGANConfig(size=size, fused_upsample=fused)
    zc = jax.random.normal(jax.random.key(1), (1, config.latent_dim))
    # only the generator, as `jaxsyn generate` restores only G's arrays from a checkpoint
    init = jax.jit(lambda key: hagan.Generator(config).init(key, zc, 0)["params"])
    params = init(jax.random.key(0))
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _first, _block in infer.generate_chunks(params, zc, config, chunk):
            pass  # blocks are numpy: the device work is done
        times.append(time.perf_counter() - t0)
    return {"volume_seconds": statistics.median(times[1:]), "chunk": chunk, "fused_upsample": fused}


def jaxsyn_memory(size: int, chunk: int) -> dict:
    """XLA's planned memory of one-pass vs chunked generation (compiled, not run)."""
    import jax

    from jaxsyn.infer import hagan as infer
    from jaxsyn.models import hagan

    config = hagan.HAGANConfig(size=size)
    zc = jax.ShapeDtypeStruct((1, config.latent_dim), "float32")
    params = jax.eval_shape(
        lambda k: hagan.Generator(config).init(k, jax.numpy.zeros(zc.shape), 0)["params"],
        jax.random.key(0),
    )
    memory = infer.compiled_memory(params, zc, config, chunk)
    return {
        "compiled_bytes_onepass": memory["onepass"],
        "compiled_bytes_chunked": memory["chunked"],
    }


def jaxsyn_cli_generate(size: int, chunk: int) -> dict:
    """`jaxsyn generate` on a run folder holding an untrained full-width checkpoint: the CLI path
    (generator-only restore, chunked G^H, NIfTI written), its wall time and the child's peak RSS."""
    import tempfile

    import jax

    from jaxsyn.checkpoint import Checkpointer, as_json
    from jaxsyn.files import write_json
    from jaxsyn.models.hagan import HAGANConfig
    from jaxsyn.train import hagan

    config = hagan.HAGANTrainConfig(model=HAGANConfig(size=size, batch_size=1))
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        with Checkpointer(run / "checkpoints", config) as ckpt:
            ckpt.save(1, hagan.init_state(config))
        info = {**as_json(config), "family": "hagan", "window": [-1024.0, 600.0], "spacing_mm": 1.0}
        write_json(run / "config.json", info)
        jax.clear_caches()
        cmd = [
            str(Path(sys.executable).parent / "jaxsyn"),
            "generate",
            "--run",
            str(run),
            "--n",
            "2",
        ]
        cmd += ["--out", str(Path(tmp) / "out"), "--chunk", str(chunk)]
        # /usr/bin/time measures the generate process alone: a child forked from this big
        # process would count the parent's pages in its max RSS until it execs.
        cmd = ["/usr/bin/time", "-f", "maxrss_kib=%M", *cmd]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
        child_rss = int(proc.stderr.rsplit("maxrss_kib=", 1)[1].split()[0]) * 1024
    return {"cli_two_volumes_seconds": seconds, "cli_peak_rss_bytes": child_rss}


def child(args) -> None:
    """Run one measurement in this process and print its JSON."""
    from jaxsyn import kernels

    conv = kernels.info()["implementation"] or kernels.info()["float32"]
    if args.what == "train":
        result = jaxsyn_train(args.size, args.batch, args.steps)
    elif args.what == "generate":
        result = jaxsyn_generate(args.size, args.chunk, not args.unfused)
    elif args.what == "cli":
        result = jaxsyn_cli_generate(args.size, args.chunk)
    else:
        result = jaxsyn_memory(args.size, args.chunk)
    print(json.dumps({**result, "conv": conv, "peak_rss_bytes": rss_bytes()}))


def run_child(cmd: list[str], env: dict | None = None) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=4, help="jaxsyn: hypercube slices per chunk")
    parser.add_argument(
        "--what", choices=("train", "generate", "both", "memory", "cli"), default="both"
    )
    parser.add_argument("--impl", choices=("jaxsyn", "torch", "both"), default="both")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--unfused", action="store_true", help="jaxsyn: reference upsample+conv")
    parser.add_argument(
        "--conv",
        choices=("auto", "xla", "onednn", "both"),
        default="auto",
        help="jaxsyn: 3D convolution path (jaxsyn.kernels); both: a row for xla and for onednn",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    whats = ("train", "generate") if args.what == "both" else (args.what,)
    common = ["--size", str(args.size), "--batch", str(args.batch), "--steps", str(args.steps)]
    convs = ("xla", "onednn") if args.conv == "both" else (args.conv,)
    for conv in convs if args.impl in ("jaxsyn", "both") else ():
        env = {**os.environ, "JAXSYN_CONV3D": conv}
        row = {"impl": "jaxsyn", "size": args.size, "batch": args.batch, "steps": args.steps}
        for what in (*whats, "memory") if "generate" in whats else whats:
            cmd = [
                sys.executable,
                __file__,
                *(["--unfused"] if args.unfused else []),
                "--child",
                "--what",
                what,
                "--chunk",
                str(args.chunk),
                *common,
            ]
            result = run_child(cmd, env)
            row[f"peak_rss_bytes_{what}"] = result.pop("peak_rss_bytes")
            row.update(result)
        row.pop("peak_rss_bytes_memory", None)  # the compile-only child measures nothing real
        row.pop("peak_rss_bytes_cli", None)  # its parent builds the checkpoint; see cli_peak_rss
        peaks = [v for k, v in row.items() if k.startswith("peak_rss_bytes_")]
        if peaks:
            row["peak_rss_bytes"] = max(peaks)
        print(json.dumps(row), flush=True)
    if args.impl in ("torch", "both"):
        try:
            import torch  # noqa: F401
        except ImportError:
            print(
                json.dumps(
                    {"impl": "torch", "skipped": "torch not installed (pip install '.[bench]')"}
                )
            )
            return
        row = {"impl": "torch", "size": args.size, "batch": args.batch, "steps": args.steps}
        for what in whats:
            cmd = [
                sys.executable,
                str(HERE / "hagan_torch.py"),
                "--what",
                what,
                "--threads",
                str(args.threads),
                *common,
            ]
            result = run_child(cmd)
            row[f"peak_rss_bytes_{what}"] = result.pop("peak_rss_bytes")
            row.update(
                {k: v for k, v in result.items() if k not in row and k != "what" and v is not None}
            )
        row["peak_rss_bytes"] = max(v for k, v in row.items() if k.startswith("peak_rss_bytes_"))
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
