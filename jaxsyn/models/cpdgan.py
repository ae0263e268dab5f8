"""cpD-GAN of DuMont Schütte et al. 2020: conditional pixel norm in G, a projection discriminator.

`jaxsyn train cpdgan --data phantom:cxr:2000 --out runs/cpd --steps 20000 --config.size=32`

As the benchmark's reference code (GAN_cpd/) builds it, no progressive growing:
Generator ("skip", StyleGAN2-like output skips): [z; y] through a dense layer to a 4x4 map and a
3x3 convolution, then per doubling nearest 2x upsampling and two 3x3 convolutions; after every
convolution LeakyReLU 0.2 and *conditional pixel norm*
    b = a / sqrt(mean_c(a^2) + 1e-8) * gamma + beta,   gamma, beta = dense([z; y])
(`CondPixelNorm`; gamma's bias starts at 1, so b starts as the plain pixel norm). Every
resolution has a 1x1 to-RGB; the image is the sum of them, each upsampled to the next
resolution: img_r = up(img_{r/2}) + torgb_r(h_r).
Discriminator ("resnet"): a 1x1 from-RGB at full size, per halving a residual block
[3x3 conv, 3x3 conv, 2x2 average pool] + [average pool, 1x1 conv] scaled by 1/sqrt(2); at 4x4
the minibatch standard deviation (groups of 4), a 3x3 convolution, a dense layer to features h
and the projection output (Miyato & Koyama 2018; the reference's "dense to label_size, then
sum(x * labels)"):
    D(x, y) = linear(h) + <embed(y), h>,   embed(y) = W y   (W: [L, F], no bias).
Equalized learning rate on every weight (the reference's StyleGAN2 layers). Widths:
min(fmap_base * 2 / res, fmap_max) = 512 up to 64 px. Labels are multi-hot [B, L].
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsyn.errors import ConfigError
from jaxsyn.models.proggan import (
    SQRT2,
    EqConv,
    EqDense,
    check_common,
    downsample,
    latents,
    lrelu,
    minibatch_stddev,
    pixel_norm,
    upsample,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CPDGANConfig:
    """`jaxsyn train cpdgan --data phantom:cxr:2000 --out runs/cpd --steps 20000`

    Defaults from the benchmark's reference code (GAN_cpd/config.py, networks_stylegan2.py).
    """

    num_labels: int = 14  # dataset_tool.py: CheXpert's 14 findings (set from the data by `run`)
    latent_dim: int = 512  # networks_stylegan2.py: latent_size 512
    channels: int = 1  # dataset_tool.py: greyscale radiographs and CT slices
    size: int = 32  # config.py: the 32x32 preset (no growing: lod_initial_resolution = size)
    fmap_base: int = 16 << 10  # networks_stylegan2.py: fmap_base = 16 << 10
    fmap_max: int = 512  # networks_stylegan2.py: fmap_max 512 (the "512 channels")
    mbstd_group: int = 4  # networks_stylegan2.py D_stylegan2: mbstd_group_size 4
    dtype: str = "float32"  # compute dtype; params stay float32

    def __post_init__(self):
        check_common(self, "CPDGANConfig")

    @classmethod
    def tiny(cls, **overrides) -> CPDGANConfig:
        """Every test and smoke run: 16 x 16, width 8, 16-d z, 3 findings."""
        fields = dict(num_labels=3, latent_dim=16, size=16, fmap_base=64, fmap_max=8)
        return cls(**{**fields, **overrides})

    def width(self, res: int) -> int:
        return min(self.fmap_base * 2 // res, self.fmap_max)


class CondPixelNorm(nn.Module):
    """b = pixel_norm(a) * gamma + beta with gamma, beta = dense(cond) per channel."""

    @nn.compact
    def __call__(self, a: jax.Array, cond: jax.Array) -> jax.Array:
        c = a.shape[-1]
        gamma = EqDense(c, gain=1.0, bias_init=1.0, name="gamma")(cond)
        beta = EqDense(c, gain=1.0, name="beta")(cond)
        return pixel_norm(a) * gamma[:, None, None, :] + beta[:, None, None, :]


class Generator(nn.Module):
    config: CPDGANConfig

    @nn.compact
    def __call__(self, z: jax.Array, y: jax.Array) -> jax.Array:
        """z [B, latent], y [B, L] -> images [B, size, size, channels] (linear output)."""
        c, dtype = self.config, jnp.dtype(self.config.dtype)
        cond = jnp.concatenate([z, y.astype(z.dtype)], -1).astype(dtype)
        h = EqDense(c.width(4) * 16, gain=SQRT2 / 4, name="dense_4")(cond)
        h = CondPixelNorm(name="cpn0_4")(lrelu(h.reshape(-1, 4, 4, c.width(4))), cond)
        h = CondPixelNorm(name="cpn1_4")(lrelu(EqConv(c.width(4), name="conv_4")(h)), cond)
        img = EqConv(c.channels, 1, gain=1.0, name="torgb_4")(h)
        res = 4
        while res < c.size:
            res *= 2
            h = upsample(h)
            for i in range(2):
                h = lrelu(EqConv(c.width(res), name=f"conv{i}_{res}")(h))
                h = CondPixelNorm(name=f"cpn{i}_{res}")(h, cond)
            img = upsample(img) + EqConv(c.channels, 1, gain=1.0, name=f"torgb_{res}")(h)
        return img.astype(jnp.float32)


class Features(nn.Module):
    """x [B, size, size, channels] -> h [B, fmap_max], the features the outputs read."""

    config: CPDGANConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = self.config
        h = lrelu(EqConv(c.width(c.size), 1, name="fromrgb")(x.astype(jnp.dtype(c.dtype))))
        res = c.size
        while res > 4:
            t = lrelu(EqConv(c.width(res), name=f"conv0_{res}")(h))
            t = downsample(lrelu(EqConv(c.width(res // 2), name=f"conv1_{res}")(t)))
            skip = EqConv(c.width(res // 2), 1, gain=1.0, use_bias=False, name=f"skip_{res}")
            h = (t + skip(downsample(h))) / math.sqrt(2.0)
            res //= 2
        h = minibatch_stddev(h, c.mbstd_group)
        h = lrelu(EqConv(c.width(4), name="conv_4")(h))
        return lrelu(EqDense(c.fmap_max, name="dense_4")(h.reshape(h.shape[0], -1)))


class Discriminator(nn.Module):
    config: CPDGANConfig

    @nn.compact
    def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """x [B, size, size, channels], y [B, L] -> WGAN scores [B], float32."""
        h = Features(self.config, name="features")(x).astype(jnp.float32)
        linear = EqDense(1, gain=1.0, name="out")(h)[:, 0]
        # <embed(y), h> with embed(y) = W y, computed as sum((W^T h) * y) (the reference's form).
        projected = EqDense(self.config.num_labels, gain=1.0, use_bias=False, name="embed")(h)
        return linear + jnp.sum(projected * y.astype(jnp.float32), axis=-1)


def init(key: jax.Array, config: CPDGANConfig) -> dict[str, Any]:
    """Parameters {"g": ..., "d": ...}."""
    kg, kd = jax.random.split(key)
    z, y = jnp.zeros((2, config.latent_dim)), jnp.zeros((2, config.num_labels))
    x = jnp.zeros((2, config.size, config.size, config.channels))
    return {
        "g": Generator(config).init(kg, z, y)["params"],
        "d": Discriminator(config).init(kd, x, y)["params"],
    }


def apply_generator(params, z, y, config: CPDGANConfig) -> jax.Array:
    """Images [B, size, size, channels] from z [B, latent] and labels [B, L]."""
    return Generator(config).apply({"params": params}, z, y)


def apply_discriminator(params, x, y, config: CPDGANConfig) -> jax.Array:
    """Scores [B] of images x [B, size, size, channels] under labels y [B, L]."""
    return Discriminator(config).apply({"params": params}, x, y)


def discriminator_features(params, x, config: CPDGANConfig) -> jax.Array:
    """h [B, fmap_max]: the features the projection output reads (for tests and analysis)."""
    return Features(config).apply({"params": params["features"]}, x)


@functools.partial(jax.jit, static_argnames=("config",))
def _generate(params, z, labels, config):
    return apply_generator(params, z, labels, config)


def generate(params: Any, key: jax.Array, labels: jax.Array, config: CPDGANConfig) -> jax.Array:
    """Images [B, size, size, channels] (about [-1, 1]) for multi-hot labels [B, L]; image i's z
    comes from fold_in(key, i)."""
    labels = jnp.asarray(labels, jnp.float32)
    if labels.ndim != 2 or labels.shape[1] != config.num_labels:
        raise ConfigError(f"labels of shape {labels.shape}; expected [B, {config.num_labels}]")
    return _generate(params, latents(key, labels.shape[0], config.latent_dim), labels, config)
