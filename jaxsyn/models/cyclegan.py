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
Precision: `dtype` is the convolutions' compute dtype; parameters, instance-norm statistics and
bias sums (`jaxsyn.nn.dense.add_bias`) stay float32, and both networks return float32.
Memory (ours): `remat` checkpoints the generator's encoder, each residual block and its decoder
under a `jaxsyn.nn.remat` policy; the parameter tree and the values are the same.

`init(key, config) -> {"g": ..., "d": ...}` for one direction; `translate(params, images)`.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsyn.errors import ConfigError
from jaxsyn.nn.layers import Conv
from jaxsyn.nn.remat import checkpointed, field_error, per_stage

INIT = nn.initializers.normal(0.02)  # networks.py init_weights: N(0, 0.02)
# No float16: DUIIT has no loss scaling (jaxsyn.train.loss_scale); bfloat16 needs none.
DTYPES = ("float32", "bfloat16")


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
    # Ours (memory, not numbers): activation checkpointing of the generator, one jaxsyn.nn.remat
    # policy ("none", "nothing_saveable", "dots_saveable") for all of it or one per stage group:
    # the encoder (c7s1-64, d128, d256), each residual block, the decoder (u128, u64, c7s1-out).
    # Same parameters and values.
    remat: str | tuple[str, ...] = "none"

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
        if error := field_error(self, 3, "the generator's encoder, residual blocks, decoder"):
            raise ConfigError(error)

    @property
    def blocks(self) -> int:
        """Residual blocks: `n_blocks`, else 9 above 128 px and 6 at 128 px and below."""
        if self.n_blocks is not None:
            return self.n_blocks
        return 9 if self.size > 128 else 6

    @property
    def remat_groups(self) -> tuple[str, ...] | None:
        """`remat` as one policy per group: encoder, residual blocks, decoder (None: invalid)."""
        return per_stage(self.remat, 3)

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


def _conv(c: CycleGANConfig, features, kernel, name, stride=1, padding="VALID", bias=False):
    return Conv(features, (kernel, kernel), (stride, stride), padding=padding, use_bias=bias,
                kernel_init=INIT, dtype=c.dtype, name=name)  # fmt: skip


def _encoder(module, x):
    """c7s1-64, d128, d256 (Conv_0 .. Conv_2)."""
    c, n = module.config, module.config.g_width
    h = nn.relu(instance_norm(_conv(c, n, 7, "Conv_0")(reflect(x, 3))))
    for i, mult in enumerate((2, 4), start=1):
        h = nn.relu(instance_norm(_conv(c, n * mult, 3, f"Conv_{i}", 2, ((1, 1), (1, 1)))(h)))
    return h


def _residual(index: int):
    """Residual block `index` (Conv_{3 + 2 index}, Conv_{4 + 2 index}) as `(module, h) -> h`."""

    def block(module, h):
        c = module.config
        n = c.g_width * 4
        r = nn.relu(instance_norm(_conv(c, n, 3, f"Conv_{3 + 2 * index}")(reflect(h, 1))))
        return h + instance_norm(_conv(c, n, 3, f"Conv_{4 + 2 * index}")(reflect(r, 1)))

    return block


def _decoder(module, h):
    """u128, u64 (torch ConvTranspose2d(k3, s2, p1, output_padding=1)), c7s1-out, tanh."""
    c, n = module.config, module.config.g_width
    for i, mult in enumerate((2, 1)):
        up = nn.ConvTranspose(n * mult, (3, 3), (2, 2), padding=((1, 2), (1, 2)), use_bias=False,
                              kernel_init=INIT, dtype=c.dtype, name=f"ConvTranspose_{i}")  # fmt: skip
        h = nn.relu(instance_norm(up(h)))
    out = _conv(c, c.channels, 7, f"Conv_{3 + 2 * c.blocks}", bias=True)(reflect(h, 3))
    return jnp.tanh(out.astype(jnp.float32))


class ResnetGenerator(nn.Module):
    """[B, S, S, C] in [-1, 1] -> [B, S, S, C] in [-1, 1] (float32).

    The encoder, each residual block and the decoder run under their `remat` policies; the
    layers are named as flax names them inline (Conv_0 .. Conv_{2 n_blocks + 3},
    ConvTranspose_0/1), the tree of checkpoints saved before `remat` existed."""

    config: CycleGANConfig

    @nn.compact
    def __call__(self, x):
        c = self.config
        encoder, blocks, decoder = c.remat_groups
        h = checkpointed(_encoder, encoder)(self, x.astype(c.dtype))
        for i in range(c.blocks):  # R256
            h = checkpointed(_residual(i), blocks)(self, h)
        return checkpointed(_decoder, decoder)(self, h)


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
            h = Conv(width, (4, 4), (stride, stride), padding=pad, use_bias=i == 0,
                     kernel_init=INIT, dtype=c.dtype)(h)  # fmt: skip
            h = nn.leaky_relu(h if i == 0 else instance_norm(h), 0.2)
        out = Conv(1, (4, 4), padding=pad, kernel_init=INIT, dtype=c.dtype)(h)
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
