"""Measuring one case (in its own process, so host peak RSS is the row's) and running a list of
them: `rows(specs)` starts `python -m jaxsyn.bench.measure SPEC_JSON` per row and reads back the
JSON line it prints.

Row keys: family, size, batch, dtype, device_kind, device_count, step_seconds (median of
`steps` timed calls after one warm-up call), step_seconds_spread (max - min of those), samples_per_second,
flops_per_step (analytic: `jaxsyn.bench.flops`), flops_per_second, peak_flops (all devices of the
row), mfu, compiled_temp_bytes, compiled_argument_bytes, compiled_output_bytes (XLA's
`memory_analysis` of the compiled step), compile_seconds (lower + compile), peak_rss_bytes (the
row's process); and workload (train or generate), remat, xla_flops_per_step (XLA's
`cost_analysis` flops, all devices; null where it has none), peak_flops_source.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable

import jax

from jaxsyn.bench import cases, flops, peaks
from jaxsyn.errors import ConfigError
from jaxsyn.nn import remat

KEYS = (
    "family",
    "size",
    "batch",
    "dtype",
    "device_kind",
    "device_count",
    "step_seconds",
    "step_seconds_spread",
    "samples_per_second",
    "flops_per_step",
    "flops_per_second",
    "peak_flops",
    "mfu",
    "compiled_temp_bytes",
    "compiled_argument_bytes",
    "compiled_output_bytes",
    "compile_seconds",
    "peak_rss_bytes",
)
CPU_MEMORY_NOTE = "XLA:CPU buffer assignment — a guide, not a GPU figure"


def _memory(compiled) -> dict:
    m = compiled.memory_analysis()
    return {
        "compiled_temp_bytes": int(m.temp_size_in_bytes),
        "compiled_argument_bytes": int(m.argument_size_in_bytes),
        "compiled_output_bytes": int(m.output_size_in_bytes),
    }


def _xla_flops(compiled, devices: int) -> float | None:
    try:
        cost = compiled.cost_analysis()
    except Exception:  # some backends have none
        return None
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else {}
    value = (cost or {}).get("flops")
    return float(value) * devices if value is not None and value > 0 else None


def _describe(case: cases.Case) -> dict:
    device = case.mesh.devices.flat[0]
    return {
        "family": case.family,
        "workload": case.workload,
        "size": case.size,
        "batch": case.batch,
        "dtype": case.dtype,
        "remat": case.remat,
        "device_kind": device.device_kind,
        "device_count": int(case.mesh.size),
    }


def _compile(case: cases.Case, args):
    """`case`'s function compiled for `args` as the training loop compiles it (on CPU, with the
    options under which XLA:CPU honours a remat policy: `jaxsyn.nn.remat.compiler_options`)."""
    options = remat.compiler_options(case.mesh.devices.flat[0].platform)
    fn = jax.jit(case.make_fn(), donate_argnums=case.donate)
    return fn.lower(*args).compile(compiler_options=options)


def measure(case: cases.Case, steps: int, peak_override: float | None = None) -> dict:
    """Compile, warm up and time `steps` calls of `case`; its row."""
    if steps < 1:
        raise ConfigError(f"--steps {steps}: expected >= 1")
    with jax.set_mesh(case.mesh):
        args = case.make_args(False)
        model_flops = flops.step_flops(case.make_fn(), *args, training=case.training)
        t0 = time.perf_counter()
        compiled = _compile(case, args)
        compile_seconds = time.perf_counter() - t0
        times = []
        for i in range(steps + 1):
            t = time.perf_counter()
            out = jax.block_until_ready(compiled(*args))
            if i:
                times.append(time.perf_counter() - t)
            if case.training:  # the donated state is replaced by the new one
                args = (out[0], *args[1:])
    row = _describe(case)
    step = statistics.median(times)
    peak, source = peaks.peak_flops(
        row["device_kind"], case.dtype, row["device_count"], peak_override
    )
    row.update(
        step_seconds=step,
        step_seconds_spread=max(times) - min(times),
        samples_per_second=case.samples / step,
        flops_per_step=model_flops,
        flops_per_second=model_flops / step,
        peak_flops=peak,
        mfu=peaks.mfu(model_flops, step, peak),
        **_memory(compiled),
        compile_seconds=compile_seconds,
        peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        xla_flops_per_step=_xla_flops(compiled, row["device_count"]),
        peak_flops_source=source,
    )
    return row


def compiled_memory(case: cases.Case) -> dict:
    """Compiled memory of `case` against abstract arguments (nothing allocated, nothing run)."""
    with jax.set_mesh(case.mesh):
        args = case.make_args(True)
        t0 = time.perf_counter()
        compiled = _compile(case, args)
        seconds = time.perf_counter() - t0
    row = {**_describe(case), **_memory(compiled), "compile_seconds": seconds}
    if jax.default_backend() == "cpu":
        row["note"] = CPU_MEMORY_NOTE
    return row


def child(spec: dict) -> dict:
    """One row from its spec (what `rows` passes): measured, or compiled memory only."""
    case = cases.build(
        spec["family"],
        spec["workload"],
        spec["size"],
        spec["batch"],
        spec.get("dtype", "float32"),
        spec.get("remat", "none"),
        tiny=spec.get("tiny", False),
    )
    if spec.get("memory"):
        return compiled_memory(case)
    return measure(case, spec.get("steps", 3), spec.get("peak_flops"))


def rows(
    specs: Iterable[dict],
    *,
    on_row: Callable[[dict], None] | None = None,
    timeout: float | None = None,
) -> list[dict]:
    """Each spec in its own process; a row that fails keeps its spec and an `error` (the last
    line of its stderr), and the others still run."""
    out = []
    for spec in specs:
        cmd = [sys.executable, "-m", "jaxsyn.bench.measure", json.dumps(spec)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            row = json.loads(lines[-1]) if lines else {}
            if proc.returncode or not lines:
                tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
                row = {**spec, "error": row.get("error", tail)}
        except subprocess.TimeoutExpired:
            row = {**spec, "error": f"timed out after {timeout} s"}
        out.append(row)
        if on_row:
            on_row(row)
    return out


def main(argv: list[str] | None = None) -> int:
    """Prints the row, or {"error": "Type: message"} (exit status 1) when it fails."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        row = child(json.loads(argv[0]))
    except Exception as e:  # reported in the row, the other rows still run
        traceback.print_exc()
        print(json.dumps({"error": f"{type(e).__name__}: {e}"[:2000]}), flush=True)
        return 1
    print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
