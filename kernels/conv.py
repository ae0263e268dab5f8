"""3D convolution (NDHWC activations, DHWIO weights): an XLA reference, a oneDNN path, a dispatch.

    y = conv3d(x, w, stride=1, padding="SAME", dilation=1, implementation=None)

`implementation=None` picks oneDNN when the compiled extension loaded, the default JAX backend is
the CPU and the dtype is float32 (bfloat16 too where the CPU has native bf16); otherwise XLA
(`lax.conv_general_dilated`), which is also what GPUs and TPUs get. `"xla"` and `"onednn"` force a
path; forcing oneDNN where it is unavailable raises `KernelUnavailableError` saying why.

The oneDNN path is three XLA FFI custom calls (forward, backward-data, backward-weights, built from
`conv3d_onednn.cc`) joined by one `jax.custom_vjp`; under `vmap` they run once per batch element
(`vmap_method="sequential"`). The choice is made when a function is traced: `use()` or the
`JAXSYN_CONV3D` environment variable (`auto`, `xla`, `onednn`) change it for code traced afterwards,
not for functions `jax.jit` has already compiled.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib
import importlib.metadata
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxsyn.errors import ConfigError

IMPLEMENTATIONS = ("xla", "onednn")
DIMENSION_NUMBERS = ("NDHWC", "DHWIO", "NDHWC")
ENV = "JAXSYN_CONV3D"
_TARGET = "jaxsyn_onednn_{}"
# bf16 runs natively (not emulated through f32 conversions) from these ISAs on.
_BF16_ISAS = ("avx512_core_bf16", "avx512_core_amx")

Pads = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


class KernelUnavailableError(ConfigError):
    """An implementation was asked for by name but cannot run here."""


# --- loading the extension ------------------------------------------------------------------------


class _Extension:
    """The compiled module, loaded and registered with XLA on first use (or the reason it is not)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._loaded = False
        self.module = None
        self.reason: str | None = None
        self.library: str | None = None

    def load(self):
        with self._lock:
            if not self._loaded:
                self._loaded = True
                try:
                    self.module = self._load()
                except (ImportError, OSError) as e:
                    self.reason = str(e)
            return self.module

    def _load(self):
        self.library = _preload_libdnnl()
        try:
            module = importlib.import_module("jaxsyn.kernels._onednn")
        except ImportError as e:
            raise ImportError(
                f"the compiled extension jaxsyn.kernels._onednn is missing or does not load ({e}); "
                "reinstall with `pip install -e .` on Linux x86_64 with g++ and the "
                "onednn-devel-cpu-gomp==2023.2.0 headers (see README, 'Fast 3D convolution on CPU')"
            ) from e
        for name, capsule in module.targets.items():
            jax.ffi.register_ffi_target(_TARGET.format(name), capsule, platform="cpu")
        return module


