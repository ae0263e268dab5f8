"""CycleGAN's translator (Zhu et al. 2017): the ResNet generator and the 70 x 70 PatchGAN.

`jaxsyn train duiit --setting cyclegan --target phantom:head-ct:64 --source phantom:head-mri:256
--out runs/cyclegan --steps 2000`

Generator (paper appendix 7.2; reference pytorch-CycleGAN-and-pix2pix models/networks.py
ResnetGenerator): c7s1-64, d128, d256, R256 x n_blocks, u128, u64, c7s1-out, tanh. c7s1-k is a
7x7 convolution of stride 1 after a reflection pad of 3, dk a 3x3 convolution of stride 2,
Rk a residual block of two reflection-padded 3x3 convolutions, uk a 3x3 fractionally-strided
convolution of stride 1/2. Instance norm (no affine, as networks.py get_norm_layer('instance'))
and ReLU after every convolution but the last; weights N(0, 0.02) (networks.py init_weights
'normal'). Deviation: a convolution followed by instance norm has no bias (networks.py keeps one,
which the norm subtracts again: its gradient is float rounding, which Adam turns into lr-sized
steps of random sign, so runs on different device counts drift apart in it); the function is
the same.
Discriminator (networks.py NLayerDiscriminator, n_layers=3): C64 (no norm), C128, C256 of 4x4
convolutions of stride 2, C512 of stride 1, then a 4x4 convolution of stride 1 to one channel;
LeakyReLU 0.2; padding 1. Each output sees a 70 x 70 patch (`receptive_field`).

`init(key, config) -> {"g": ..., "d": ...}` for one direction; `translate(params, images)`.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsyn.errors import ConfigError

INIT = nn.initializers.normal(0.02)  # networks.py init_weights: N(0, 0.02)
DTYPES = ("float32", "bfloat16", "float16")


@dataclasses.dataclass(frozen=True, kw_only=True)
class CycleGANConfig:
    """Defaults: CycleGAN paper section 4 / appendix 7.2 and networks.py (ResnetGenerator,
    NLayerDiscriminator)."""

    size: int = 256  # paper: 256 x 256 training images
    channels: int = 1  # grey medical images (the paper's photos have 3)
    g_width: int = 64  # ngf = 64 (c7s1-64)
    d_width: int = 64  # ndf = 64 (C64)
    n_blocks: int | None = None  # appendix 7.2: 9 blocks at 256 px, 6 at 128 px; None = by size
    d_layers: int = 3  # networks.py n_layers_D = 3: the 70 x 70 PatchGAN
    dtype: str = "float32"  # compute dtype; params and norm statistics stay float32

    def __post_init__(self):
        for name in ("channels", "g_width", "d_width", "d_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"CycleGANConfig.{name} is {getattr(self, name)}; expected >= 1")
        if self.size < 8 or self.size % 4:
            raise ConfigError(
                f"CycleGANConfig.size is {self.size}; expected a multiple of 4 >= 8 (two "
                "stride-2 downsamplings)"
            )
        if self.n_blocks is not None and self.n_blocks < 0:
            raise ConfigError(f"CycleGANConfig.n_blocks is {self.n_blocks}; expected >= 0 or None")
        if patch_size(self.size, self.d_layers) < 1:
            raise ConfigError(
                f"CycleGANConfig.d_layers is {self.d_layers} at size {self.size}: the PatchGAN "
                f"output would be empty; expected fewer layers or a larger size"
            )
        if self.dtype not in DTYPES:
            raise ConfigError(f"CycleGANConfig.dtype is {self.dtype!r}; expected one of {DTYPES}")

    @property
    def blocks(self) -> int:
        """Residual blocks: `n_blocks`, else 9 above 128 px and 6 at 128 px and below."""
        if self.n_blocks is not None:
            return self.n_blocks
        return 9 if self.size > 128 else 6

    @classmethod
    def tiny(cls, **overrides) -> CycleGANConfig:
        """16 x 16, widths 4 and 8, 2 residual blocks, a 2-layer PatchGAN (34 x 34 field)."""
        fields = dict(size=16, g_width=4, d_width=8, n_blocks=2, d_layers=2)
        return cls(**{**fields, **overrides})


def patch_size(size: int, layers: int) -> int:
    """Side of the PatchGAN's output map for `size` x `size` inputs."""
    for _ in range(layers):
        size = (size + 2 - 4) // 2 + 1
    for _ in range(2):  # C512 and the output convolution, stride 1
        size = size + 2 - 4 + 1
    return size


