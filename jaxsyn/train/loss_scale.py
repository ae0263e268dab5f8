"""Dynamic loss scaling, for the families that compute in float16.

float16 keeps 5 exponent bits: numbers below 6e-8 flush to zero and above 65504 overflow. A GAN's
backward pass through float16 activations carries cotangents of the order of loss / (batch x
pixels), which underflow, so whole layers get a zero gradient. The remedy (Micikevicius et al.,
"Mixed precision training", ICLR 2018) is to differentiate `scale x loss`, which lifts every
cotangent by `scale`, and to divide the float32 parameter gradients by it afterwards. The scale
is dynamic: a step whose gradients are not all finite is skipped (parameters, optimiser state and
running statistics stay as they were) and halves the scale; after `PERIOD` finite steps in a row
it doubles. bfloat16 has float32's exponent range and needs none of this, so every other dtype
takes the plain path, compiled exactly as before.

The scale is part of the train state (`state.stats["loss_scale"][component]`), so a run resumes
with the scale it had.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxsyn.train import parallel
from jaxsyn.train import state as state_lib

INITIAL = 2.0**15  # the first scale (the paper's and PyTorch's GradScaler's default is 2^16)
PERIOD = 2000  # finite steps in a row before the scale doubles (GradScaler's growth_interval)
MINIMUM = 1.0  # the scale never halves below this


def wanted(dtype: str) -> bool:
    """Whether a family computing in `dtype` scales its losses."""
    return dtype == "float16"


def initial(components) -> dict[str, dict[str, jax.Array]]:
    """The scale state of each component before step 1."""
    return {
        c: {"scale": jnp.float32(INITIAL), "good_steps": jnp.zeros((), jnp.int32)}
        for c in components
    }


def next_scale(scale: dict[str, jax.Array], finite: jax.Array) -> dict[str, jax.Array]:
    """The scale state after a step whose gradients were (`finite`) or were not all finite."""
    good = jnp.where(finite, scale["good_steps"] + 1, 0)
    grow = good >= PERIOD
    value = jnp.where(
        finite,
        jnp.where(grow, scale["scale"] * 2, scale["scale"]),
        jnp.maximum(scale["scale"] / 2, MINIMUM),
    )
    return {"scale": value.astype(jnp.float32), "good_steps": jnp.where(grow, 0, good)}


def all_finite(tree: Any) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def mean_value_and_grad(
    loss_fn: Callable[..., Any], scale: dict[str, jax.Array] | None, *, has_aux: bool = False
) -> Callable[..., tuple]:
    """`parallel.mean_value_and_grad` with the loss scaled by `scale` (None: not scaled).

    Returns `(value, grads, finite)`: value as `parallel.mean_value_and_grad` gives it (the loss
    unscaled), the unscaled gradients and whether they are all finite (the same on every device:
    the gradients are already all-reduced)."""
    if scale is None:
        plain = parallel.mean_value_and_grad(loss_fn, has_aux=has_aux)
        return lambda *args: (*plain(*args), jnp.bool_(True))
    s = scale["scale"]

    def scaled_loss(params, *args):
        out = loss_fn(params, *args)
        loss, aux = out if has_aux else (out, None)
        scaled = loss.astype(jnp.float32) * s
        return (scaled, (loss, aux)) if has_aux else (scaled, loss)

    def value_and_grad(*args):
        (_, carried), grads = parallel.mean_value_and_grad(scaled_loss, has_aux=True)(*args)
        grads = jax.tree.map(lambda g: (g / s).astype(g.dtype), grads)
        if has_aux:
            loss, aux = carried
            value = (jax.lax.pmean(loss, parallel.DATA), aux)
        else:
            value = jax.lax.pmean(carried, parallel.DATA)
        return value, grads, all_finite(grads)

    return value_and_grad


def apply_gradients(
    params: Any,
    opt_state: Any,
    grads: Any,
    optimizer: optax.GradientTransformation,
    finite: jax.Array,
    scaled: bool,
) -> tuple[Any, Any]:
    """`state.apply_gradients`, skipped (params and opt_state returned bit for bit) when the
    gradients are not `finite`. Unscaled runs (`scaled` False) update unconditionally."""
    if not scaled:
        return state_lib.apply_gradients(params, opt_state, grads, optimizer)
    return jax.lax.cond(
        finite,
        lambda: state_lib.apply_gradients(params, opt_state, grads, optimizer),
        lambda: (params, opt_state),
    )


def keep_if(finite: jax.Array, new: Any, old: Any) -> Any:
    """`new` where the step's gradients were finite, else `old` (running statistics)."""
    return jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
