"""Every distinct 3D convolution of the HA-GAN networks, timed with XLA, oneDNN-FFI and torch.

    .venv/bin/python benchmarks/kernels.py --size 128 --reps 3

The convolutions are the ones the networks run in a training step at batch `--batch` (found by
tracing G, D, E^H and E^G's forward with `jax.eval_shape` and recording each `jaxsyn.kernels`
call; `count` says how often a shape occurs, e.g. UpConv3d's 8 phases). For each: the median of
`--reps` timed runs after one warm-up of the forward and of forward + backward (both gradients,
`jax.vjp` with a random cotangent), jitted, on the XLA path, the oneDNN path, and torch
(`F.conv3d`, NCDHW, `--threads` threads, in a child process so its OpenMP runtime stays apart).
Prints a JSON line per convolution, then a Markdown table with the count-weighted totals.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path


def _median_time(fn, reps: int) -> float:
    fn()  # warm-up: compile, primitive creation
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def hagan_convs(size: int, batch: int) -> list[dict]:
    """The distinct convolutions of HA-GAN's four networks at `size`, with how often each runs."""
    import jax
    from jaxsyn.kernels import conv as conv_module

    from jaxsyn.models import hagan

    config = hagan.HAGANConfig(size=size, batch_size=batch)
    seen: dict[tuple, dict] = {}
    original = conv_module.conv3d

    def record(x, w, stride=1, padding="SAME", dilation=1, **kwargs):
        stride_, dilation_ = conv_module._triple(stride, "s"), conv_module._triple(dilation, "d")
        pads = conv_module._pads(padding, x.shape[1:4], w.shape[:3], stride_, dilation_)
        key = (tuple(x.shape), tuple(w.shape), stride_, pads)
        row = seen.setdefault(
            key, {"x": key[0], "w": key[1], "stride": stride_, "padding": pads, "count": 0}
        )
        row["count"] += 1
        return original(x, w, stride, padding, dilation, implementation="xla")

    import jaxsyn.kernels

    conv_module.conv3d, jaxsyn.kernels.conv3d = record, record
    try:
        inputs = hagan.example_inputs(config, batch)
        for name, net in hagan.networks(config).items():
            jax.eval_shape(net.init, jax.random.key(0), *inputs[name])
    finally:
        conv_module.conv3d, jaxsyn.kernels.conv3d = original, original
    return list(seen.values())


def _gflop(row: dict, out_shape) -> float:
    k = row["w"]
    return 2 * k[0] * k[1] * k[2] * k[3] * k[4] * float(math.prod(out_shape[:4])) / 1e9


def _time_jax_conv(conv, x, w, cot, reps: int) -> tuple[float, float]:
    import jax

    fwd = jax.jit(conv)
    both = jax.jit(lambda x, w: (conv(x, w), jax.vjp(conv, x, w)[1](cot)))
    return (
        _median_time(lambda: fwd(x, w).block_until_ready(), reps),
        _median_time(lambda: jax.block_until_ready(both(x, w)), reps),
    )


def time_jax(rows: list[dict], reps: int) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxsyn import kernels

    rng = np.random.default_rng(0)
    for row in rows:
        x = jnp.asarray(rng.standard_normal(row["x"], np.float32))
        w = jnp.asarray(rng.standard_normal(row["w"], np.float32) * 0.05)
        conv = partial(kernels.conv3d, stride=row["stride"], padding=row["padding"])
        out = jax.eval_shape(conv, x, w)
        cot = jnp.asarray(rng.standard_normal(out.shape, np.float32))
        for impl in ("xla", "onednn"):
            times = _time_jax_conv(partial(conv, implementation=impl), x, w, cot, reps)
            row[f"{impl}_fwd"], row[f"{impl}_fwd_bwd"] = times
        row["y"] = tuple(out.shape)
        row["gflop_fwd"] = _gflop(row, out.shape)


