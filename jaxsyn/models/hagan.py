"""HA-GAN: hierarchical amortized GAN for full-resolution 3D volumes (Sun et al., IEEE JBHI 2022).

    z [B, L] (+ conditions) --G^A--> hypercube h [B, S/4, S/4, S/4, C]  (C = 64: the "64⁴" at S=256)
      G^L(h)                    -> low-res volume [B, S/4, S/4, S/4, 1]
      G^H(h[:, k:k + S/32])     -> sub-volume     [B, S/8, S, S, 1]     (training: one depth slab)
      G^H(h)                    -> full volume    [B, S, S, S, 1]       (inference)
    D(slab, low, slab_start)    -> (logit_H + logit_L) / 2 (+ averaged class / regression heads)
    E^H(slab) -> hypercube slab;  E^G(hypercube) -> z

Faithful to the reference (github batmanlab/HA-GAN, models/Model_HA_GAN_{256,128}.py) at S = 256
and 128: same layers, widths and parameter counts. For S = 64 and 32 the networks are derived as
the reference derives 128 from 256: G^A upsamples log2(S/16) times; D^H drops its first stride-2
layers (one per halving of S below 256, the first remaining layer taking 1 channel) so its map still
ends at 1×1×1; D^L and E^G keep the last log2(S/16) layers of their stride-2 ladders.

Fixed relative to the reference:
  * the generated slab starts exactly at the real slab's first slice: slab starts are multiples of
    4 (one hypercube slice), where the reference takes the real crop at `crop_idx` but the fake one
    at 4·⌊crop_idx/4⌋, up to 3 slices apart;
  * no hard-coded channel counts (every width is a config field), batch size 1 works (no
    `.squeeze()` that drops the batch axis), CPU works;
  * continuous conditions (our extension): concatenated to z like the one-hot classes, predicted by
    a regression head on D^H and D^L (averaged like the class logits).
Arrays are channels-last; the reference's (C, D, H, W) becomes (D, H, W, C).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsyn.errors import ConfigError
from jaxsyn.nn.layers import ConvGNReLU, GroupNorm, UpConv3d, conv3d, sn
from jaxsyn.nn.remat import POLICIES, per_stage, policy, remat


@dataclasses.dataclass(frozen=True, kw_only=True)
class HAGANConfig:
    """Model and optimiser settings; defaults are the reference's (train.py, Model_HA_GAN_256.py)."""

    size: int = 256  # S, final volume side; the reference supports 128 and 256
    latent_dim: int = 1024  # train.py --latent-dim
    num_classes: int = 0  # one-hot class conditions (reference's HA_GAN_cond, --num-class)
    num_continuous: int = 0  # continuous conditions, our extension
    trunk_channels: tuple[int, ...] = (512, 512, 256, 128, 64)  # G^A tp_conv1..5; last = hypercube
    low_channels: tuple[int, ...] = (32, 16)  # G^L (Sub_Generator, channel=16)
    high_channels: int = 32  # G^H conv between its two upsamplings
    dh_channels: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 128)  # D^H conv1..conv7 at S=256
    dh_hidden: int = 64  # D^H fc1
    dl_channels: tuple[int, ...] = (32, 64, 128, 256)  # D^L ladder at S=256 (Sub_Discriminator)
    eh_channels: tuple[int, ...] = (32, 32, 64)  # E^H (Encoder, channel=64)
    eg_channels: tuple[int, ...] = (32, 64, 128, 256)  # E^G ladder at S=256 (Sub_Encoder)
    groups: int = 8  # GroupNorm(8) everywhere
    # Upsample+conv as 8 phase convolutions (jaxsyn.nn.layers.UpConv3d): 3.4× fewer FLOPs in G,
    # same function up to float rounding. False: the reference's upsample-then-conv.
    fused_upsample: bool = True
    # How E^H encodes a whole volume for E^G (`encode_high`). True (the reference's train.py E^G
    # step): each of the 8 non-overlapping S/8-slice slabs on its own, concatenated along depth.
    # False: one pass over the whole volume. E^H is fully convolutional, but the two differ
    # everywhere: GroupNorm takes its statistics over the extent it is given and each slab is
    # zero-padded at its own edges. Train and encode with the same setting.
    encode_slabs: bool = True
    # Ours, off by default (the reference has none): D^L sees the batch's mean per-feature
    # standard deviation as one more channel before its last convolution (prog-GAN's minibatch
    # stddev, over this device's share of the batch), so a generator that makes one image per
    # condition is told apart from a varied real batch.
    minibatch_std: bool = False
    # Full-volume generation (jaxsyn.infer.hagan). False (the reference's inference): G^H over
    # the whole hypercube, GroupNorm statistics of the whole volume. True (ours): the 8 depth
    # slabs one by one, each normalised over itself and zero-padded at its own edges: exactly
    # the forward whose output D judged in training (G^H never sees whole-volume statistics
    # there), at the cost of possible seams between slabs.
    generate_slabs: bool = False
    dtype: str = "float32"  # compute dtype; "bfloat16" on accelerators
    # Ours (memory, not numbers): activation checkpointing of the generator's stages, one
    # jaxsyn.nn.remat policy ("none", "nothing_saveable", "dots_saveable") for all of them or one
    # per stage: G^A's 5 blocks, G^L, G^H. "none" keeps everything (the default); the others
    # recompute in the backward pass what they do not keep. Same parameters and values.
    remat: str | tuple[str, ...] = "none"
    # optimisation (train.py): Adam betas (0, 0.999), lr G 1e-4, D 4e-4, E^H and E^G 1e-4
    batch_size: int = 4
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    lr_e: float = 1e-4
    beta1: float = 0.0
    beta2: float = 0.999
    lambda_class: float = (
        0.1  # class / regression loss weight on fakes in the G step (--lambda-class)
    )

    def __post_init__(self):
        if not (32 <= self.size <= 256 and self.size & (self.size - 1) == 0):
            raise ConfigError(
                f"HAGANConfig.size is {self.size}; expected a power of two in 32..256"
            )
        if isinstance(self.remat, str) and "," in self.remat:  # --config.remat=a,b,c,d,e,f,g
            object.__setattr__(self, "remat", tuple(r.strip() for r in self.remat.split(",")))
        if self.remat_stages is None:
            raise ConfigError(
                f"HAGANConfig.remat is {self.remat!r}; expected one of {POLICIES} or 7 of them "
                "(G^A's 5 blocks, G^L, G^H)"
            )
        if self.dtype not in ("float32", "bfloat16"):
            raise ConfigError(
                f"HAGANConfig.dtype is {self.dtype!r}; expected 'float32' or 'bfloat16'"
            )
        if len(self.trunk_channels) != 5 or len(self.dh_channels) != 7:
            raise ConfigError("HAGANConfig.trunk_channels needs 5 widths and dh_channels 7")
        if len(self.dl_channels) < self.ladder or len(self.eg_channels) < self.ladder:
            raise ConfigError(
                f"HAGANConfig.dl_channels/eg_channels need {self.ladder} widths at size {self.size}"
            )
        if self.eh_channels[-1] != self.hypercube_channels:
            raise ConfigError(
                f"HAGANConfig.eh_channels ends at {self.eh_channels[-1]}; expected the hypercube width {self.hypercube_channels}"
            )
        widths = (
            *self.trunk_channels,
            *self.low_channels,
            self.high_channels,
            *self.eh_channels,
            *self.eg_channels,
        )
        if any(c % self.groups for c in widths):
            raise ConfigError(
                f"HAGANConfig: every generator/encoder width must divide into {self.groups} groups; got {widths}"
            )

    @property
    def hypercube_channels(self) -> int:
        return self.trunk_channels[-1]

    @property
    def ladder(self) -> int:
        """Stride-2 layers from S/4 down to 4 (D^L, E^G) = upsamplings from 4 to S/4 (G^A)."""
        return int(math.log2(self.size // 16))

    @property
    def slab_depth(self) -> int:
        return self.size // 8  # image slices in a training sub-volume

    @property
    def max_slab_start(self) -> int:
        return self.size - self.slab_depth  # 7S/8, the reference's crop_idx bound

    @property
    def cond_dim(self) -> int:
        return self.num_classes + self.num_continuous

    @property
    def remat_stages(self) -> tuple[str, ...] | None:
        """`remat` as one policy per generator stage (5 trunk blocks, G^L, G^H)."""
        return per_stage(self.remat, 7)

    @property
    def compute_dtype(self):
        return jnp.dtype(self.dtype)

    @classmethod
    def tiny(cls, **overrides) -> HAGANConfig:
        """A 32³ model with widths of 8: trains on a CPU in seconds, for tests and smoke runs."""
        defaults = dict(
            size=32,
            latent_dim=16,
            trunk_channels=(16, 16, 8, 8, 8),
            low_channels=(8, 8),
            high_channels=8,
            dh_channels=(8, 8, 8, 8, 8, 8, 8),
            dh_hidden=8,
            dl_channels=(8, 8, 8, 8),
            eh_channels=(8, 8, 8),
            eg_channels=(8, 8, 8, 8),
            groups=4,  # two channels a group: with one, GroupNorm cancels the conv bias entirely
            batch_size=2,
        )
        return cls(**{**defaults, **overrides})


class Generator(nn.Module):
    """G^A (trunk), G^L (low head) and G^H (high head) in one parameter tree."""

    config: HAGANConfig

    def setup(self):
        c, dt = self.config, self.config.compute_dtype
        self.fc = nn.Dense(64 * c.trunk_channels[0], dtype=dt)  # -> [4, 4, 4, C0]
        # the reference upsamples before blocks 2.. until the hypercube is S/4 on a side
        self.trunk = [
            remat(ConvGNReLU, c.remat_stages[i])(
                w, groups=c.groups, dtype=dt, upsample=1 <= i <= c.ladder, fused=c.fused_upsample
            )
            for i, w in enumerate(c.trunk_channels)
        ]
        self.low = [ConvGNReLU(w, groups=c.groups, dtype=dt) for w in c.low_channels]
        self.low_out = conv3d(1, dtype=dt)
        self.high_conv = UpConv3d(c.high_channels, c.fused_upsample, dt)
        self.high_norm = GroupNorm(c.high_channels, c.groups)
        self.high_out = UpConv3d(1, c.fused_upsample, dt)

    def __call__(self, zc: jax.Array, slab_start: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Training forward: (low [B, S/4³, 1], slab [B, S/8, S, S, 1]) for image slices from
        `slab_start` (a multiple of 4, traced)."""
        h = self.hypercube(zc)
        return self.low_res(h), self.high_res(self.hypercube_slab(h, slab_start))

    def hypercube(self, zc: jax.Array) -> jax.Array:
        """G^A: [B, L + conditions] -> [B, S/4, S/4, S/4, C]."""
        c = self.config
        x = self.fc(zc.astype(c.compute_dtype)).reshape(zc.shape[0], 4, 4, 4, c.trunk_channels[0])
        for block in self.trunk:
            x = block(x)
        return x

    def hypercube_slab(self, h: jax.Array, slab_start: jax.Array) -> jax.Array:
        return jax.lax.dynamic_slice_in_dim(h, slab_start // 4, self.config.size // 32, axis=1)

    def low_res(self, h: jax.Array) -> jax.Array:
        return _rematted(Generator._low_res, self.config.remat_stages[5])(self, h)

    def _low_res(self, h: jax.Array) -> jax.Array:
        for block in self.low:
            h = block(h)
        return jnp.tanh(self.low_out(h)).astype(jnp.float32)

    def high_res(self, h: jax.Array) -> jax.Array:
        """G^H on a hypercube slab or the whole hypercube: 4× larger on every axis."""
        return _rematted(Generator._high_res, self.config.remat_stages[6])(self, h)

    def _high_res(self, h: jax.Array) -> jax.Array:
        a = self.high_pre(h)
        mean, var = self.high_norm.stats(a)
        return self.high_post(a, mean, var)

    def high_pre(self, h: jax.Array) -> jax.Array:
        """G^H up to its GroupNorm: [B, d, n, n, C] -> [B, 2d, 2n, 2n, high_channels]."""
        return self.high_conv(h)

    def high_post(
        self, a: jax.Array, mean: jax.Array, var: jax.Array, rows: jax.Array | None = None
    ) -> jax.Array:
        """G^H from its GroupNorm on, with given statistics: -> [B, 4d, 4n, 4n, 1] in [-1, 1].

        `rows` [2d] (bool) zeroes depth rows that lie outside the volume, so a chunk computed with
        a halo sees the same zero padding as the whole volume does.
        """
        x = nn.relu(self.high_norm.normalize(a, mean, var))
        if rows is not None:
            x = x * rows[None, :, None, None, None].astype(x.dtype)
        return jnp.tanh(self.high_out(x)).astype(jnp.float32)


def _rematted(method, name: str):
    """`method(module, ...)`, rematerialised under the policy `name` unless it is "none"."""
    return method if policy(name) is None else nn.remat(method, policy=policy(name))


class Discriminator(nn.Module):
    """D^H on the slab and D^L on the low-res volume, spectral-normalised, logits averaged."""

    config: HAGANConfig

    @nn.compact
    def __call__(self, slab, low, slab_start, update_stats: bool = True):
        """slab [B, S/8, S, S, 1], low [B, S/4³, 1], slab_start [B] or [] -> (logit [B],
        class logits [B, N], regression [B, M])."""
        c = self.config
        heads = 1 + c.num_classes + c.num_continuous
        lrelu = lambda x: nn.leaky_relu(x, 0.2)  # noqa: E731
        dt = c.compute_dtype
        # D^H: the reference's 256 layout; smaller S drops leading stride-2 layers.
        specs = (
            [(4, 2, 1)] * 3
            + [((2, 4, 4), 2, (0, 1, 1))] * 2
            + [((1, 4, 4), (1, 2, 2), (0, 1, 1)), ((1, 4, 4), 1, 0)]
        )
        drop = int(math.log2(256 // c.size))
        x = slab.astype(dt)
        for i in range(drop, 7):
            k, s, p = specs[i]
            x = sn(conv3d(c.dh_channels[i], k, s, p, dt, name=f"dh_conv{i + 1}"))(
                x, update_stats=update_stats
            )
            x = lrelu(x)  # the reference applies LeakyReLU after conv7 too
        x = x.reshape(x.shape[0], -1)  # [B, dh_channels[-1]]: the map is 1×1×1
        position = jnp.broadcast_to(slab_start, (x.shape[0],)).astype(x.dtype) / c.max_slab_start
        x = jnp.concatenate([x, position[:, None]], axis=1)
        x = lrelu(sn(nn.Dense(c.dh_hidden, dtype=dt, name="dh_fc1"))(x, update_stats=update_stats))
        out_h = [sn(nn.Dense(1, dtype=dt, name="dh_fc2"))(x, update_stats=update_stats)]
        if c.num_classes:
            out_h.append(
                sn(nn.Dense(c.num_classes, dtype=dt, name="dh_class"))(x, update_stats=update_stats)
            )
        if c.num_continuous:
            out_h.append(
                sn(nn.Dense(c.num_continuous, dtype=dt, name="dh_reg"))(
                    x, update_stats=update_stats
                )
            )
        out_h = jnp.concatenate(out_h, axis=1)
        # D^L: stride-2 ladder from S/4 to 4, then a 4³ valid conv to 1 + N + M outputs.
        y = low.astype(dt)
        for i, w in enumerate(c.dl_channels[-c.ladder :]):
            y = lrelu(
                sn(conv3d(w, 4, 2, 1, dt, name=f"dl_conv{i + 1}"))(y, update_stats=update_stats)
            )
        if c.minibatch_std:
            sd = jnp.sqrt(jnp.var(y.astype(jnp.float32), axis=0) + 1e-8).mean()
            y = jnp.concatenate([y, jnp.broadcast_to(sd.astype(y.dtype), (*y.shape[:-1], 1))], -1)
        y = sn(conv3d(heads, 4, 1, 0, dt, name="dl_out"))(y, update_stats=update_stats)
        out = ((out_h + y.reshape(y.shape[0], heads)) / 2).astype(jnp.float32)
        n = c.num_classes
        return out[:, 0], out[:, 1 : 1 + n], out[:, 1 + n :]


class EncoderHigh(nn.Module):
    """E^H: image slab [B, d, S, S, 1] -> hypercube slab [B, d/4, S/4, S/4, C] (inverts G^H)."""

    config: HAGANConfig

    @nn.compact
    def __call__(self, x):
        c, dt = self.config, self.config.compute_dtype
        w1, w2, w3 = c.eh_channels
        x = ConvGNReLU(w1, 4, 2, 1, c.groups, dt)(x.astype(dt))
        x = ConvGNReLU(w2, 3, 1, 1, c.groups, dt)(x)
        return ConvGNReLU(w3, 4, 2, 1, c.groups, dt)(x)


class EncoderGlobal(nn.Module):
    """E^G: hypercube [B, S/4³, C] -> z [B, latent_dim]."""

    config: HAGANConfig

    @nn.compact
    def __call__(self, h):
        c, dt = self.config, self.config.compute_dtype
        x = h.astype(dt)
        for w in c.eg_channels[-c.ladder :]:
            x = ConvGNReLU(w, 4, 2, 1, c.groups, dt)(x)
        x = conv3d(c.latent_dim, 4, 1, 0, dt)(x)  # 4³ -> 1³
        return x.reshape(x.shape[0], c.latent_dim).astype(jnp.float32)


def networks(config: HAGANConfig) -> dict[str, nn.Module]:
    return {
        "g": Generator(config),
        "d": Discriminator(config),
        "eh": EncoderHigh(config),
        "eg": EncoderGlobal(config),
    }


def example_inputs(config: HAGANConfig, batch: int = 1) -> dict[str, tuple]:
    s, f = config.size, jnp.float32
    zc = jnp.zeros((batch, config.latent_dim + config.cond_dim), f)
    slab = jnp.zeros((batch, config.slab_depth, s, s, 1), f)
    low = jnp.zeros((batch, s // 4, s // 4, s // 4, 1), f)
    return {
        "g": (zc, jnp.int32(0)),
        "d": (slab, low, jnp.zeros((batch,), jnp.int32)),
        "eh": (slab,),
        "eg": (jnp.zeros((batch, s // 4, s // 4, s // 4, config.hypercube_channels), f),),
    }


@functools.partial(jax.jit, static_argnames="config")
def init(key: jax.Array, config: HAGANConfig) -> dict[str, dict]:
    """Variables of every network: {"g"|"d"|"eh"|"eg": {"params": ..., ["spectral": ...]}}.

    PyTorch's default initialisers are not reproduced (the reference sets none of its own); Flax's
    LeCun-normal kernels and zero biases are used. Compiled once per config (run eagerly, every
    operation would compile on its own: twice the time at 32³). Shapes without allocating:
    `jax.eval_shape(functools.partial(init, config=config), key)`.
    """
    nets, inputs = networks(config), example_inputs(config)
    keys = dict(zip(nets, jax.random.split(key, len(nets)), strict=True))
    return {name: dict(net.init(keys[name], *inputs[name])) for name, net in nets.items()}


def conditions_vector(
    config: HAGANConfig, classes=None, continuous=None, batch: int | None = None
) -> jax.Array:
    """[B, N + M]: one-hot `classes` [B] int and `continuous` [B, M] float, as fed beside z."""
    parts = []
    if config.num_classes:
        if classes is None:
            raise ConfigError(
                f"this HA-GAN has {config.num_classes} classes; expected class labels"
            )
        parts.append(jax.nn.one_hot(jnp.asarray(classes), config.num_classes, dtype=jnp.float32))
    if config.num_continuous:
        if continuous is None:
            raise ConfigError(
                f"this HA-GAN has {config.num_continuous} continuous conditions; expected their values"
            )
        parts.append(jnp.asarray(continuous, jnp.float32).reshape(-1, config.num_continuous))
    if not parts:
        return jnp.zeros((batch or 1, 0), jnp.float32)
    return jnp.concatenate(parts, axis=1)


def generate(
    params: dict,
    key: jax.Array,
    config: HAGANConfig,
    conditions: jax.Array | None = None,
    n: int = 1,
):
    """One-pass generation: (full [n, S, S, S, 1], low [n, S/4³, 1]) in [-1, 1].

    `params` is the generator's parameter tree (`variables["g"]["params"]`); `conditions` [n, N+M]
    from `conditions_vector`. For S = 256 on small memory use `jaxsyn.infer.hagan`'s chunked path.
    """
    z = jax.random.normal(key, (n, config.latent_dim))
    zc = (
        z
        if conditions is None
        else jnp.concatenate([z, jnp.broadcast_to(conditions, (n, config.cond_dim))], axis=1)
    )
    g = Generator(config)
    h = g.apply({"params": params}, zc, method=Generator.hypercube)
    full = g.apply({"params": params}, h, method=Generator.high_res)
    low = g.apply({"params": params}, h, method=Generator.low_res)
    return full, low


@functools.partial(jax.jit, static_argnames="config")
def encode_high(eh_variables: dict, volume: jax.Array, config: HAGANConfig) -> jax.Array:
    """E^H's hypercube [B, S/4, S/4, S/4, C] of whole volumes [B, S, S, S, 1].

    `config.encode_slabs` (the default, as the reference's train.py E^G step): the 8 depth slabs
    [i, i + S/8) are encoded each on its own — E^H's training input — and concatenated along
    depth; otherwise one pass over the whole volume (see `HAGANConfig.encode_slabs`).
    """
    if not config.encode_slabs:
        return EncoderHigh(config).apply(eh_variables, volume)
    b, s = volume.shape[0], volume.shape[1]
    slabs = volume.reshape(b * 8, s // 8, *volume.shape[2:])  # depth-major: slab k of example i
    h = EncoderHigh(config).apply(eh_variables, slabs)  # [B·8, S/32, S/4, S/4, C]
    return h.reshape(b, 8 * h.shape[1], *h.shape[2:])


def encode(variables: dict, volume: jax.Array, config: HAGANConfig) -> jax.Array:
    """z [B, L] of whole volumes [B, S, S, S, 1] in [-1, 1]: E^H (`encode_high`, slab by slab
    unless `config.encode_slabs` is off), then E^G. `variables` is `init`'s dict."""
    return EncoderGlobal(config).apply(
        variables["eg"], encode_high(variables["eh"], volume, config)
    )


def param_count(tree) -> int:
    return sum(x.size for x in jax.tree.leaves(tree))