def receptive_field(layers: int) -> int:
    """Input pixels one PatchGAN output sees along a side: 70 for 3 layers (Isola et al. 2017)."""
    strides = [2] * layers + [1, 1]  # every convolution is 4x4
    field = 1
    for s in reversed(strides):
        field = field * s + (4 - s)
    return field


def instance_norm(x: jax.Array, eps: float = 1e-5) -> jax.Array:
    """Per example and channel over H, W, in float32 (InstanceNorm2d, affine=False)."""
    x32 = x.astype(jnp.float32)
    mean = x32.mean(axis=(1, 2), keepdims=True)
    var = x32.var(axis=(1, 2), keepdims=True)
    return ((x32 - mean) * jax.lax.rsqrt(var + eps)).astype(x.dtype)


def reflect(x: jax.Array, p: int) -> jax.Array:
    return jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")


class ResnetGenerator(nn.Module):
    """[B, S, S, C] in [-1, 1] -> [B, S, S, C] in [-1, 1]."""

    config: CycleGANConfig

    def conv(self, features, kernel, stride=1, padding="VALID", bias=False):
        return nn.Conv(features, (kernel, kernel), (stride, stride), padding=padding,
                       use_bias=bias, kernel_init=INIT, dtype=self.config.dtype)  # fmt: skip

    @nn.compact
    def __call__(self, x):
        c, n = self.config, self.config.g_width
        x = x.astype(c.dtype)
        h = nn.relu(instance_norm(self.conv(n, 7)(reflect(x, 3))))  # c7s1-64
        for mult in (2, 4):  # d128, d256
            h = nn.relu(instance_norm(self.conv(n * mult, 3, 2, ((1, 1), (1, 1)))(h)))
        for _ in range(c.blocks):  # R256
            r = nn.relu(instance_norm(self.conv(n * 4, 3)(reflect(h, 1))))
            h = h + instance_norm(self.conv(n * 4, 3)(reflect(r, 1)))
        for mult in (2, 1):  # u128, u64: torch ConvTranspose2d(k3, s2, p1, output_padding=1)
            up = nn.ConvTranspose(n * mult, (3, 3), (2, 2), padding=((1, 2), (1, 2)),
                                  use_bias=False, kernel_init=INIT, dtype=c.dtype)  # fmt: skip
            h = nn.relu(instance_norm(up(h)))
        out = self.conv(c.channels, 7, bias=True)(reflect(h, 3))  # c7s1-out
        return jnp.tanh(out.astype(jnp.float32))


class PatchDiscriminator(nn.Module):
    """[B, S, S, C] -> LSGAN scores [B, P, P, 1] (float32), one per 70 x 70 patch."""

    config: CycleGANConfig

    @nn.compact
    def __call__(self, x):
        c = self.config
        h = x.astype(c.dtype)
        pad = ((1, 1), (1, 1))
        for i in range(c.d_layers + 1):  # C64 .. C256 stride 2, then C512 stride 1
            stride = 2 if i < c.d_layers else 1
            width = c.d_width * min(2**i, 8)
            h = nn.Conv(width, (4, 4), (stride, stride), padding=pad, use_bias=i == 0,
                        kernel_init=INIT, dtype=c.dtype)(h)  # fmt: skip
            h = nn.leaky_relu(h if i == 0 else instance_norm(h), 0.2)
        out = nn.Conv(1, (4, 4), padding=pad, kernel_init=INIT, dtype=c.dtype)(h)
        return out.astype(jnp.float32)


def init(key: jax.Array, config: CycleGANConfig) -> dict:
    """Parameters of one direction: {"g": generator, "d": the discriminator of its outputs}."""
    k_g, k_d = jax.random.split(key)
    x = jnp.zeros((1, config.size, config.size, config.channels), jnp.float32)
    return {
        "g": ResnetGenerator(config).init(k_g, x)["params"],
        "d": PatchDiscriminator(config).init(k_d, x)["params"],
    }


def translate(params, images: jax.Array, config: CycleGANConfig) -> jax.Array:
    """Generator `params` (the "g" of `init`, or the whole dict) on images [B, S, S, C]."""
    g = params.get("g", params) if isinstance(params, dict) and "g" in params else params
    return ResnetGenerator(config).apply({"params": g}, images)


def discriminate(params, images: jax.Array, config: CycleGANConfig) -> jax.Array:
    """Discriminator `params` on images [B, S, S, C] -> [B, P, P, 1]."""
    return PatchDiscriminator(config).apply({"params": params}, images)
