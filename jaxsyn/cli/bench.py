"""The `bench` verb: each family's training step and generation timed on the devices JAX sees,
with analytic model FLOPs, MFU, compiled memory and peak RSS per row (one process per row); or,
with `--memory`, compiled memory per remat policy and batch without running anything."""

from __future__ import annotations

import itertools
import json
import os
import platform
import shlex
import sys
from pathlib import Path

from jaxsyn.errors import ConfigError

DEFAULT_SIZE = {
    "hagan": 64,
    "mmcgan": 64,
    "ctgan": 100_000,
    "proggan": 64,
    "cpdgan": 64,
    "acgan": 64,
    "duiit": 64,
}
DEFAULT_BATCH = {
    "hagan": 1,
    "mmcgan": 2,
    "ctgan": 500,
    "proggan": 32,
    "cpdgan": 32,
    "acgan": 32,
    "duiit": 16,
}


def per_family(text: str | None, families, default: dict, flag: str) -> dict[str, list[int]]:
    """`--size 64,128` (every family) or `--size hagan=256,ctgan=1000000` (named ones; others
    take their default) -> {family: [values]}."""
    out = {f: [default[f]] for f in families}
    if not text:
        return out
    plain, named = [], {}
    for item in (t.strip() for t in text.split(",") if t.strip()):
        name, sep, value = item.rpartition("=")
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(
                f"{flag} {text}: {item!r} is not an integer or FAMILY=INTEGER"
            ) from None
        if number < 1:
            raise ConfigError(f"{flag} {text}: {number} must be >= 1")
        if sep:
            if name not in default:
                raise ConfigError(f"{flag} {text}: {name!r} is not a family")
            named.setdefault(name, []).append(number)
        else:
            plain.append(number)
    for f in families:
        out[f] = named.get(f) or plain or out[f]
    return out


def specs(args) -> list[dict]:
    from jaxsyn.bench import cases
    from jaxsyn.nn.remat import POLICIES

    families = [f.strip() for f in args.family.split(",") if f.strip()]
    for f in families:
        if f not in cases.FAMILIES:
            raise ConfigError(f"--family {f}: expected some of {','.join(cases.FAMILIES)}")
    workloads = [w.strip() for w in args.workload.split(",") if w.strip()]
    for w in workloads:
        if w not in cases.WORKLOADS:
            raise ConfigError(f"--workload {w}: expected train and/or generate")
    dtypes = [d.strip() for d in args.dtype.split(",") if d.strip()]
    for d in dtypes:
        if d not in ("float32", "bfloat16"):
            raise ConfigError(f"--dtype {d}: expected float32 and/or bfloat16")
    remats = [
        r.strip()
        for r in (args.remat or ("none" if not args.memory else ",".join(POLICIES))).split(",")
    ]
    for r in remats:
        if r not in POLICIES:
            raise ConfigError(f"--remat {r}: expected some of {','.join(POLICIES)}")
    sizes = per_family(args.size, families, DEFAULT_SIZE, "--size")
    batches = per_family(args.batch, families, DEFAULT_BATCH, "--batch")
    out = []
    for f in families:
        for w, size, batch, dtype, remat in itertools.product(
            workloads, sizes[f], batches[f], dtypes, remats
        ):
            if w == "generate" and f not in cases.GENERATES:
                continue
            if remat != "none" and (f not in cases.REMAT_FAMILIES or w == "generate"):
                continue  # remat changes nothing without a backward pass
            spec = dict(family=f, workload=w, size=size, batch=batch, dtype=dtype, remat=remat)
            spec.update(tiny=args.tiny, steps=args.steps, memory=args.memory)
            if args.peak_flops is not None:
                spec["peak_flops"] = args.peak_flops
            out.append(spec)
    if not out:
        raise ConfigError("nothing to run: check --family, --workload and --remat")
    return out


def _mib(x) -> str:
    return "-" if x is None else f"{x / 2**20:,.1f}"


