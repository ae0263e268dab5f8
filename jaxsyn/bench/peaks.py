"""Peak dense FLOP/s per device, by `jax.Device.device_kind`, and MFU.

Accelerators: the vendors' dense (no sparsity) figures. `float32` on NVIDIA Ampere and later is
the TF32 tensor-core peak, which XLA uses for float32 convolutions and matmuls at JAX's default
precision; on TPUs, XLA's default precision multiplies float32 in one bfloat16 pass, so float32
takes the bfloat16 peak. A CPU's `device_kind` is just "cpu": its peak is estimated from
/proc/cpuinfo (physical cores x clock x FLOP per cycle from the vector width and FMA), or given
with `--peak-flops`.
"""

from __future__ import annotations

import re
from pathlib import Path

from jaxsyn.errors import ConfigError

T = 1e12
# (pattern on device_kind, name, {dtype: FLOP/s}); the first match wins, specific before general
ACCELERATORS: tuple[tuple[str, str, dict[str, float]], ...] = (
    (r"H100.*PCIe", "H100 PCIe", {"bfloat16": 756.5 * T, "float32": 378.0 * T}),
    (r"H100.*NVL", "H100 NVL", {"bfloat16": 835.0 * T, "float32": 417.5 * T}),
    (r"H100", "H100 SXM", {"bfloat16": 989.4 * T, "float32": 494.7 * T}),
    (r"H200", "H200", {"bfloat16": 989.4 * T, "float32": 494.7 * T}),
    (r"A100", "A100", {"bfloat16": 312.0 * T, "float32": 156.0 * T}),
    # V100 has no bfloat16 tensor cores: bf16 runs at about the float32 rate
    (r"V100", "V100", {"bfloat16": 15.7 * T, "float32": 15.7 * T}),
    (r"L40S", "L40S", {"bfloat16": 362.05 * T, "float32": 183.0 * T}),
    (r"\bL4\b", "L4", {"bfloat16": 121.0 * T, "float32": 60.0 * T}),
    (r"TPU v4", "TPU v4", {"bfloat16": 275.0 * T, "float32": 275.0 * T}),
    (r"TPU v5 ?(lite|e)", "TPU v5e", {"bfloat16": 197.0 * T, "float32": 197.0 * T}),
    (r"TPU v5", "TPU v5p", {"bfloat16": 459.0 * T, "float32": 459.0 * T}),
    (r"TPU v6", "TPU v6e", {"bfloat16": 918.0 * T, "float32": 918.0 * T}),
)


def accelerator_peak(device_kind: str, dtype: str) -> float | None:
    """Dense peak FLOP/s of one device of this kind at this compute dtype; None if unknown."""
    for pattern, _, peaks in ACCELERATORS:
        if re.search(pattern, device_kind):
            return peaks[dtype]
    return None


def _field(block: str, name: str) -> str | None:
    m = re.search(rf"^{re.escape(name)}\s*:\s*(.*)$", block, re.MULTILINE)
    return m.group(1).strip() if m else None


def cpu_peak(cpuinfo: str, dtype: str = "float32", max_mhz: float | None = None) -> dict:
    """Estimated peak of the CPU described by `cpuinfo` (/proc/cpuinfo's text).

    cores: distinct (physical id, core id) pairs (hyperthreads share FMA units), else processors;
    clock: `max_mhz` (cpufreq's maximum) or the first "cpu MHz"; float32 FLOP per cycle per core:
    lanes (16 with avx512f, 8 with avx/avx2, 4 otherwise) x 2 with fma x FMA pipes (2, except
    AMD's AVX-512, which runs on two 256-bit pipes: 1 pipe of 16 lanes). bfloat16 doubles it
    where the CPU has avx512_bf16 (or AMX), else the float32 figure."""
    blocks = [b for b in cpuinfo.split("\n\n") if _field(b, "processor") is not None]
    if not blocks:
        raise ConfigError("/proc/cpuinfo: no 'processor' entries; pass --peak-flops")
    pairs = {(_field(b, "physical id"), _field(b, "core id")) for b in blocks}
    cores = len(pairs) if None not in {p for pair in pairs for p in pair} else len(blocks)
    mhz = max_mhz or float(_field(blocks[0], "cpu MHz") or 0)
    if not mhz:
        raise ConfigError("/proc/cpuinfo: no 'cpu MHz'; pass --peak-flops")
    flags = set((_field(blocks[0], "flags") or "").split())
    amd = (_field(blocks[0], "vendor_id") or "") == "AuthenticAMD"
    if "avx512f" in flags:
        lanes, pipes = 16, 1 if amd else 2
    elif flags & {"avx", "avx2"}:
        lanes, pipes = 8, 2
    else:
        lanes, pipes = 4, 2
    per_cycle = lanes * (2 if "fma" in flags else 1) * pipes
    if dtype == "bfloat16" and flags & {"avx512_bf16", "amx_bf16"}:
        per_cycle *= 2
    return {
        "cores": cores,
        "mhz": mhz,
        "flop_per_cycle": per_cycle,
        "peak_flops": cores * mhz * 1e6 * per_cycle,
    }


def _max_mhz() -> float | None:
    path = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    try:
        return int(path.read_text()) / 1000
    except (OSError, ValueError):
        return None


def peak_flops(device_kind: str, dtype: str, devices: int = 1, override: float | None = None):
    """(peak FLOP/s of `devices` devices, where the figure came from)."""
    if override is not None:
        if override <= 0:
            raise ConfigError(f"--peak-flops is {override}; expected a positive FLOP/s figure")
        return override * devices, "--peak-flops"
    if device_kind.lower() == "cpu":
        est = cpu_peak(Path("/proc/cpuinfo").read_text(), dtype, _max_mhz())
        # a CPU backend is one device for the whole machine
        return est["peak_flops"], (
            f"estimated: {est['cores']} cores x {est['mhz']:.0f} MHz x {est['flop_per_cycle']} FLOP/cycle"
        )
    peak = accelerator_peak(device_kind, dtype)
    if peak is None:
        return None, f"unknown device kind {device_kind!r}: pass --peak-flops"
    return peak * devices, "table"


def mfu(flops_per_step: float, step_seconds: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation: (model FLOPs / step time) / peak."""
    if not peak or not step_seconds:
        return None
    return flops_per_step / step_seconds / peak
