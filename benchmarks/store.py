"""Slab reads versus whole-volume reads from the volume store (bytes read and examples/s).

    .venv/bin/python benchmarks/store.py --size 128 --n 8 --reads 64

Makes a phantom CT cohort, ingests it, then times, in one run:
  slab       level-0 slab of S/8 slices at a random depth + the level-2 volume (what the pipeline reads)
  whole      the whole level-0 volume + level 2 (what a pipeline without chunked slabs would read)
  pipeline   the Grain pipeline end to end (batch 4, 4 reader threads), examples/s
Bytes are TensorStore's own count of bytes read from files (compressed, as on disk).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorstore as ts

from jaxsyn.data.phantoms import ct
from jaxsyn.data.pipeline import PipelineConfig, make_dataset
from jaxsyn.data.store import VolumeStore, ingest


def bytes_read() -> int:
    metrics = ts.experimental_collect_matching_metrics("/tensorstore/kvstore/file/bytes_read")
    return sum(v["value"] for m in metrics for v in m["values"])


def measure(name, fn, reads):
    fn(0)  # warm: open arrays, first-touch costs
    b0, t0 = bytes_read(), time.perf_counter()
    for k in range(reads):
        fn(k)
    seconds, nbytes = time.perf_counter() - t0, bytes_read() - b0
    return {
        "name": name,
        "examples_per_s": reads / seconds,
        "mib_per_example": nbytes / reads / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--reads", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        ct.write_cohort(tmp / "ph", n=args.n, size=args.size, seed=0, progress=False)
        t1 = time.perf_counter()
        store = VolumeStore(
            ingest(
                tmp / "ph",
                tmp / "store",
                table=tmp / "ph" / "table.csv",
                size=args.size,
                progress=False,
            )
        )
        t2 = time.perf_counter()
        rng = np.random.default_rng(0)
        picks = [
            (int(rng.integers(args.n)), int(rng.integers(0, args.size * 7 // 8 + 1)))
            for _ in range(args.reads)
        ]
        depth = args.size // 8
        rows = [
            measure(
                "slab + level 2",
                lambda k: (
                    store.read_slab(picks[k][0], picks[k][1], depth),
                    store.read(picks[k][0], 2),
                ),
                args.reads,
            ),
            measure(
                "whole volume + level 2",
                lambda k: (store.read(picks[k][0]), store.read(picks[k][0], 2)),
                args.reads,
            ),
        ]
        it = iter(make_dataset(store, PipelineConfig(batch_size=4, read_threads=4)))
        rows.append(measure("Grain pipeline, batch 4", lambda k: next(it), args.reads // 4))
        rows[-1]["examples_per_s"] *= 4
        rows[-1]["mib_per_example"] /= 4
    result = {
        "size": args.size,
        "n": args.n,
        "machine": f"{platform.machine()} {platform.processor() or ''} {__import__('os').cpu_count()} cores".strip(),
        "phantom_s_per_volume": (t1 - t0) / args.n,
        "ingest_s_per_volume": (t2 - t1) / args.n,
        "rows": rows,
    }
    print(
        f"S={args.size}, {args.n} volumes: phantom {result['phantom_s_per_volume']:.2f} s/vol, ingest {result['ingest_s_per_volume']:.2f} s/vol"
    )
    print("| read | examples/s | MiB read per example |\n|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['examples_per_s']:.1f} | {r['mib_per_example']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