def time_torch(rows: list[dict], reps: int, threads: int) -> None:
    """In this process (the child): torch.nn.functional.conv3d on the same shapes, NCDHW."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    for row in rows:
        n, d, h, w_, c = row["x"]
        kd, kh, kw, ci, co = row["w"]
        x = torch.randn(n, c, d, h, w_, generator=gen)
        w = torch.randn(co, ci, kd, kh, kw, generator=gen) * 0.05
        (pd, _), (ph, _), (pw, _) = row["padding"]  # HA-GAN pads symmetrically

        def fwd(x=x, w=w, pd=pd, ph=ph, pw=pw, row=row):
            with torch.no_grad():
                return F.conv3d(x, w, stride=row["stride"], padding=(pd, ph, pw))

        y = fwd()
        cot = torch.randn(y.shape, generator=gen)

        def both(x=x, w=w, pd=pd, ph=ph, pw=pw, row=row, cot=cot):
            xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
            y = F.conv3d(xr, wr, stride=row["stride"], padding=(pd, ph, pw))
            y.backward(cot)
            return xr.grad, wr.grad

        row["torch_fwd"] = _median_time(fwd, reps)
        row["torch_fwd_bwd"] = _median_time(both, reps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--torch-child", help=argparse.SUPPRESS)  # a JSON file of rows
    args = parser.parse_args()
    if args.torch_child:
        rows = json.loads(Path(args.torch_child).read_text())
        time_torch(rows, args.reps, args.threads)
        print(json.dumps(rows))
        return

    from jaxsyn import kernels

    if not kernels.available():
        raise SystemExit(f"oneDNN extension unavailable: {kernels.info()['reason']}")
    rows = hagan_convs(args.size, args.batch)
    time_jax(rows, args.reps)
    if not args.no_torch:
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(rows, f)
        cmd = [sys.executable, __file__, "--torch-child", f.name, "--reps", str(args.reps)]
        proc = subprocess.run(
            [*cmd, "--threads", str(args.threads)], capture_output=True, text=True
        )
        Path(f.name).unlink()
        if proc.returncode:
            print(json.dumps({"torch": "failed", "stderr": proc.stderr[-2000:]}))
        else:
            rows = json.loads(proc.stdout.strip().splitlines()[-1])
    for row in rows:
        print(json.dumps(row), flush=True)
    _table(rows, args)


def _table(rows: list[dict], args) -> None:
    impls = [i for i in ("xla", "onednn", "torch") if f"{i}_fwd" in rows[0]]
    print(f"\nHA-GAN convolutions, S={args.size}, batch {args.batch}: median of {args.reps} (s)\n")
    head = " | ".join(f"{i} fwd | {i} fwd+bwd" for i in impls)
    print(f"| x (NDHWC) | w (DHWIO) | stride | pad | count | GFLOP | {head} |")
    print("|" + "---|" * (6 + 2 * len(impls)))
    totals = dict.fromkeys([f"{i}_{p}" for i in impls for p in ("fwd", "fwd_bwd")], 0.0)
    for r in rows:
        cells = []
        for i in impls:
            for p in ("fwd", "fwd_bwd"):
                cells.append(f"{r[f'{i}_{p}']:.4f}")
                totals[f"{i}_{p}"] += r["count"] * r[f"{i}_{p}"]
        pad = "".join(str(lo) if lo == hi else f"{lo}/{hi}" for lo, hi in r["padding"])
        print(
            f"| {'x'.join(map(str, r['x']))} | {'x'.join(map(str, r['w']))} | "
            f"{''.join(map(str, r['stride']))} | {pad} | {r['count']} | {r['gflop_fwd']:.2f} | "
            + " | ".join(cells)
            + " |"
        )
    cells = " | ".join(f"**{totals[k]:.3f}**" for k in totals)
    print(f"| total (× count) | | | | | | {cells} |")


if __name__ == "__main__":
    main()