def _preload_libdnnl() -> str:
    """Load libdnnl.so.3 (from the onednn-cpu-gomp wheel, which installs it into <prefix>/lib,
    outside the loader's search path) with RTLD_GLOBAL, so the extension's dependency resolves.

    Unless the user chose otherwise, OpenMP threads sleep when idle (OMP_WAIT_POLICY=PASSIVE, read
    when libgomp loads): with GNU OpenMP's default spinning, every small convolution waited
    tens of milliseconds for its team on a busy 2-core machine (0.3 ms passive), while large
    ones ran as fast either way (benchmarks/RESULTS.md)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    candidates = []
    try:
        files = importlib.metadata.files("onednn-cpu-gomp") or []
        candidates += [Path(f.locate()).resolve() for f in files if f.name == "libdnnl.so.3"]
    except importlib.metadata.PackageNotFoundError:
        pass
    candidates += [Path(p) / "lib" / "libdnnl.so.3" for p in (sys.prefix, sys.base_prefix)]
    for path in candidates:
        if path.is_file():
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            return str(path)
    try:  # LD_LIBRARY_PATH or a system-wide oneDNN 3
        ctypes.CDLL("libdnnl.so.3", mode=ctypes.RTLD_GLOBAL)
    except OSError as e:
        raise OSError(
            "libdnnl.so.3 not found: install the oneDNN runtime with "
            "`pip install onednn-cpu-gomp==2023.2.0` (Linux x86_64)"
        ) from e
    return "libdnnl.so.3"


_EXT = _Extension()
_DEFAULT = threading.local()


def available() -> bool:
    """Whether the oneDNN extension is built, loads and is registered with XLA:CPU."""
    return _EXT.load() is not None


def info() -> dict:
    """What `implementation=None` picks here, and why: a dict for logs and bug reports."""
    module = _EXT.load()
    facts = {
        "onednn_available": module is not None,
        "default_backend": jax.default_backend(),
        "implementation": _default_implementation(),
        "float32": _auto(jnp.float32),
        "bfloat16": _auto(jnp.bfloat16),
    }
    if module is None:
        facts["reason"] = _EXT.reason
    else:
        facts.update(
            onednn_version=module.version(),
            isa=module.isa(),
            library=_EXT.library,
            omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
            omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
        )
    return facts


def _default_implementation() -> str | None:
    impl = getattr(_DEFAULT, "value", None)
    if impl is None:
        impl = os.environ.get(ENV, "auto").strip().lower() or "auto"
        if impl not in ("auto", *IMPLEMENTATIONS):
            raise ConfigError(f"${ENV} is {impl!r}; expected 'auto', 'xla' or 'onednn'")
    return None if impl == "auto" else impl


@contextlib.contextmanager
def use(implementation: str | None) -> Iterator[None]:
    """Within the block (this thread), `implementation=None` means `implementation`.

    Acts when functions are traced: a function jitted and compiled before keeps its path.
    """
    if implementation not in (None, *IMPLEMENTATIONS):
        raise ConfigError(f"implementation is {implementation!r}; expected None, 'xla' or 'onednn'")
    previous = getattr(_DEFAULT, "value", None)
    _DEFAULT.value = implementation or "auto"
    try:
        yield
    finally:
        _DEFAULT.value = previous


def _unsupported(dtype) -> str | None:
    """Why the oneDNN path cannot run this dtype here (None: it can)."""
    module = _EXT.load()
    if module is None:
        return _EXT.reason
    if jax.default_backend() != "cpu":
        return f"the default JAX backend is {jax.default_backend()!r}, and oneDNN runs on the CPU"
    dtype = jnp.dtype(dtype)
    if dtype == jnp.float32:
        return None
    if dtype == jnp.bfloat16:
        if module.isa() in _BF16_ISAS:
            return None
        return f"bfloat16 needs a CPU with native bf16 (oneDNN sees {module.isa()})"
    return f"dtype {dtype} (oneDNN path: float32, bfloat16)"


def _auto(dtype) -> str:
    return "onednn" if _unsupported(dtype) is None else "xla"


# --- argument normalisation ---------------------------------------------------------------------


def _triple(v: int | Sequence[int], name: str) -> tuple[int, int, int]:
    t = (v,) * 3 if isinstance(v, int | np.integer) else tuple(v)
    if len(t) != 3 or any(int(a) < 1 for a in t):
        raise ConfigError(f"conv3d: {name} is {v!r}; expected a positive int or 3 of them")
    return tuple(int(a) for a in t)


def _pads(padding, spatial, kernel, stride, dilation) -> Pads:
    if isinstance(padding, str):
        window = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=True))
        return tuple(
            tuple(map(int, p)) for p in lax.padtype_to_pads(spatial, window, stride, padding)
        )
    if isinstance(padding, int | np.integer):
        return ((int(padding),) * 2,) * 3
    pairs = tuple(padding)
    if len(pairs) != 3:
        raise ConfigError(
            f"conv3d: padding is {padding!r}; expected 3 (lo, hi) pairs, an int or 'SAME'/'VALID'"
        )
    return tuple(
        (int(p), int(p)) if isinstance(p, int | np.integer) else tuple(map(int, p)) for p in pairs
    )


def _out_size(n: int, k: int, s: int, d: int, lo: int, hi: int) -> int:
    return (n + lo + hi - (k - 1) * d - 1) // s + 1


# --- the two paths ------------------------------------------------------------------------------


def conv3d_xla(x, w, stride=(1, 1, 1), padding: Pads = ((0, 0),) * 3, dilation=(1, 1, 1)):
    """The reference: `lax.conv_general_dilated` in jaxsyn's layouts."""
    return lax.conv_general_dilated(
        x, w, stride, padding, rhs_dilation=dilation, dimension_numbers=DIMENSION_NUMBERS
    )


def _varying(x) -> frozenset:
    """The shard_map mesh axes `x` varies over (empty outside shard_map)."""
    mat = getattr(jax.typeof(x), "mat", None)
    return mat.varying if mat is not None else frozenset()


def _same_varying(x, w):
    """Cast x and w to vary over the same mesh axes (what lax's conv does implicitly): an FFI
    call needs equal ones, and AD turns the cast of replicated weights into a psum of dw."""
    vx, vw = _varying(x), _varying(w)
    if vw - vx:
        x = lax.pcast(x, tuple(sorted(vw - vx)), to="varying")
    if vx - vw:
        w = lax.pcast(w, tuple(sorted(vx - vw)), to="varying")
    return x, w


