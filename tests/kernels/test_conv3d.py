"""jaxsyn.kernels.conv3d: the oneDNN FFI path against `lax.conv_general_dilated` (float32).

Tolerance: rtol = 1e-5 and atol = 1e-5 × the reference's largest magnitude (a simple op; oneDNN
and XLA sum the same products in different orders and blockings, so they agree to rounding).
Kernel-path tests skip, with the reason, when the extension is not built, except where
JAXSYN_REQUIRE_ONEDNN=1 (`make test` on Linux x86-64, which builds it): there they run and fail,
so CI cannot go green on the XLA path alone.
"""

from __future__ import annotations

import os
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxsyn.kernels import conv as module

from jaxsyn import kernels
from jaxsyn.errors import ConfigError
from jaxsyn.nn import layers

RTOL = ATOL = 1e-5
TARGET = "jaxsyn_onednn_conv3d_fwd"
REQUIRED = os.environ.get("JAXSYN_REQUIRE_ONEDNN") == "1"
needs_onednn = pytest.mark.skipif(
    not kernels.available() and not REQUIRED,
    reason=f"oneDNN extension not built: {kernels.info().get('reason')}",
)


def test_the_extension_is_built_where_required():
    if not REQUIRED:
        pytest.skip("JAXSYN_REQUIRE_ONEDNN is not 1 (make test sets it on Linux x86-64)")
    assert kernels.available(), f"oneDNN extension required but not built: {kernels.info()}"


# (kernel, stride, padding) of every 3D convolution in jaxsyn.models.hagan: D^H's ladder and
# heads, D^L / E^H / E^G stride-2 k4, the k3 blocks, the 4³ valid heads, UpConv3d's 2³ phases;
# plus one with uneven stride and padding. Spatial sizes are odd so the strided windows do not
# tile the input. GRAD_CASES adds a dilation to each (none for these) and a dilated, strided,
# unevenly padded case, so both gradients are checked with dilation too.
CASES = [
    ((4, 4, 4), (2, 2, 2), ((1, 1),) * 3),
    ((2, 4, 4), (2, 2, 2), ((0, 0), (1, 1), (1, 1))),
    ((1, 4, 4), (1, 2, 2), ((0, 0), (1, 1), (1, 1))),
    ((1, 4, 4), (1, 1, 1), ((0, 0),) * 3),
    ((3, 3, 3), (1, 1, 1), ((1, 1),) * 3),
    ((4, 4, 4), (1, 1, 1), ((0, 0),) * 3),
    ((2, 2, 2), (1, 1, 1), ((0, 0),) * 3),
    ((3, 3, 3), (2, 1, 3), ((2, 0), (1, 2), (0, 1))),
]
GRAD_CASES = [(*case, (1, 1, 1)) for case in CASES] + [
    ((3, 3, 2), (1, 2, 1), ((2, 1), (0, 2), (3, 3)), (2, 1, 3)),
]
SHAPES = [(2, 7, 9, 11, 3, 5), (1, 5, 6, 7, 1, 8), (3, 6, 5, 9, 8, 1)]  # N, D, H, W, Cin, Cout


def _inputs(shape, kernel, seed=0):
    """x ~ N(0, 1), w scaled to unit fan-in (outputs ~ N(0, 1)), and a numpy RNG for more.

    numpy, not jax.random: eager jax.random compiles a kernel per new shape (seconds each)."""
    n, d, h, w, cin, cout = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d, h, w, cin), np.float32)
    wt = rng.standard_normal((*kernel, cin, cout), np.float32) / np.sqrt(np.prod(kernel) * cin)
    return jnp.asarray(x), jnp.asarray(wt.astype(np.float32)), rng


def _close(actual, reference):
    reference = np.asarray(reference)
    np.testing.assert_allclose(
        np.asarray(actual), reference, rtol=RTOL, atol=ATOL * max(1.0, np.abs(reference).max())
    )


def _lax(x, w, stride, padding, dilation=(1, 1, 1)):
    return jax.lax.conv_general_dilated(
        x, w, stride, padding, rhs_dilation=dilation, dimension_numbers=("NDHWC", "DHWIO", "NDHWC")
    )


def _value_and_grads(conv):
    """jit over all GRAD_CASES: [(conv(x, w), d<conv, cot>/dx, d<conv, cot>/dw)] for each."""

    def f(inputs):
        out = []
        for (_, stride, padding, dil), (x, w, cot) in zip(GRAD_CASES, inputs, strict=True):
            y, vjp = jax.vjp(lambda x, w: conv(x, w, stride, padding, dil), x, w)  # noqa: B023
            out.append((y, *vjp(cot)))
        return out

    return jax.jit(f)


