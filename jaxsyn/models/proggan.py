"""prog-GAN of DuMont Schütte et al. 2020: a progressive GAN (Karras et al. 2018) with multi-label
auxiliary classification, as the benchmark's reference code (GAN_prog/) trains it.

`jaxsyn train proggan --data phantom:cxr:2000 --out runs/prog --steps 20000 --config.size=32`

Generator: [z; y] (z ~ N(0, 1)^512, y the multi-hot findings) pixel-normalised, a dense layer to a
4x4 map (its bias one per channel, after the reshape), a 3x3 convolution; then per doubling:
nearest 2x upsampling and two 3x3 convolutions; LeakyReLU 0.2 and pixel norm after every layer;
a 1x1 "to-RGB" convolution (linear) per resolution. Discriminator: the mirror image, a 1x1
"from-RGB" per resolution, per halving a 3x3 convolution and a 3x3 convolution with 2x2 average
pooling, the activation after the pooling: lrelu(pool(conv(h)) + b), as the reference's fused
conv2d_downscale2d computes it (a 4x4 box-filtered kernel at stride 2 is exactly conv then pool);
at 4x4 the minibatch standard deviation (groups of 4), a 3x3 convolution, a dense layer and a
dense output of 1 + (L + 1) numbers: the WGAN score and the auxiliary-classifier logits (L
findings plus an implicit "no finding" slot the reference lacks, see `with_no_finding`).
Every weight has an equalized learning rate (N(0, 1) init, scaled by gain / sqrt(fan_in) at run
time), gains as the reference's: sqrt(2), sqrt(2)/4 on G's dense layer, 1 on to-RGB and on D's
output. Widths: min(fmap_base * 2 / res, fmap_max) (512 up to 32 px).

Progressive growing: the network active at `stage` (a power of two, static: a new stage
recompiles) ends at that resolution; while a stage fades in, the new block's output is blended
with the upsampled (G) or downsampled (D) output of the previous stage by `alpha` in [0, 1]
(`fade_level` gives it from the number of images shown, as the reference's TrainingSchedule).
One parameter tree holds every resolution's layers, so checkpoints never change shape.
The reference's blocks are reproduced; its per-resolution minibatch sizes are not (one batch size).

The shared blocks (equalized dense/conv, pixel norm, minibatch stddev, resampling) are used by
`jaxsyn.models.cpdgan` too. No optimiser here: training lives in `jaxsyn.train.gan2d`.
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
from jaxsyn.nn.dense import add_bias
from jaxsyn.nn.remat import POLICIES, as_field, checkpointed, per_stage

SQRT2 = math.sqrt(2.0)  # He gain for LeakyReLU layers (Karras et al. 2018, section 4.1)


# --- blocks shared with cpD-GAN ------------------------------------------------------------------


class EqDense(nn.Module):
    """Dense layer with an equalized learning rate: w ~ N(0, 1), used as w * gain / sqrt(fan_in)."""

    features: int
    gain: float = SQRT2
    use_bias: bool = True
    bias_init: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        w = self.param("kernel", nn.initializers.normal(1.0), (fan_in, self.features))
        y = x @ (w * (self.gain / math.sqrt(fan_in))).astype(x.dtype)
        if self.use_bias:
            b = self.param("bias", nn.initializers.constant(self.bias_init), (self.features,))
            y = add_bias(y, b)  # in float32: the bias's gradient sums in float32
        return y


class EqConv(nn.Module):
    """k x k convolution ('SAME', stride 1) of [B, H, W, C] with an equalized learning rate."""

    features: int
    kernel: int = 3
    gain: float = SQRT2
    use_bias: bool = True
    fan_in: int | None = None  # None: kernel^2 * input channels (see cpdgan.Generator)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, fan_in = self.kernel, self.fan_in or self.kernel * self.kernel * x.shape[-1]
        w = self.param("kernel", nn.initializers.normal(1.0), (k, k, x.shape[-1], self.features))
        y = jax.lax.conv_general_dilated(
            x, (w * (self.gain / math.sqrt(fan_in))).astype(x.dtype), (1, 1), "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )  # fmt: skip
        if self.use_bias:
            y = add_bias(y, self.param("bias", nn.initializers.zeros, (self.features,)))
        return y


def lrelu(x: jax.Array) -> jax.Array:
    return nn.leaky_relu(x, 0.2)  # Karras et al. 2018, section A.1: LeakyReLU 0.2 everywhere


def pixel_norm(x: jax.Array, eps: float = 1e-8) -> jax.Array:
    """b = a / sqrt(mean_c(a^2) + eps) per pixel (Karras et al. 2018, section 4.2, eq. 2)."""
    x32 = x.astype(jnp.float32)
    return (x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)).astype(x.dtype)


def minibatch_stddev(x: jax.Array, group: int = 4) -> jax.Array:
    """[B, H, W, C] -> [B, H, W, C + 1]: one map of the group's mean standard deviation
    (Karras et al. 2018, section 3; reference mbstd_group_size 4).

    Groups are *consecutive* examples (the reference's reshape makes strided groups): a group
    then never spans two devices' shares, so 8 devices compute what 1 device does. The group is
    min(group, B) and must divide B.
    """
    b, h, w, c = x.shape
    g = min(group, b)
    if b % g:
        raise ConfigError(f"minibatch stddev: batch share {b} is not a multiple of the group {g}")
    y = x.astype(jnp.float32).reshape(b // g, g, h, w, c)
    std = jnp.sqrt(jnp.mean(jnp.square(y - y.mean(1, keepdims=True)), axis=1) + 1e-8)
    s = jnp.broadcast_to(std.mean(axis=(1, 2, 3))[:, None, None, None, None], (b // g, g, h, w, 1))
    return jnp.concatenate([x, s.reshape(b, h, w, 1).astype(x.dtype)], axis=-1)


def upsample(x: jax.Array) -> jax.Array:
    """Nearest-neighbour 2x (the reference's upscale2d)."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def downsample(x: jax.Array, factor: int = 2) -> jax.Array:
    """factor x factor average pooling (the reference's downscale2d)."""
    b, h, w, c = x.shape
    return x.reshape(b, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def resize_to(x: jax.Array, size: int) -> jax.Array:
    """Square images to `size` by average pooling or nearest upsampling (powers of two)."""
    while x.shape[1] > size:
        x = downsample(x)
    while x.shape[1] < size:
        x = upsample(x)
    return x


def lerp(a: jax.Array, b: jax.Array, t: jax.Array) -> jax.Array:
    """(1 - t) a + t b: exactly b when t = 1."""
    t = jnp.asarray(t, a.dtype)
    return (1 - t) * a + t * b


def with_no_finding(labels: jax.Array) -> jax.Array:
    """Multi-hot labels [B, L] -> [B, L + 1] float32, the last slot an implicit "no finding":
    1 for an all-zero row, 0 otherwise.

    The reference's data always had at least one positive label per row (CheXpert and RSNA carry
    a "no finding" column); ours need not. On data where every row has a positive label the
    extra slot is always 0 and both families compute what the reference does.
    """
    y = labels.astype(jnp.float32)
    return jnp.concatenate([y, (y.sum(-1, keepdims=True) == 0).astype(jnp.float32)], axis=-1)


def aux_targets(labels: jax.Array) -> jax.Array:
    """Softmax targets from multi-hot labels [B, L] -> [B, L + 1], as the reference's class loss.

    The reference (GAN_prog loss.py, cond_weight 1) takes the softmax cross-entropy of the
    classifier logits against labels / sum(labels): a multi-hot row becomes a distribution.
    An all-zero row targets the implicit "no finding" slot (`with_no_finding`).
    """
    y = with_no_finding(labels)
    return y / y.sum(-1, keepdims=True)


# --- prog-GAN ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProgGANConfig:
    """`jaxsyn train proggan --data phantom:cxr:2000 --out runs/prog --steps 20000`

    Defaults from the benchmark's reference code (GAN_prog/config.py, networks.py) and Karras
    et al. 2018 where the reference keeps theirs.
    """

    num_labels: int = 14  # dataset_tool.py: CheXpert's 14 findings (set from the data by `run`)
    latent_dim: int = 512  # networks.py: latent_size = min(fmap_base, fmap_max) = 512
    channels: int = 1  # dataset_tool.py: greyscale radiographs and CT slices
    size: int = 32  # config.py: the 32x32 preset (64 and 128 are the others)
    initial_size: int = 8  # config.py: lod_initial_resolution = 8
    fmap_base: int = 8192  # networks.py G_paper / D_paper: fmap_base
    fmap_max: int = 512  # networks.py: fmap_max
    mbstd_group: int = 4  # networks.py D_paper: mbstd_group_size 4
    dtype: str = "float32"  # compute dtype; params stay float32
    # Ours (memory, not numbers): activation checkpointing, one jaxsyn.nn.remat policy ("none",
    # "nothing_saveable", "dots_saveable") for every block or one per resolution 4, 8, ..., size
    # (G's block that makes it and D's block that reads it). Same parameters and values.
    remat: str | tuple[str, ...] = "none"

    def __post_init__(self):
        check_common(self, "ProgGANConfig")
        if self.initial_size < 4 or self.initial_size > self.size or not _pow2(self.initial_size):
            raise ConfigError(
                f"ProgGANConfig.initial_size is {self.initial_size}; expected a power of two in "
                f"[4, size = {self.size}]"
            )

    @classmethod
    def tiny(cls, **overrides) -> ProgGANConfig:
        """Every test and smoke run: 16 x 16 from 8 x 8, width 8, 16-d z, 3 findings."""
        fields = dict(num_labels=3, latent_dim=16, size=16, fmap_base=64, fmap_max=8)
        return cls(**{**fields, **overrides})

    def width(self, res: int) -> int:
        """Feature maps at resolution `res`: min(fmap_base / 2^(log2 res - 1), fmap_max)."""
        return min(self.fmap_base * 2 // res, self.fmap_max)

    @property
    def stages(self) -> tuple[int, ...]:
        """The resolutions training passes through: initial_size, 2 initial_size, ..., size."""
        return tuple(2**k for k in range(_log2(self.initial_size), _log2(self.size) + 1))


def _pow2(n: int) -> bool:
    return n >= 1 and not n & (n - 1)


def _log2(n: int) -> int:
    return n.bit_length() - 1


def check_common(config, name: str) -> None:
    """Checks both 2D GAN configs share (they name the config class in their errors)."""
    for field in ("num_labels", "latent_dim", "channels", "fmap_base", "fmap_max", "mbstd_group"):
        if getattr(config, field) < 1:
            raise ConfigError(f"{name}.{field} is {getattr(config, field)}; expected >= 1")
    if config.size < 8 or not _pow2(config.size):
        raise ConfigError(f"{name}.size is {config.size}; expected a power of two >= 8")
    if config.dtype not in ("float32", "bfloat16", "float16"):
        raise ConfigError(
            f"{name}.dtype is {config.dtype!r}; expected float32, bfloat16 or float16"
        )
    object.__setattr__(config, "remat", as_field(config.remat))  # frozen: normalised in place
    if remat_blocks(config) is None:
        raise ConfigError(
            f"{name}.remat is {config.remat!r}; expected one of {POLICIES} or "
            f"{_log2(config.size) - 1} of them (one per resolution 4..{config.size})"
        )


def remat_blocks(config) -> tuple[str, ...] | None:
    """A 2D config's `remat` as one policy per resolution 4, 8, ..., size (None: invalid)."""
    return per_stage(config.remat, _log2(config.size) - 1)


def remat_at(config, res: int) -> str:
    """The remat policy of the blocks at resolution `res` (G's that makes it, D's that reads it)."""
    return remat_blocks(config)[_log2(res) - 2]


def _check_stage(config: ProgGANConfig, stage: int) -> None:
    if stage not in config.stages and stage != 4:
        raise ConfigError(f"stage is {stage}; expected one of {config.stages}")


class Generator(nn.Module):
    config: ProgGANConfig

    @nn.compact
    def __call__(self, z: jax.Array, y: jax.Array, stage: int, alpha) -> jax.Array:
        """z [B, latent], y [B, L] -> images [B, stage, stage, channels] (linear output)."""
        c, dtype = self.config, jnp.dtype(self.config.dtype)
        x = pixel_norm(jnp.concatenate([z, y.astype(z.dtype)], -1))  # normalize_latents=True
        h = _g_block(c, 4)(self, x.astype(dtype))
        hs = {4: h}
        for k in range(3, _log2(stage) + 1):
            h = hs[2**k] = _g_block(c, 2**k)(self, h)
        to_rgb = {r: EqConv(c.channels, 1, gain=1.0, name=f"torgb_{r}") for r in hs}
        if self.is_initializing():  # create every resolution's to-RGB: one tree for all stages
            for r in hs:
                to_rgb[r](hs[r])
        img = to_rgb[stage](hs[stage])
        if stage > 4:  # fade-in: blend with the previous stage's output, upsampled
            img = lerp(upsample(to_rgb[stage // 2](hs[stage // 2])), img, alpha)
        return img.astype(jnp.float32)


def _g_block(c: ProgGANConfig, res: int):
    """G's block that makes resolution `res`, `(module, input) -> features`, under its remat
    policy. At 4: G_paper's dense layer to 4x4 (gain sqrt(2)/4: one 4x4 "transposed conv" of a
    1x1 input, its bias one per channel, added after the reshape) and a 3x3 convolution; above:
    nearest 2x upsampling and two 3x3 convolutions."""

    def first(module, x):
        h = EqDense(c.width(4) * 16, gain=SQRT2 / 4, use_bias=False, name="dense_4")(x)
        bias = module.param("bias_4", nn.initializers.zeros, (c.width(4),))
        h = pixel_norm(lrelu(add_bias(h.reshape(-1, 4, 4, c.width(4)), bias)))
        return pixel_norm(lrelu(EqConv(c.width(4), name="conv_4")(h)))

    def double(module, h):
        h = pixel_norm(lrelu(EqConv(c.width(res), name=f"conv0_{res}")(upsample(h))))
        return pixel_norm(lrelu(EqConv(c.width(res), name=f"conv1_{res}")(h)))

    return checkpointed(first if res == 4 else double, remat_at(c, res))


def _d_block(c: ProgGANConfig, res: int):
    """D's block that reads resolution `res`, `(module, features) -> features`, under its remat
    policy. Above 4: the reference's fused conv + downscale, then the activation; at 4: minibatch
    stddev, a 3x3 convolution and the dense layer before the outputs."""

    def halve(module, h):
        h = lrelu(EqConv(c.width(res), name=f"conv0_{res}")(h))
        return lrelu(downsample(EqConv(c.width(res // 2), name=f"conv1_{res}")(h)))

    def last(module, h):
        h = minibatch_stddev(h, c.mbstd_group)
        h = lrelu(EqConv(c.width(4), name="conv_4")(h))
        return lrelu(EqDense(c.fmap_max, name="dense_4")(h.reshape(h.shape[0], -1)))

    return checkpointed(last if res == 4 else halve, remat_at(c, res))


class Discriminator(nn.Module):
    config: ProgGANConfig

    @nn.compact
    def __call__(self, x: jax.Array, stage: int, alpha) -> tuple[jax.Array, jax.Array]:
        """x [B, stage, stage, channels] -> (WGAN scores [B], aux logits [B, L + 1]), float32."""
        c, dtype = self.config, jnp.dtype(self.config.dtype)
        x = x.astype(dtype)

        rgb = {2**k: EqConv(c.width(2**k), 1, name=f"fromrgb_{2**k}") for k in range(2, 12)}

        def from_rgb(img, res):
            return lrelu(rgb[res](img))

        if self.is_initializing():  # every resolution's from-RGB: one tree for all stages
            for k in range(2, _log2(stage) - 1):
                from_rgb(downsample(x, stage // 2**k), 2**k)
        h = from_rgb(x, stage)
        if stage > 4:
            h = _d_block(c, stage)(self, h)
            h = lerp(from_rgb(downsample(x), stage // 2), h, alpha)  # fade-in
        for k in range(_log2(stage) - 1, 2, -1):
            h = _d_block(c, 2**k)(self, h)
        h = _d_block(c, 4)(self, h)
        out = EqDense(1 + c.num_labels + 1, gain=1.0, name="out")(h).astype(jnp.float32)
        return out[:, 0], out[:, 1:]


def init(key: jax.Array, config: ProgGANConfig) -> dict[str, Any]:
    """Parameters {"g": ..., "d": ...} for every stage (one tree, whatever the active stage)."""
    kg, kd = jax.random.split(key)
    z, y = jnp.zeros((2, config.latent_dim)), jnp.zeros((2, config.num_labels))
    x = jnp.zeros((2, config.size, config.size, config.channels))
    return {
        "g": Generator(config).init(kg, z, y, config.size, 1.0)["params"],
        "d": Discriminator(config).init(kd, x, config.size, 1.0)["params"],
    }


def apply_generator(params, z, y, config: ProgGANConfig, stage: int, alpha=1.0) -> jax.Array:
    """Images [B, stage, stage, channels] of the network active at `stage` (fading by `alpha`)."""
    _check_stage(config, stage)
    return Generator(config).apply({"params": params}, z, y, stage, alpha)


def apply_discriminator(params, x, config: ProgGANConfig, stage: int, alpha=1.0):
    """(scores [B], aux logits [B, L + 1]) of images x [B, stage, stage, channels]."""
    _check_stage(config, stage)
    return Discriminator(config).apply({"params": params}, x, stage, alpha)


def latents(key: jax.Array, n: int, latent_dim: int) -> jax.Array:
    """z [n, latent] with z_i from fold_in(key, i): example i's noise does not depend on n."""
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n))
    return jax.vmap(lambda k: jax.random.normal(k, (latent_dim,)))(keys)


@functools.partial(jax.jit, static_argnames=("config", "stage"))
def _generate(params, z, labels, alpha, config, stage):
    return resize_to(apply_generator(params, z, labels, config, stage, alpha), config.size)


def generate(
    params: Any,
    key: jax.Array,
    labels: jax.Array,
    config: ProgGANConfig,
    stage: int | None = None,
    alpha: float = 1.0,
    z: jax.Array | None = None,
) -> jax.Array:
    """Images [B, size, size, channels] (about [-1, 1]) for multi-hot labels [B, L]; image i's z
    comes from fold_in(key, i), or is row i of `z` [B, latent_dim] when given.

    `stage`, `alpha`: the resolution the generator had grown to (default: `size`) and how far its
    last block had faded in; a smaller stage's images are upsampled (nearest) to `size`, as the
    reference shows a growing network's output.
    """
    labels = jnp.asarray(labels, jnp.float32)
    if labels.ndim != 2 or labels.shape[1] != config.num_labels:
        raise ConfigError(f"labels of shape {labels.shape}; expected [B, {config.num_labels}]")
    z = latents(key, labels.shape[0], config.latent_dim) if z is None else jnp.asarray(z)
    return _generate(params, z, labels, jnp.float32(alpha), config, stage or config.size)


# --- the growing schedule (pure Python / jnp: training and generation share it) -----------------


def fade_level(images, config: ProgGANConfig, stable_images: int, fade_images: int):
    """log2 of the resolution after `images` training images, fractional while a stage fades in
    (the reference's TrainingSchedule: each phase trains `stable_images` at a resolution, then
    fades the next one in over `fade_images`). 3.0 = 8 px stable, 3.25 = 16 px at alpha 0.25.
    `images` may be a Python int or a traced integer array."""
    phase = stable_images + fade_images
    done = images // phase
    within = images - done * phase
    fading = (within - stable_images) / max(fade_images, 1)
    fading = jnp.clip(fading, 0, 1) if isinstance(images, jax.Array) else min(max(fading, 0), 1)
    level = _log2(config.initial_size) + done + fading
    top = _log2(config.size)
    return jnp.minimum(level, top) if isinstance(images, jax.Array) else min(level, top)


def stage_at(images: int, config: ProgGANConfig, stable_images: int, fade_images: int) -> int:
    """The active stage (resolution) after `images` training images (host side, static)."""
    level = fade_level(int(images), config, stable_images, fade_images)
    return 2 ** math.ceil(level)


def fade_alpha(images, config: ProgGANConfig, stage: int, stable_images: int, fade_images: int):
    """alpha in [0, 1] of the `stage` block: its share of the output while it fades in."""
    level = fade_level(images, config, stable_images, fade_images)
    return jnp.clip(level - (_log2(stage) - 1), 0.0, 1.0)
