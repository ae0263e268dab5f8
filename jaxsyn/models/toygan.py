"""Toy conditional GAN on 2-D points: the smallest model that exercises the training plumbing.

`jaxsyn train toygan --out runs/toy --steps 2000`

Generator: [z, onehot(y)] -> MLP -> x [B, data_dim]. Its hidden layers are normalised with batch
statistics of the *global* batch (`BatchStats` with `axis_name`), so a data-parallel step only
equals the single-device step if the cross-device mean is right.
Discriminator: [x, onehot(y)] -> MLP -> logit [B].

No optimiser and no data pipeline here: the train step lives in `jaxsyn.train.toygan`.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsyn.errors import ConfigError
from jaxsyn.nn.dense import BatchStats


@dataclasses.dataclass(frozen=True, kw_only=True)
class ToyGANConfig:
    """`jaxsyn train toygan --out runs/toy --steps 2000`

    Sizes of the toy networks: no paper behind them, chosen to train in seconds on a CPU.
    """

    num_classes: int = 4  # one mixture component per class
    data_dim: int = 2  # points in the plane, easy to plot
    latent_dim: int = 8
    width: int = 64  # hidden units per layer, both networks
    depth: int = 2  # hidden layers per network

    def __post_init__(self):
        for name in ("num_classes", "data_dim", "latent_dim", "width", "depth"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ToyGANConfig.{name} is {getattr(self, name)}; expected >= 1")

    @classmethod
    def tiny(cls) -> ToyGANConfig:
        """The preset every test and smoke run uses."""
        return cls(num_classes=3, latent_dim=4, width=8, depth=2)


class Generator(nn.Module):
    config: ToyGANConfig
    axis_name: str | None = None

    @nn.compact
    def __call__(self, z: jax.Array, onehot: jax.Array) -> jax.Array:
        """z [B, latent_dim], onehot [B, num_classes] -> x [B, data_dim]."""
        h = jnp.concatenate([z, onehot], axis=-1)
        for _ in range(self.config.depth):
            # No bias before the normalisation: it would be subtracted right away, its gradient
            # rounding noise that Adam would scale up into steps.
            h = nn.Dense(self.config.width, use_bias=False)(h)
            h = nn.relu(BatchStats(axis_name=self.axis_name)(h))
        return nn.Dense(self.config.data_dim)(h)  # linear: the data are not bounded


class Discriminator(nn.Module):
    config: ToyGANConfig

    @nn.compact
    def __call__(self, x: jax.Array, onehot: jax.Array) -> jax.Array:
        """x [B, data_dim], onehot [B, num_classes] -> logits [B]."""
        h = jnp.concatenate([x, onehot], axis=-1)
        for _ in range(self.config.depth):
            h = nn.leaky_relu(nn.Dense(self.config.width)(h), 0.2)  # DCGAN's slope
        return nn.Dense(1)(h)[:, 0]


def init(key: jax.Array, config: ToyGANConfig) -> dict[str, dict]:
    """Parameters {"g": ..., "d": ...} as plain pytrees."""
    kg, kd = jax.random.split(key)
    z = jnp.zeros((2, config.latent_dim))  # two rows: batch statistics need a batch
    onehot = jnp.zeros((2, config.num_classes))
    x = jnp.zeros((2, config.data_dim))
    return {
        "g": Generator(config).init(kg, z, onehot)["params"],
        "d": Discriminator(config).init(kd, x, onehot)["params"],
    }


def apply_generator(
    params: dict, z: jax.Array, labels: jax.Array, config: ToyGANConfig, axis_name=None
) -> jax.Array:
    """z [B, latent_dim], labels int [B] -> x [B, data_dim]; `axis_name` for global statistics."""
    onehot = jax.nn.one_hot(labels, config.num_classes)
    return Generator(config, axis_name=axis_name).apply({"params": params}, z, onehot)


def apply_discriminator(
    params: dict, x: jax.Array, labels: jax.Array, config: ToyGANConfig
) -> jax.Array:
    """x [B, data_dim], labels int [B] -> logits [B]."""
    onehot = jax.nn.one_hot(labels, config.num_classes)
    return Discriminator(config).apply({"params": params}, x, onehot)


def generate(params: dict, key: jax.Array, labels: jax.Array, *, config: ToyGANConfig) -> jax.Array:
    """Samples x [B, data_dim] for class labels int [B] (B >= 2: the generator uses batch stats).

    `params` is the {"g", "d"} dict from `init` (or a checkpoint); only "g" is used.
    """
    z = jax.random.normal(key, (labels.shape[0], config.latent_dim))
    return apply_generator(params["g"], z, labels, config)