@needs_onednn
def test_forward_and_both_gradients_match_lax():
    """Every case on one of SHAPES, under jit: y, dx and dw against lax's."""
    inputs = []
    for i, (kernel, stride, padding, dil) in enumerate(GRAD_CASES):
        x, w, kg = _inputs(SHAPES[i % len(SHAPES)], kernel, seed=i)
        ref = jax.eval_shape(lambda x, w: _lax(x, w, stride, padding, dil), x, w)  # noqa: B023
        assert min(ref.shape[1:4]) >= 1
        # a random cotangent: every output position counts
        inputs.append((x, w, jnp.asarray(kg.standard_normal(ref.shape, np.float32))))
    fast = _value_and_grads(partial(kernels.conv3d, implementation="onednn"))(inputs)
    slow = _value_and_grads(_lax)(inputs)
    for case, got, want in zip(GRAD_CASES, fast, slow, strict=True):
        assert got[0].shape == want[0].shape and got[0].dtype == jnp.float32, case
        for a, b in zip(got, want, strict=True):  # y, dx, dw
            _close(a, b)


@needs_onednn
def test_dilation_and_string_padding():
    x, w, _ = _inputs((1, 9, 10, 11, 4, 6), (3, 3, 2))
    for padding in ("SAME", "VALID"):
        want = jax.lax.conv_general_dilated(
            x,
            w,
            (1, 2, 1),
            padding,
            rhs_dilation=(2, 1, 3),
            dimension_numbers=module.DIMENSION_NUMBERS,
        )
        got = kernels.conv3d(x, w, (1, 2, 1), padding, (2, 1, 3), implementation="onednn")
        _close(got, want)


@needs_onednn
def test_vmap_over_inputs_and_weights():
    kernel, stride, padding = CASES[1]
    x, w, _ = _inputs((2, 6, 9, 9, 3, 4), kernel)
    xs = jnp.stack([x, -2 * x])  # [V, N, ...]
    ws = jnp.stack([w, w[::-1]])
    conv = lambda x, w: kernels.conv3d(x, w, stride, padding, implementation="onednn")  # noqa: E731
    got = jax.jit(jax.vmap(conv))(xs, ws)
    _close(got, jnp.stack([_lax(a, b, stride, padding) for a, b in zip(xs, ws, strict=True)]))
    got = jax.vmap(conv, in_axes=(0, None))(xs, w)  # weights shared
    _close(got, jnp.stack([_lax(a, w, stride, padding) for a in xs]))
    # per-example weight gradients: vmap of grad
    grads = jax.vmap(jax.grad(lambda x, w: jnp.sum(conv(x[None], w) ** 2), 1), (0, None))(x, w)
    ref = jax.grad(lambda w, xi: jnp.sum(_lax(xi, w, stride, padding) ** 2))
    want = [ref(w, x[i : i + 1]) for i in range(2)]
    _close(grads, jnp.stack(want))


@needs_onednn
def test_default_dispatch_picks_onednn_on_cpu_and_use_switches_it():
    x, w, _ = _inputs((1, 5, 5, 5, 2, 2), (3, 3, 3))
    hlo = lambda: jax.jit(lambda x, w: kernels.conv3d(x, w, 1, 1)).lower(x, w).as_text()  # noqa: E731
    assert TARGET in hlo()
    with kernels.use("xla"):
        assert TARGET not in hlo()
    assert kernels.info()["float32"] == "onednn"


@needs_onednn
def test_flax_layers_go_through_the_kernel_with_the_same_params():
    """layers.conv3d (an nn.Conv) and UpConv3d: the same parameter tree either way, equal outputs."""
    x = jnp.asarray(np.random.default_rng(3).standard_normal((2, 5, 6, 6, 4), np.float32))
    key = jax.random.key(0)
    for module_ in (
        layers.conv3d(6, (2, 4, 4), 2, (0, 1, 1)),
        layers.UpConv3d(3, fused=True),
        layers.UpConv3d(3, fused=False),
    ):
        params = jax.jit(module_.init)(key, x)
        apply = jax.jit(module_.apply)
        assert TARGET in apply.lower(params, x).as_text()
        with kernels.use("xla"):
            spec = lambda t: jax.tree.map(lambda a: (a.shape, a.dtype), t)  # noqa: E731
            assert spec(jax.eval_shape(module_.init, key, x)) == spec(params)
            ref = jax.jit(module_.apply)(params, x)
        _close(apply(params, x), ref)


