"""CTGAN on a clinical table: jaxsyn against the `ctgan` package, same table, same run.

    .venv/bin/python benchmarks/tabular.py                       # 200k rows, 3 epochs, both
    .venv/bin/python benchmarks/tabular.py --rows 3000 --epochs 2 --sample-rows 2000
    .venv/bin/python benchmarks/tabular.py --impl jaxsyn --rows 20000 --epochs 5 --seed 1

Prints one JSON object per line per implementation (each measured in its own process, one after
the other, so memory, threads and compiled code do not interfere; the parent prints the lines):
  impl                     "jaxsyn" or "ctgan"
  rows, columns, epochs, seed, steps_per_epoch, sample_rows, discrete_columns
  table_sha1               hash of the training DataFrame: the same in both lines
  transformer_fit_seconds  jaxsyn: `infer_schema` (every kind given, so only bounds/categories)
                           + `TableTransformer.fit`, as `jaxsyn.train.ctgan.prepare` calls them;
                           ctgan: `DataTransformer.fit` (timed inside `CTGAN.fit`, wrapped)
  transform_seconds        jaxsyn: `TableTransformer.transform` (includes its jit compile);
                           ctgan: `DataTransformer.transform` (joblib workers, one per column)
  train_seconds_total      `run(...)` / `CTGAN.fit` wall time minus the two above: sampler and
                           network set-up, compilation (jaxsyn), every epoch, final checkpoint
  epoch_seconds            mean wall time of epochs 2..E (the first epoch, which holds jaxsyn's
                           compilation, excluded for both); with E = 1 the single epoch, compile
                           included, and `epoch_seconds_includes_compile` is true
  epoch_seconds_first      the first epoch (jaxsyn: with compilation)
  epoch_seconds_all        every epoch
  setup_seconds            of train_seconds_total, before the first step: condition sampler,
                           network and optimiser set-up (jaxsyn: compiling the init too),
                           arrays to the device
  finish_seconds           jaxsyn: after the last step (the final checkpoint write)
  first_step_seconds       jaxsyn: step 1 alone (compile + one step; blocked on)
  compile_seconds          jaxsyn estimate: first_step_seconds minus one steady-state step
  sample_rows_per_second   sample_rows / sample_seconds: the median wall time of 5 end-to-end
                           sampling calls (generate + inverse transform to a DataFrame), after a
                           warm-up call of equal size (sample_seconds_all: each call's)
  quality, quality_all_pairs  overall score of those sample_rows synthetic rows against the whole
                           real table: `jaxsyn.eval.tabular.quality` (sdmetrics QualityReport,
                           default thresholds; and over every pair); `quality_metric` says which
                           implementation computed it (sdmetrics' own if jaxsyn's is missing)
  peak_rss_bytes           of the child process
  load_average_1min        the machine's 1-minute load average before and after the child
  torch_threads            ctgan: torch's intra-op threads during the run
  machine, versions        cpu count, affinity, platform; jax, jaxlib, ctgan, torch, rdt, ...

Epoch timing. jaxsyn: the jitted step returned by `jaxsyn.train.ctgan.make_step` is wrapped so
that the host blocks on the state after step 1 and after the last step of every epoch and takes
the time there; the run is otherwise `run(...)` unchanged (default CTGANTrainConfig, batch 500,
pac 10, one device, metrics logged every step, one checkpoint at the end). ctgan: the epoch
iterator of `CTGAN.fit` is wrapped to take the time at the start of each epoch and at the end;
torch runs eagerly on the CPU (each epoch ends with a `.item()`, so it is synchronous).
CTGAN(epochs=E, batch_size=500, pac=10, verbose=False, enable_gpu=False), other arguments
default; torch's thread count is left at its default (every core; `--torch-threads` changes
it, `torch_threads` reports it). JAX's CPU backend also uses every core. Both use all cores, so
the numbers mean something only on an otherwise idle machine: `load_average_1min` gives the load
before and after each child. On a busy machine torch's OpenMP threads suffer far more than JAX's
(seen here, 2 cores, load 3-4 from other jobs, 3000 rows: each ctgan optimiser update 2-3 s with
2 threads, 0.02-0.07 s with 1; an idle machine: 0.01-0.03 s with 2). One epoch is
max(N // 500, 1) steps for both. `--sample-rows` defaults to 100,000.

The table: `jaxsyn.data.phantoms.ct.clinical_table(N, seed)` restricted to 11 columns (6 numeric:
age integer, height_cm, weight_kg, bmi floats, pack_years zero-inflated skewed integer,
systolic_bp float; 5 discrete: sex_male and hypertension binary 0/1, site, smoking_status,
disease_stage categorical strings). ctgan refuses nulls in continuous columns, so the missing
pack_years (2% of smokers) and systolic_bp (3%) are filled with the column median before either
implementation sees the table. Both get the same DataFrame and the same discrete columns
(jaxsyn through an explicit schema, so no column is typed differently).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# column -> kind (jaxsyn schema kinds); discrete = categorical + binary, for both implementations
KINDS = {
    "age": "integer",
    "sex_male": "binary",
    "height_cm": "float",
    "weight_kg": "float",
    "bmi": "float",
    "site": "categorical",
    "smoking_status": "categorical",
    "pack_years": "integer",
    "hypertension": "binary",
    "disease_stage": "categorical",
    "systolic_bp": "float",
}
DISCRETE = [c for c, k in KINDS.items() if k in ("categorical", "binary")]
BATCH_SIZE = 500
PAC = 10


def make_table(rows: int, seed: int):
    """The benchmark table: 11 clinical columns, no missing values, deterministic in seed."""
    import numpy as np

    from jaxsyn.data.phantoms.ct import clinical_table

    df = clinical_table(rows, seed=seed)[list(KINDS)].copy()
    packs = df["pack_years"]
    df["pack_years"] = packs.fillna(int(packs.median())).astype(np.int64)
    df["systolic_bp"] = df["systolic_bp"].fillna(round(float(df["systolic_bp"].median()), 1))
    assert not df.isna().any().any()
    return df.reset_index(drop=True)


def table_hash(df) -> str:
    import pandas as pd

    return hashlib.sha1(pd.util.hash_pandas_object(df, index=True).values.tobytes()).hexdigest()


def rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def machine() -> dict:
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }


def versions() -> dict:
    from importlib import metadata

    out = {}
    for name in ("jax", "jaxlib", "ctgan", "torch", "rdt", "sdmetrics"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def quality(real, synthetic) -> dict:
    """Overall quality (thresholded, sdmetrics >= 0.27) and over all pairs, for both impls."""
    try:
        from jaxsyn.eval.tabular import quality as jaxsyn_quality
    except ImportError:
        jaxsyn_quality = None
    if jaxsyn_quality is not None:
        q = jaxsyn_quality(real, synthetic, kinds=KINDS)
        return {
            "quality": q["overall"],
            "quality_all_pairs": q["overall_all_pairs"],
            "quality_column_shapes": q["column_shapes"],
            "quality_pair_trends": q["column_pair_trends"],
            "quality_metric": "jaxsyn.eval.tabular.quality",
        }
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the single-table report's deprecation notice
        from sdmetrics.reports.single_table import QualityReport

    metadata = {
        "columns": {c: {"sdtype": "categorical" if c in DISCRETE else "numerical"} for c in KINDS}
    }
    scores = []
    for threshold in (None, 0.0):  # default thresholds, then every pair
        report = QualityReport()
        if threshold is not None:
            report.real_correlation_threshold = threshold
            report.real_association_threshold = threshold
        report.generate(real, synthetic[list(KINDS)], metadata, verbose=False)
        scores.append(float(report.get_score()))
    return {
        "quality": scores[0],
        "quality_all_pairs": scores[1],
        "quality_metric": "sdmetrics QualityReport (jaxsyn.eval.tabular not importable)",
    }


SAMPLE_REPEATS = 5


def timed_sampling(sample) -> tuple:
    """`sample(i)` SAMPLE_REPEATS times -> (the first call's rows, {"sample_seconds": the median
    wall time, "sample_seconds_all": every call's})."""
    times, first = [], None
    for i in range(SAMPLE_REPEATS):
        t0 = time.perf_counter()
        rows = sample(i)
        times.append(time.perf_counter() - t0)
        first = rows if first is None else first
    return first, {"sample_seconds": statistics.median(times), "sample_seconds_all": times}


def epoch_fields(epochs: list[float]) -> dict:
    later = epochs[1:]
    return {
        "epoch_seconds": sum(later) / len(later) if later else epochs[0],
        "epoch_seconds_includes_compile": not later,
        "epoch_seconds_first": epochs[0],
        "epoch_seconds_all": epochs,
    }


@contextlib.contextmanager
def patched(owner, name, make):
    """Replace owner.name by make(original) for the duration."""
    original = owner.__dict__[name]
    setattr(owner, name, make(getattr(owner, name)))
    try:
        yield
    finally:
        setattr(owner, name, original)


def timed(log: dict, key: str):
    def wrap(fn):
        def inner(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            log[key] = log.get(key, 0.0) + time.perf_counter() - t0
            return out

        return inner

    return wrap


# --- jaxsyn ---------------------------------------------------------------------------------


def bench_jaxsyn(df, epochs: int, sample_rows: int, seed: int) -> dict:
    import jax

    from jaxsyn.data.tabular import TableTransformer, infer_schema
    from jaxsyn.infer.ctgan import TableSynthesizer
    from jaxsyn.train import ctgan

    config = ctgan.CTGANTrainConfig(batch_size=BATCH_SIZE, seed=seed)
    per_epoch = ctgan.steps_per_epoch(len(df), config.batch_size)
    total_steps = epochs * per_epoch
    log: dict = {}

    t0 = time.perf_counter()
    schema = infer_schema(df, kinds=KINDS)
    log["schema"] = time.perf_counter() - t0
    assert [c.name for c in schema.columns if c.discrete] == DISCRETE, schema

    marks: list[float] = []  # perf_counter after step 1 and at the end of every epoch

    def make_step(original):
        def make(*args, **kwargs):
            step = original(*args, **kwargs)
            count = 0

            def run_step(state, batch):
                nonlocal count
                if count == 0:
                    marks.append(time.perf_counter())
                state, metrics = step(state, batch)
                count += 1
                if count == 1 or count % per_epoch == 0:
                    jax.block_until_ready(state)
                    marks.append(time.perf_counter())
                return state, metrics

            return run_step

        return make

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        with (
            patched(TableTransformer, "fit", lambda f: classmethod(timed(log, "fit")(f.__func__))),
            patched(TableTransformer, "transform", timed(log, "transform")),
            patched(ctgan, "make_step", make_step),
        ):
            run_start = time.perf_counter()
            ctgan.run(
                run_dir,
                df,
                epochs=epochs,
                config=config,
                schema=schema,
                checkpoint_every=total_steps + 1,  # one checkpoint, after the last step
                progress=False,
                devices=jax.devices()[:1],
            )
            run_end = time.perf_counter()
        run_seconds = run_end - run_start
        start, first_step, *ends = marks
        if per_epoch == 1:  # the first step is the first epoch; its mark was taken once
            ends = [first_step, *ends]
        epoch_times = [b - a for a, b in zip([start, *ends[:-1]], ends, strict=True)]
        fields = epoch_fields(epoch_times)
        step_seconds = (
            fields["epoch_seconds"] / per_epoch
            if epochs > 1
            else (epoch_times[0] - (first_step - start)) / max(per_epoch - 1, 1)
        )

        t0 = time.perf_counter()
        synth = TableSynthesizer.load(run_dir)
        load_seconds = time.perf_counter() - t0
        synth.sample(sample_rows, key=seed + 1)  # warm-up: compiles generation at this size
        synthetic, sampling = timed_sampling(lambda i: synth.sample(sample_rows, key=seed + 2 + i))

    return {
        "transformer_fit_seconds": log["schema"] + log["fit"],
        "schema_seconds": log["schema"],
        "transform_seconds": log["transform"],
        "train_seconds_total": run_seconds - log["fit"] - log["transform"],
        **fields,
        "setup_seconds": start - run_start - log["fit"] - log["transform"],
        "finish_seconds": run_end - marks[-1],
        "first_step_seconds": first_step - start,
        "compile_seconds": (first_step - start) - step_seconds,
        "load_seconds": load_seconds,
        **sampling,
        "sample_rows_per_second": sample_rows / sampling["sample_seconds"],
        **quality(df, synthetic),
        "devices": [str(d) for d in jax.devices()[:1]],
    }


# --- ctgan ----------------------------------------------------------------------------------


class EpochClock:
    """Stands in for ctgan's `tqdm(range(epochs), disable=...)`: times each epoch."""

    marks: list[float] = []

    def __init__(self, iterable, **_):
        self.iterable = iterable

    def __iter__(self):
        for item in self.iterable:
            EpochClock.marks.append(time.perf_counter())
            yield item
        EpochClock.marks.append(time.perf_counter())

    def set_description(self, *_, **__):  # only called when verbose
        pass


def bench_ctgan(df, epochs: int, sample_rows: int, seed: int, torch_threads: int = 0) -> dict:
    import warnings

    import torch

    if torch_threads > 0:
        torch.set_num_threads(torch_threads)
    from ctgan import CTGAN
    from ctgan.data_transformer import DataTransformer
    from ctgan.synthesizers import ctgan as ctgan_module

    log: dict = {}
    model = CTGAN(epochs=epochs, batch_size=BATCH_SIZE, pac=PAC, verbose=False, enable_gpu=False)
    model.set_random_state(seed)
    with (
        patched(DataTransformer, "fit", timed(log, "fit")),
        patched(DataTransformer, "transform", timed(log, "transform")),
        patched(ctgan_module, "tqdm", lambda _: EpochClock),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        model.fit(df, discrete_columns=DISCRETE)
        fit_seconds = time.perf_counter() - t0
    marks = EpochClock.marks
    epoch_times = [b - a for a, b in zip(marks[:-1], marks[1:], strict=True)]
    assert len(epoch_times) == epochs, marks

    model.sample(sample_rows)  # warm-up
    synthetic, sampling = timed_sampling(lambda i: model.sample(sample_rows))
    return {
        "transformer_fit_seconds": log["fit"],
        "transform_seconds": log["transform"],
        "train_seconds_total": fit_seconds - log["fit"] - log["transform"],
        **epoch_fields(epoch_times),
        "setup_seconds": fit_seconds - log["fit"] - log["transform"] - sum(epoch_times),
        **sampling,
        "sample_rows_per_second": sample_rows / sampling["sample_seconds"],
        **quality(df, synthetic),
        "torch_threads": torch.get_num_threads(),
    }


# --- driver ---------------------------------------------------------------------------------


def child(args) -> None:
    """Run one implementation in this process and print its JSON."""
    df = make_table(args.rows, args.seed)
    load_before = os.getloadavg()[0]
    if args.child == "jaxsyn":
        result = bench_jaxsyn(df, args.epochs, args.sample_rows, args.seed)
    else:
        result = bench_ctgan(df, args.epochs, args.sample_rows, args.seed, args.torch_threads)
    row = {
        "impl": args.child,
        "rows": len(df),
        "columns": df.shape[1],
        "epochs": args.epochs,
        "seed": args.seed,
        "steps_per_epoch": max(len(df) // BATCH_SIZE, 1),
        "sample_rows": args.sample_rows,
        "discrete_columns": DISCRETE,
        "table_sha1": table_hash(df),
        **result,
        "peak_rss_bytes": rss_bytes(),
        "load_average_1min": [load_before, os.getloadavg()[0]],
        "machine": machine(),
        "versions": versions(),
    }
    print(json.dumps(row, default=float))


def run_child(cmd: list[str]) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--impl", default="jaxsyn,ctgan", help="comma-separated: jaxsyn,ctgan")
    parser.add_argument("--sample-rows", type=int, default=100_000, help="rows sampled and scored")
    parser.add_argument("--seed", type=int, default=0, help="table, training and sampling seed")
    parser.add_argument(
        "--torch-threads", type=int, default=0, help="ctgan: torch threads (0: torch's default)"
    )
    parser.add_argument("--child", choices=("jaxsyn", "ctgan"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rows < 1 or args.epochs < 1 or args.sample_rows < 1:
        parser.error("--rows, --epochs and --sample-rows must be positive")
    if args.child:
        return child(args)
    impls = [s.strip() for s in args.impl.split(",") if s.strip()]
    unknown = sorted(set(impls) - {"jaxsyn", "ctgan"})
    if unknown or not impls:
        parser.error(f"--impl {args.impl!r}: expected a comma-separated subset of jaxsyn,ctgan")
    for impl in impls:
        if impl == "ctgan":
            try:
                import ctgan  # noqa: F401
            except ImportError:
                print(json.dumps({"impl": "ctgan", "skipped": "ctgan not installed"}), flush=True)
                continue
        cmd = [sys.executable, __file__, "--child", impl]
        cmd += ["--rows", str(args.rows), "--epochs", str(args.epochs)]
        cmd += ["--sample-rows", str(args.sample_rows), "--seed", str(args.seed)]
        cmd += ["--torch-threads", str(args.torch_threads)]
        row = run_child(cmd)
        bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            row["non_finite"] = bad
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
