"""Rematerialisation (activation checkpointing) of a block, chosen by name from a config.

    none              keep every activation for the backward pass (the default; no change)
    nothing_saveable  keep only the block's inputs, recompute the rest in the backward pass
    dots_saveable     keep matrix products' and convolutions' outputs, recompute the cheap
                      elementwise work (normalisation, activations) between them

`remat(ModuleClass, name)` is the class itself for "none", else `flax.linen.remat` of it with
that `jax.checkpoint` policy: the parameter tree is the same either way (a checkpoint saved
without remat loads with it), and so are the values and gradients up to float rounding.

On XLA:CPU a remat policy does nothing unless the program is compiled with `compiler_options`:
its pipeline expands the optimization barriers `jax.checkpoint` puts around a block's inputs
before common-subexpression elimination, which then merges the backward pass's recomputation
back into the forward one (measured on 16 two-layer tanh blocks, batch 2048 x 256: 66 MiB of
temporaries without remat, 96 MiB with it as XLA:CPU compiles by default, 36 MiB with
`compiler_options`). GPU and TPU keep the barriers; the options are for CPU only.
"""

from __future__ import annotations

import flax.linen as nn
import jax

POLICIES = ("none", "nothing_saveable", "dots_saveable")


def compiler_options(platform: str) -> dict[str, str] | None:
    """The XLA options under which `platform` honours a remat policy (None: it does anyway).

    XLA:CPU's `cse_barrier_expander` pass is skipped so the barriers reach CSE; a program without
    `jax.checkpoint` has no barriers and compiles to the same code either way."""
    return {"xla_disable_hlo_passes": "cse_barrier_expander"} if platform == "cpu" else None


def policy(name: str):
    """The `jax.checkpoint` policy named `name` (None for "none")."""
    if name not in POLICIES:
        raise ValueError(f"remat policy is {name!r}; expected one of {', '.join(POLICIES)}")
    if name == "none":
        return None
    return getattr(jax.checkpoint_policies, name)


def remat(module: type[nn.Module], name: str) -> type[nn.Module]:
    """`module`, rematerialised under policy `name` unless it is "none"."""
    if policy(name) is None:
        return module
    return nn.remat(module, policy=policy(name))


def per_stage(value: str | tuple[str, ...], stages: int) -> tuple[str, ...] | None:
    """A config's remat field (one name for every stage, or one per stage) as one name per stage;
    None when it is neither (the config says so in its own error)."""
    names = (value,) * stages if isinstance(value, str) else tuple(value)
    if len(names) != stages or any(n not in POLICIES for n in names):
        return None
    return names


def as_field(value) -> str | tuple[str, ...]:
    """A config's remat field as it is stored: one name, or a tuple of names. A comma-separated
    string (`--config.remat=a,b,c`) and a list (a config read back from JSON) become a tuple, so
    the config stays hashable."""
    if isinstance(value, str) and "," in value:
        return tuple(r.strip() for r in value.split(","))
    return tuple(value) if isinstance(value, list) else value


def field_error(config, stages: int, what: str) -> str | None:
    """Normalise a frozen config's `remat` field in place (`as_field`); the message for a value
    that is neither one policy nor `stages` of them (naming the config and `what` its stages
    are), else None. The config raises it as its ConfigError (nn imports no other layer)."""
    object.__setattr__(config, "remat", as_field(config.remat))
    if per_stage(config.remat, stages) is None:
        return (
            f"{type(config).__name__}.remat is {config.remat!r}; expected one of {POLICIES} or "
            f"{stages} of them ({what})"
        )
    return None


def checkpointed(fn, name: str):
    """`fn(module, *arrays)`, rematerialised under policy `name` unless it is "none".

    `fn` takes a Flax module first and may make that module's submodules inline (under their
    names) and its parameters (`module.param`): flax's lifted `nn.remat` binds them at the paths
    they have without remat, so the parameter tree is the same with and without it. Static
    arguments (a resolution, a flag) belong in `fn`'s closure, not in its arguments."""
    return fn if policy(name) is None else nn.remat(fn, policy=policy(name))