def test_xla_path_and_argument_errors():
    x, w, _ = _inputs((1, 6, 6, 6, 2, 3), (4, 4, 4))
    _close(kernels.conv3d(x, w, 2, 1, implementation="xla"), _lax(x, w, (2, 2, 2), [(1, 1)] * 3))
    with pytest.raises(
        ConfigError, match="implementation is 'cudnn'; expected None, 'xla' or 'onednn'"
    ):
        kernels.conv3d(x, w, implementation="cudnn")
    with pytest.raises(ConfigError, match=r"stride is \(1, 0, 1\); expected a positive int"):
        kernels.conv3d(x, w, (1, 0, 1))
    with pytest.raises(
        ConfigError, match="expected .N, D, H, W, C. and .KD, KH, KW, C, O. with the same C"
    ):
        kernels.conv3d(x, w[..., :1, :])


def test_forced_onednn_where_unavailable_says_why(monkeypatch):
    """An extension that failed to load: auto falls back to XLA, a forced 'onednn' names the cause."""
    broken = module._Extension()
    broken._loaded, broken.reason = True, "the compiled extension jaxsyn.kernels._onednn is missing"
    monkeypatch.setattr(module, "_EXT", broken)
    assert not kernels.available()
    assert kernels.info()["float32"] == "xla" and "missing" in kernels.info()["reason"]
    x, w, _ = _inputs((1, 5, 5, 5, 2, 2), (3, 3, 3))
    hlo = jax.jit(lambda x, w: kernels.conv3d(x, w, 1, 1)).lower(x, w).as_text()
    assert TARGET not in hlo
    message = (
        "conv3d: the oneDNN path was asked for by implementation='onednn' but cannot run: "
        "the compiled extension jaxsyn.kernels._onednn is missing"
    )
    with pytest.raises(kernels.KernelUnavailableError, match=message):
        kernels.conv3d(x, w, 1, 1, implementation="onednn")
    monkeypatch.setenv(kernels.ENV, "onednn")
    with pytest.raises(kernels.KernelUnavailableError, match="asked for by JAXSYN_CONV3D or use"):
        kernels.conv3d(x, w, 1, 1)
    monkeypatch.setenv(kernels.ENV, "fast")
    with pytest.raises(
        ConfigError, match=r"\$JAXSYN_CONV3D is 'fast'; expected 'auto', 'xla' or 'onednn'"
    ):
        kernels.conv3d(x, w, 1, 1)


@needs_onednn
def test_float64_falls_back_and_forced_float64_is_refused():
    with jax.enable_x64(True):
        x, w, _ = _inputs((1, 4, 4, 4, 2, 2), (3, 3, 3))
        x, w = x.astype(jnp.float64), w.astype(jnp.float64)
        assert TARGET not in jax.jit(lambda x, w: kernels.conv3d(x, w)).lower(x, w).as_text()
        with pytest.raises(kernels.KernelUnavailableError, match="dtype float64"):
            kernels.conv3d(x, w, implementation="onednn")


@pytest.mark.skipif(
    kernels.info()["bfloat16"] != "onednn", reason="no native bf16 oneDNN path on this CPU"
)
def test_bfloat16_forward_and_gradients_are_within_bf16_rounding_of_float32():
    """bf16 keeps 8 bits of mantissa (2^-8 = 0.0039 relative): the oneDNN bf16 forward and both
    gradients lie within 1e-2 of the float32 result, relative to its largest magnitude (XLA's own
    bf16 convolution lands at 0.003-0.004 on these inputs, as does oneDNN's)."""
    kernel, stride, padding = CASES[0]
    x, w, rng = _inputs((2, 7, 9, 9, 16, 8), kernel)
    cot = jnp.asarray(rng.standard_normal((2, 3, 4, 4, 8), np.float32))

    def run(impl, dtype):
        conv = partial(kernels.conv3d, stride=stride, padding=padding, implementation=impl)

        @jax.jit
        def f(x, w, cot):
            y, vjp = jax.vjp(conv, x.astype(dtype), w.astype(dtype))
            return [a.astype(jnp.float32) for a in (y, *vjp(cot.astype(dtype)))]

        return f(x, w, cot)

    ref, fast = run("xla", jnp.float32), run("onednn", jnp.bfloat16)
    assert fast[0].shape == ref[0].shape
    for r, a in zip(ref, fast, strict=True):
        error = float(jnp.abs(a - r).max() / jnp.abs(r).max())
        assert 1e-4 < error < 1e-2, error  # rounded like bf16, not computed in float32
