"""cpD-GAN of DuMont Schütte et al. 2020: conditional pixel norm in G, a label-conditioned critic.

`jaxsyn train cpdgan --data phantom:cxr:2000 --out runs/cpd --steps 20000 --config.size=32`

As the benchmark's reference code (GAN_cpd/networks.py) builds it, no progressive growing:
Generator ("skip", StyleGAN2-like output skips): [z; y] pixel-normalised (normalize_latents),
a dense layer to a 4x4 map (bias per channel, after the reshape) and a 3x3 convolution, then per
doubling nearest 2x upsampling with a 3x3 convolution and a second 3x3 convolution; after every
layer LeakyReLU 0.2 and *conditional pixel norm*
    b = a / sqrt(mean_c(a^2) + 1e-8) * gamma + beta,   gamma, beta = dense([z; y])
(`CondPixelNorm`: [z; y] not normalised here; gamma is used as it is, its bias starting at 0
like beta's, as in the reference). Every resolution has a 1x1 to-RGB; the image is the sum of
them, each upsampled to the next resolution: img_r = up(img_{r/2}) + torgb_r(h_r).
Discriminator ("resnet"): a 1x1 from-RGB at full size, per halving a residual block
[3x3 conv; 3x3 conv with 2x2 average pooling, activation after the pooling] + [average pool,
1x1 conv, no bias] scaled by 1/sqrt(2); at 4x4 the minibatch standard deviation (groups of 4),
a 3x3 convolution and a dense layer to features h [B, fmap_max]; the output is the reference's
label-conditioned one (Mescheder et al. 2018, "Which training methods for GANs actually
converge?"): a dense layer to one score per label, summed over the labels the image carries,
    D(x, y) = sum_l y_l (v_l^T h + b_l),
with y extended by the implicit "no finding" slot (`proggan.with_no_finding`): the reference's
data always had a positive label, and without the slot an all-zero row would score 0 whatever
the image. There is no unconditional term b + w^T h.

Equalized learning rate on every weight (N(0, 1) storage, scaled by gain / sqrt(fan_in)) with
the reference's gains: 1 on every layer except those its fused up/down convolutions build, which
default to sqrt(2): G's upsampling convolution (whose fan_in the reference counts from the
*output* channels, 9 * width(res), reproduced here), D's downsampling convolution and D's skip
convolution. Widths: min(fmap_base * 2 / res, fmap_max) = 512 up to 64 px. Labels are multi-hot
[B, L]. Where ours still differs: the 4x4 dense layer's outputs are reshaped channels-last (a
permutation of the reference's channels-first columns: the same distribution of networks), and
minibatch stddev groups consecutive examples (see `proggan.minibatch_stddev`).
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
    EqConv,
    EqDense,
    check_common,
    downsample,
    latents,
    lrelu,
    minibatch_stddev,
    pixel_norm,
    remat_at,
    upsample,
    with_no_finding,
)
from jaxsyn.nn.dense import add_bias
from jaxsyn.nn.remat import checkpointed


@dataclasses.dataclass(frozen=True, kw_only=True)
class CPDGANConfig:
    """`jaxsyn train cpdgan --data phantom:cxr:2000 --out runs/cpd --steps 20000`

    Defaults from the benchmark's reference code (GAN_cpd/config.py, networks.py).
    """

    num_labels: int = 14  # dataset_tool.py: CheXpert's 14 findings (set from the data by `run`)
    latent_dim: int = 512  # networks.py G_paper: latent_size = nf(0) = 512
    channels: int = 1  # dataset_tool.py: greyscale radiographs and CT slices
    size: int = 32  # config.py: the 32x32 preset (no growing: lod_initial_resolution = size)
    fmap_base: int = 16 << 10  # networks.py G_paper / D_paper: fmap_base = 16 << 10
    fmap_max: int = 512  # networks.py: fmap_max 512 (the "512 channels")
    mbstd_group: int = 4  # config.py D: mbstd_group_size 4
    dtype: str = "float32"  # compute dtype; params stay float32
    # Ours (memory, not numbers): activation checkpointing, one jaxsyn.nn.remat policy ("none",
    # "nothing_saveable", "dots_saveable") for every block or one per resolution 4, 8, ..., size
    # (G's block that makes it and D's block that reads it). Same parameters and values.
    remat: str | tuple[str, ...] = "none"

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
    """b = pixel_norm(a) * gamma + beta with gamma, beta = dense(cond) per channel (gain 1, biases
    starting at 0: the reference's conditional_pixel_norm)."""

    @nn.compact
    def __call__(self, a: jax.Array, cond: jax.Array) -> jax.Array:
        c = a.shape[-1]
        gamma = EqDense(c, gain=1.0, name="gamma")(cond)
        beta = EqDense(c, gain=1.0, name="beta")(cond)
        # in float32: gamma's and beta's gradients sum over the pixels (bfloat16 would lose bits)
        f32 = jnp.float32
        y = pixel_norm(a).astype(f32) * gamma[:, None, None, :].astype(f32)
        return (y + beta[:, None, None, :].astype(f32)).astype(a.dtype)


class Generator(nn.Module):
    config: CPDGANConfig

    @nn.compact
    def __call__(self, z: jax.Array, y: jax.Array) -> jax.Array:
        """z [B, latent], y [B, L] -> images [B, size, size, channels] (linear output)."""
        c, dtype = self.config, jnp.dtype(self.config.dtype)
        cond = jnp.concatenate([z, y.astype(z.dtype)], -1).astype(dtype)
        h = _g_block(c, 4)(self, cond)
        img = EqConv(c.channels, 1, gain=1.0, name="torgb_4")(h)
        res = 4
        while res < c.size:
            res *= 2
            h = _g_block(c, res)(self, h, cond)
            img = upsample(img) + EqConv(c.channels, 1, gain=1.0, name=f"torgb_{res}")(h)
        return img.astype(jnp.float32)


def _g_block(c: CPDGANConfig, res: int):
    """G's block that makes resolution `res`, `(module, [h,] cond) -> features` (h: the block
    below's output; none at 4), under its remat policy. At 4: the dense layer from the
    pixel-normalised [z; y] to 4x4 and a 3x3 convolution; above: nearest 2x upsampling with a
    3x3 convolution and a second one."""

    def first(module, cond):
        h = EqDense(c.width(4) * 16, gain=1.0, use_bias=False, name="dense_4")(pixel_norm(cond))
        bias = module.param("bias_4", nn.initializers.zeros, (c.width(4),))
        h = CondPixelNorm(name="cpn0_4")(
            lrelu(add_bias(h.reshape(-1, 4, 4, c.width(4)), bias)), cond
        )
        return CondPixelNorm(name="cpn1_4")(
            lrelu(EqConv(c.width(4), gain=1.0, name="conv_4")(h)), cond
        )

    def double(module, h, cond):
        up = EqConv(c.width(res), fan_in=9 * c.width(res), name=f"conv0_{res}")
        h = CondPixelNorm(name=f"cpn0_{res}")(lrelu(up(upsample(h))), cond)
        h = lrelu(EqConv(c.width(res), gain=1.0, name=f"conv1_{res}")(h))
        return CondPixelNorm(name=f"cpn1_{res}")(h, cond)

    return checkpointed(first if res == 4 else double, remat_at(c, res))


def _d_block(c: CPDGANConfig, res: int):
    """D's block that reads resolution `res`, `(module, features) -> features`, under its remat
    policy. Above 4: the residual block; at 4: minibatch stddev, a 3x3 convolution and the dense
    layer to the features."""

    def halve(module, h):
        t = lrelu(EqConv(c.width(res), gain=1.0, name=f"conv0_{res}")(h))
        t = lrelu(downsample(EqConv(c.width(res // 2), name=f"conv1_{res}")(t)))
        skip = EqConv(c.width(res // 2), 1, use_bias=False, name=f"skip_{res}")
        return (t + skip(downsample(h))) / math.sqrt(2.0)

    def last(module, h):
        h = minibatch_stddev(h, c.mbstd_group)
        h = lrelu(EqConv(c.width(4), gain=1.0, name="conv_4")(h))
        return lrelu(EqDense(c.fmap_max, gain=1.0, name="dense_4")(h.reshape(h.shape[0], -1)))

    return checkpointed(last if res == 4 else halve, remat_at(c, res))


class Features(nn.Module):
    """x [B, size, size, channels] -> h [B, fmap_max], the features the outputs read."""

    config: CPDGANConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = self.config
        x = x.astype(jnp.dtype(c.dtype))
        h = lrelu(EqConv(c.width(c.size), 1, gain=1.0, name="fromrgb")(x))
        res = c.size
        while res > 4:
            h = _d_block(c, res)(self, h)
            res //= 2
        return _d_block(c, 4)(self, h)


class Discriminator(nn.Module):
    config: CPDGANConfig

    @nn.compact
    def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """x [B, size, size, channels], y [B, L] -> WGAN scores [B], float32."""
        h = Features(self.config, name="features")(x).astype(jnp.float32)
        scores = EqDense(self.config.num_labels + 1, gain=1.0, name="out")(h)  # v_l^T h + b_l
        return jnp.sum(scores * with_no_finding(y), axis=-1)


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
    """h [B, fmap_max]: the features the label-conditioned output reads (tests and analysis)."""
    return Features(config).apply({"params": params["features"]}, x)


@functools.partial(jax.jit, static_argnames=("config",))
def _generate(params, z, labels, config):
    return apply_generator(params, z, labels, config)


def generate(
    params: Any, key: jax.Array, labels: jax.Array, config: CPDGANConfig, z: jax.Array | None = None
) -> jax.Array:
    """Images [B, size, size, channels] (about [-1, 1]) for multi-hot labels [B, L]; image i's z
    comes from fold_in(key, i), or is row i of `z` [B, latent_dim] when given."""
    labels = jnp.asarray(labels, jnp.float32)
    if labels.ndim != 2 or labels.shape[1] != config.num_labels:
        raise ConfigError(f"labels of shape {labels.shape}; expected [B, {config.num_labels}]")
    z = latents(key, labels.shape[0], config.latent_dim) if z is None else jnp.asarray(z)
    return _generate(params, z, labels, config)
