"""Model FLOPs counted analytically from the layer shapes of a traced computation.

Convention (what the README states, the MFU denominators' numerator):
  * a convolution costs 2 · K · C_in · C_out per output voxel (K the kernel's taps, C_in per
    feature group), every tap counted, including those that fall on SAME/explicit zero padding
    (what a dense GPU or MXU kernel executes; XLA's `cost_analysis` counts only in-volume taps);
    a convolution with input dilation (the data gradient of a strided one) divides by the
    dilation, whose inserted zeros do no work;
  * a matrix product (`dot_general`, a dense layer) costs 2 · (output elements) · (contracted
    size), e.g. 2 · in · out per row of a dense layer;
  * the oneDNN custom calls (`jaxsyn.kernels`) count as the convolutions they compute;
  * elementwise work, normalisation and reductions count nothing;
  * a training step counts each network evaluation inside a differentiated loss 3 times (the
    forward once, the backward as twice the forward) and each evaluation made without a gradient
    (a generator's fakes in the discriminator step, an encoder held fixed) once.

The count walks the jaxpr (`jax.make_jaxpr`), so it is exact for the shapes traced, whatever the
code path; scans count `length` times, `cond` its costliest branch, a while loop once.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import jax
import jax.extend.core as jcore

# the name a loss's forward is jitted under while a training step is traced for its FLOPs
DIFFERENTIATED = "jaxsyn_bench_differentiated"
TRAINING_FACTOR = 3  # forward + backward (2 x forward)

_ONEDNN_CONVS = (
    "jaxsyn_onednn_conv3d_fwd",
    "jaxsyn_onednn_conv3d_bwd_data",
    "jaxsyn_onednn_conv3d_bwd_weights",
)


def dot_flops(out_shape, contracted: int) -> int:
    """2 · output elements · contracted size."""
    return 2 * math.prod(out_shape) * contracted


def conv_flops(out_shape, kernel_taps: int, in_features: int, lhs_dilation=()) -> int:
    """2 · output elements (channels included) · K · C_in, / the input dilation."""
    return 2 * math.prod(out_shape) * kernel_taps * in_features // math.prod(lhs_dilation or (1,))


def _conv_eqn(eqn) -> int:
    rhs = eqn.invars[1].aval.shape
    out = eqn.outvars[0].aval.shape
    dn = eqn.params["dimension_numbers"]  # ConvDimensionNumbers(lhs_spec, rhs_spec, out_spec)
    rhs_spec = dn.rhs_spec  # (out feature dim, in feature dim, *spatial dims)
    taps = math.prod(rhs[d] for d in rhs_spec[2:])
    return conv_flops(out, taps, rhs[rhs_spec[1]], eqn.params.get("lhs_dilation"))


def _dot_eqn(eqn) -> int:
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval.shape
    return dot_flops(eqn.outvars[0].aval.shape, math.prod(lhs[d] for d in lhs_contract))


def _ffi_conv_eqn(eqn) -> int:
    """oneDNN forward: (x, w) -> y; backward-data: (dy, w) -> dx; backward-weights: (x, dy) -> dw.
    Each is 2 · |y| · K · C_in, y the forward output [N, D, H, W, C_out], w [KD, KH, KW, C_in, C_out]."""
    name = eqn.params["target_name"]
    a, b = (v.aval.shape for v in eqn.invars[:2])
    out = eqn.outvars[0].aval.shape
    if name.endswith("fwd"):
        y, w = out, b
    elif name.endswith("bwd_data"):
        y, w = a, b
    else:
        y, w = b, out
    return conv_flops(y, math.prod(w[:3]), w[3])


def _subjaxprs(params) -> Iterator:
    for v in params.values():
        items = v if isinstance(v, tuple | list) else (v,)
        for item in items:
            if isinstance(item, jcore.ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, jcore.Jaxpr):
                yield item


def count(jaxpr, *, training: bool = True) -> int:
    """Model FLOPs of a (closed) jaxpr under the module's convention. Sub-computations jitted
    under `DIFFERENTIATED` count `TRAINING_FACTOR` times (when `training`)."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "conv_general_dilated":
            total += _conv_eqn(eqn)
        elif name == "dot_general":
            total += _dot_eqn(eqn)
        elif name == "ffi_call" and eqn.params.get("target_name") in _ONEDNN_CONVS:
            total += _ffi_conv_eqn(eqn)
        elif name == "cond":
            total += max(count(b, training=training) for b in eqn.params["branches"])
        elif name == "custom_vjp_call":  # the forward only: its bwd runs under a gradient
            total += count(eqn.params["call_jaxpr"], training=training)
        else:
            inner = sum(count(j, training=training) for j in _subjaxprs(eqn.params))
            if name == "scan":
                inner *= eqn.params["length"]
            elif name == "shard_map":  # the body is one device's share: all devices' work
                inner *= eqn.params["mesh"].size
            if training and eqn.params.get("name") == DIFFERENTIATED:
                inner *= TRAINING_FACTOR
            total += inner
    return total


def _forward_value_and_grad(loss_fn: Callable, *, has_aux: bool = False) -> Callable:
    """`parallel.mean_value_and_grad`'s signature, computing the loss only (in a jit named
    `DIFFERENTIATED`) and zero gradients: the jaxpr holds each forward once, marked."""
    from jaxsyn.train import parallel

    def value_and_grad(params, *args):
        def forward(p):  # the other arguments (configs among them) closed over
            out = loss_fn(p, *args)
            loss, aux = out if has_aux else (out, None)
            return jax.lax.pmean(loss, parallel.DATA), aux

        forward.__name__ = forward.__qualname__ = DIFFERENTIATED  # the jit eqn's `name`
        loss, aux = jax.jit(forward)(params)
        zeros = jax.tree.map(jax.numpy.zeros_like, params)
        return ((loss, aux) if has_aux else loss), zeros

    return value_and_grad


@contextlib.contextmanager
def forward_accounting() -> Iterator[None]:
    """While active, training steps built on `jaxsyn.train.parallel.mean_value_and_grad` trace
    their losses' forwards marked for `count` instead of differentiating them."""
    from jaxsyn.train import parallel

    original = parallel.mean_value_and_grad
    parallel.mean_value_and_grad = _forward_value_and_grad
    try:
        yield
    finally:
        parallel.mean_value_and_grad = original


def step_flops(fn: Callable, *args, training: bool = True) -> int:
    """Model FLOPs of one call `fn(*args)` (abstract arguments are fine), with
    `forward_accounting` when `training`. `fn` must be a function not traced before (not an
    already-used `jax.jit`, whose cached trace would hold the gradients)."""
    ctx = forward_accounting() if training else contextlib.nullcontext()
    with ctx:
        return count(jax.make_jaxpr(fn)(*args), training=training)
