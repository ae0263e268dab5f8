"""The train state pytree and per-component update schedules.

A model family trains several components ("g", "d", "e", ...), each with its own optimiser and,
possibly, its own rhythm (a discriminator every step, a generator every second step). The state
keeps them in dicts keyed by component, so checkpoints, shardings and the loop need not know
which family they hold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    params: dict[str, Any]  # component -> parameter pytree
    opt_state: dict[str, Any]  # component -> optax state
    step: jax.Array  # int32 []: steps completed
    key: jax.Array  # the run's key; a step draws from fold_in(key, step)
    # Non-trainable variables the step updates (e.g. spectral-norm vectors), by collection.
    stats: dict[str, Any] = flax.struct.field(default_factory=dict)


def create(
    params: Mapping[str, Any],
    optimizers: Mapping[str, optax.GradientTransformation],
    key,
    stats: Mapping[str, Any] | None = None,
) -> TrainState:
    """The state before step 1. Every component in `params` needs an optimiser."""
    return TrainState(
        params=dict(params),
        opt_state={name: optimizers[name].init(p) for name, p in params.items()},
        step=jnp.zeros((), jnp.int32),
        key=key,
        stats=dict(stats or {}),
    )


def apply_gradients(
    params: Any, opt_state: Any, grads: Any, optimizer: optax.GradientTransformation
) -> tuple[Any, Any]:
    """One optimiser update of one component: (params, opt_state) -> (params, opt_state)."""
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def is_due(step: jax.Array, every: int) -> jax.Array:
    """Whether a component that trains every `every`-th step trains in the next step.

    `step` is the number of steps completed (the state's); steps count from 1, so with every=2
    the component trains in steps 2, 4, 6, ... and stands still in steps 1, 3, 5, ...
    """
    return (step + 1) % every == 0


def scheduled(
    due: jax.Array, update: Callable[..., tuple[Any, dict]], *operands: Any
) -> tuple[Any, dict]:
    """`update(*operands) -> (new_operands, metrics)` when `due`, else operands untouched.

    `lax.cond` rather than masking with `jnp.where`: a skipped step costs nothing (masking would
    compute the update and throw it away) and the operands pass through bit for bit. `due` must be
    the same on every device (it is, being a function of the replicated step), so collectives
    inside `update` stay matched. Metrics of a skipped update are NaN, written as null in the log.
    """

    def skip(*ops):
        _, metrics = jax.eval_shape(update, *ops)
        return ops, jax.tree.map(lambda m: jnp.full(m.shape, jnp.nan, m.dtype), metrics)

    return jax.lax.cond(due, update, skip, *operands)


def born_replicated(init: Callable[[], TrainState], mesh) -> TrainState:
    """`init()` computed on `mesh`, replicated: parameters are born where they live."""
    return jax.jit(init, out_shardings=jax.NamedSharding(mesh, jax.P()))()


def abstract_replicated(init: Callable[[], TrainState], mesh) -> TrainState:
    """Shapes, dtypes and replicated shardings of `init()`, computed without running it: the
    restore target."""
    sharding = jax.NamedSharding(mesh, jax.P())
    shapes = jax.eval_shape(init)
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)