def table(rows: list[dict], memory: bool) -> str:
    """The rows as a fixed-width text table."""
    if memory:
        head = ("family", "workload", "size", "batch", "dtype", "remat", "temp MiB", "args MiB",
                "out MiB", "compile s")  # fmt: skip
    else:
        head = ("family", "workload", "size", "batch", "dtype", "remat", "step s", "±", "samples/s",
                "GFLOP/step", "TFLOP/s", "MFU %", "temp MiB", "compile s", "RSS MiB")  # fmt: skip
    lines = []
    for r in rows:
        first = [
            str(r.get(k, "")) for k in ("family", "workload", "size", "batch", "dtype", "remat")
        ]
        if "error" in r:
            lines.append([*first, f"error: {r['error']}"[:100]])
            continue
        if memory:
            rest = [_mib(r["compiled_temp_bytes"]), _mib(r["compiled_argument_bytes"]),
                    _mib(r["compiled_output_bytes"]), f"{r['compile_seconds']:.1f}"]  # fmt: skip
        else:
            mfu = "-" if r["mfu"] is None else f"{100 * r['mfu']:.2f}"
            rest = [
                f"{r['step_seconds']:.4g}",
                f"{r['step_seconds_spread']:.2g}",
                f"{r['samples_per_second']:.4g}",
                f"{r['flops_per_step'] / 1e9:.4g}",
                f"{r['flops_per_second'] / 1e12:.4g}",
                mfu,
                _mib(r["compiled_temp_bytes"]),
                f"{r['compile_seconds']:.1f}",
                _mib(r["peak_rss_bytes"]),
            ]
        lines.append([*first, *rest])
    widths = [max(len(h), *(len(ln[i]) for ln in lines if i < len(ln))) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=False))  # noqa: E731
    return "\n".join([fmt(head), *(fmt(ln) for ln in lines)])


def bench(args) -> None:
    from tqdm.auto import tqdm

    from jaxsyn.bench import measure
    from jaxsyn.files import write_json

    todo = specs(args)
    bar = tqdm(total=len(todo), desc="bench", unit="row", file=sys.stderr)

    def done(row):
        bar.set_postfix_str(
            f"{row['family']} {row.get('workload', '')} {row['size']}x{row['batch']}"
        )
        bar.update()

    rows = measure.rows(todo, on_row=done, timeout=args.row_timeout)
    bar.close()
    import jax

    device = jax.devices()[0]
    if args.memory and device.platform == "cpu":
        print(f"compiled memory: {measure.CPU_MEMORY_NOTE}")
    print(table(rows, args.memory))
    if args.out:
        meta = {
            "command": shlex.join(["jaxsyn", *sys.argv[1:]]),
            "backend": device.platform,
            "device_kind": device.device_kind,
            "jax": jax.__version__,
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
        }
        if args.memory and device.platform == "cpu":
            meta["note"] = measure.CPU_MEMORY_NOTE
        write_json(args.out, {**meta, "rows": rows})
        print(f"wrote {args.out}")
    if any("error" in r for r in rows):
        failed = [r for r in rows if "error" in r]
        raise ConfigError(f"{len(failed)} of {len(rows)} rows failed: {json.dumps(failed[0])}")


def add_parsers(verbs) -> None:
    p = verbs.add_parser(
        "bench",
        help="throughput, model FLOPs, MFU and compiled memory of each family's step",
        description=__doc__,
    )
    p.add_argument(
        "--family",
        default="hagan,mmcgan,ctgan,proggan,cpdgan,acgan,duiit",
        help="comma-separated families (default: all)",
    )
    p.add_argument("--workload", default="train,generate", help="train and/or generate")
    p.add_argument(
        "--size",
        help="volume/image side (CTGAN: table rows); comma-separated, or FAMILY=N items "
        f"(defaults {DEFAULT_SIZE})",
    )
    p.add_argument(
        "--batch",
        help=f"samples per step; comma-separated, or FAMILY=N items (defaults {DEFAULT_BATCH})",
    )
    p.add_argument("--dtype", default="float32", help="float32 and/or bfloat16 (compute dtype)")
    p.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    p.add_argument("--out", type=Path, help="write the rows to this JSON file")
    p.add_argument(
        "--peak-flops",
        type=float,
        help="peak FLOP/s of one device (default: a table by device kind; on CPU, estimated "
        "from /proc/cpuinfo)",
    )
    p.add_argument(
        "--memory",
        action="store_true",
        help="compiled memory only (AOT against abstract inputs, nothing run), for each --remat "
        "policy (default: all) and batch",
    )
    p.add_argument(
        "--remat",
        help="activation checkpointing policy: none, nothing_saveable, dots_saveable "
        "(comma-separated; default none, or all with --memory)",
    )
    p.add_argument(
        "--tiny", action="store_true", help="the families' tiny test configs (smoke runs)"
    )
    p.add_argument("--row-timeout", type=float, help="seconds before a row's process is stopped")
    p.set_defaults(handler=bench)