def _call(name: str, out, a, b, stride, padding, dilation):
    """`out`: the result's type, taken from an operand of the same layout so that it keeps its
    dtype, mesh sharding and the shard_map axes it varies over."""
    out = out.update(weak_type=False)
    return jax.ffi.ffi_call(_TARGET.format(name), out, vmap_method="sequential")(
        a,
        b,
        stride=np.asarray(stride, np.int64),
        padding_lo=np.asarray([p[0] for p in padding], np.int64),
        padding_hi=np.asarray([p[1] for p in padding], np.int64),
        dilation=np.asarray(dilation, np.int64),
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _onednn(x, w, stride, padding, dilation):
    spatial = [
        _out_size(n, k, s, d, lo, hi)
        for n, k, s, d, (lo, hi) in zip(
            x.shape[1:4], w.shape[:3], stride, dilation, padding, strict=True
        )
    ]
    out = jax.typeof(x).update(shape=(x.shape[0], *spatial, w.shape[4]))
    return _call("conv3d_fwd", out, x, w, stride, padding, dilation)


def _onednn_fwd(x, w, stride, padding, dilation):
    return _onednn(x, w, stride, padding, dilation), (x, w)


def _onednn_bwd(stride, padding, dilation, residuals, dy):
    x, w = residuals
    dy = dy.astype(x.dtype)
    dx = _call("conv3d_bwd_data", jax.typeof(x), dy, w, stride, padding, dilation)
    if x.dtype == jnp.bfloat16:
        # oneDNN 3.2's bf16 backward-weights primitive returns garbage (1e35, NaN, different on
        # every call) for some shapes, e.g. x 2x2x16x16x8, k3 p1 (batch > 1, depth 2: tiny HA-GAN's
        # E^H slabs); its float32 one is right, and accumulates in float32 as a GPU does.
        f32 = jnp.float32
        dw = _call("conv3d_bwd_weights", jax.typeof(w).update(dtype=f32), x.astype(f32),
                   dy.astype(f32), stride, padding, dilation).astype(w.dtype)  # fmt: skip
    else:
        dw = _call("conv3d_bwd_weights", jax.typeof(w), x, dy, stride, padding, dilation)
    return dx, dw


_onednn.defvjp(_onednn_fwd, _onednn_bwd)


# --- the dispatch -------------------------------------------------------------------------------


def conv3d(
    x: jax.Array,
    w: jax.Array,
    stride: int | Sequence[int] = 1,
    padding: str | int | Sequence = "SAME",
    dilation: int | Sequence[int] = 1,
    *,
    implementation: str | None = None,
) -> jax.Array:
    """3D convolution, no bias: x [N, D, H, W, Cin], w [KD, KH, KW, Cin, Cout] -> [N, D', H', W', Cout].

    `padding`: "SAME", "VALID", an int (PyTorch's symmetric padding) or 3 ints / (lo, hi) pairs.
    `dilation` is the kernel's (lax's `rhs_dilation`).
    """
    if implementation not in (None, *IMPLEMENTATIONS):
        raise ConfigError(
            f"conv3d: implementation is {implementation!r}; expected None, 'xla' or 'onednn'"
        )
    if x.ndim != 5 or w.ndim != 5 or x.shape[-1] != w.shape[3]:
        raise ConfigError(
            f"conv3d: x {x.shape} and w {w.shape}; expected [N, D, H, W, C] and [KD, KH, KW, C, O] with the same C"
        )
    stride, dilation = _triple(stride, "stride"), _triple(dilation, "dilation")
    padding = _pads(padding, x.shape[1:4], w.shape[:3], stride, dilation)
    forced = implementation is not None
    implementation = implementation or _default_implementation()
    why_not = _why_not_onednn(x, w, stride, padding, dilation)
    if implementation is None:
        implementation = "xla" if why_not else "onednn"
    elif implementation == "onednn" and why_not:
        how = "asked for by implementation='onednn'" if forced else f"asked for by {ENV} or use()"
        raise KernelUnavailableError(f"conv3d: the oneDNN path was {how} but cannot run: {why_not}")
    if implementation == "xla":
        return conv3d_xla(x, w, stride, padding, dilation)
    return _onednn(*_same_varying(x, w), stride, padding, dilation)


def _why_not_onednn(x, w, stride, padding, dilation) -> str | None:
    reason = _unsupported(x.dtype)
    if reason:
        return reason
    if x.dtype != w.dtype:
        return f"x is {x.dtype} and w {w.dtype}; oneDNN needs one dtype"
    if any(lo < 0 or hi < 0 for lo, hi in padding):
        return f"negative padding {padding}"
    sizes = [
        _out_size(n, k, s, d, lo, hi)
        for n, k, s, d, (lo, hi) in zip(
            x.shape[1:4], w.shape[:3], stride, dilation, padding, strict=True
        )
    ]
    if 0 in x.shape or 0 in w.shape or min(sizes) < 1:
        return "an empty input, kernel or output"
    return None


def conv_general_dilated(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count=1,
    batch_group_count=1,
    precision=None,
    preferred_element_type=None,
):
    """`lax.conv_general_dilated`'s signature (for `flax.linen.Conv(conv_general_dilated=...)`):
    3D convolutions in NDHWC/DHWIO without input dilation or groups go through `conv3d`'s
    dispatch, everything else straight to lax."""
    plain = (
        lhs.ndim == 5
        and feature_group_count == 1
        and batch_group_count == 1
        and preferred_element_type is None
        and all(d == 1 for d in (lhs_dilation or (1,)))
        and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
        == lax.conv_dimension_numbers(lhs.shape, rhs.shape, DIMENSION_NUMBERS)
    )
    if not plain:
        return lax.conv_general_dilated(
            lhs,
            rhs,
            window_strides,
            padding,
            lhs_dilation,
            rhs_dilation,
            dimension_numbers,
            feature_group_count,
            batch_group_count,
            precision,
            preferred_element_type,
        )
    return conv3d(lhs, rhs, window_strides, padding, rhs_dilation or 1)
