"""AC-GAN of pGAN (Sun, Plawinski et al. 2021): class-conditional 2D images, condition morphing.

`jaxsyn train acgan --data phantom:vertebra:512 --out runs/acgan --steps 2000`

Generator: [one-hot class (K); z ~ N(0, 1)^latent] as a 1x1 image -> a 4x4 transposed
convolution to 4x4 (stride 1, no padding), then 4x4 transposed convolutions of stride 2 that double
the size up to `size`; widths 8n -> 4n -> 2n -> n -> channels at size 64 (paper section 6.2),
ReLU between, tanh out, no bias. Optional BatchNorm after each hidden convolution (reference
fixed_architecture.py: optional, off by default), with statistics over the global batch; its
scale starts at 1 where the reference draws it from N(1, 0.02).
Discriminator: 4x4 convolutions of stride 2 halving the size down to 4x4 (widths n -> 2n -> 4n
-> 8n at size 64), then a 4x4 valid convolution to n features at 1x1, LeakyReLU 0.2 after every
convolution; two dense heads on those n features: a real/fake logit and K class logits. As in the
reference, the first and the last convolution have no bias and the middle ones have one (PyTorch's
default Conv2d bias and its U(+-1/sqrt(fan_in)) initialisation). The reference's optional
discriminator BatchNorm (off by default) is not implemented.

Both networks generalise to any power-of-two size >= 8: one stride-2 layer per doubling.
Morphing (paper section 6.4): with z fixed, c^t = ((n - t)/n) c_k + (t/n) c_k', t = 0..n.

No optimiser and no data pipeline here: the train step lives in `jaxsyn.train.acgan`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsyn.errors import ConfigError
from jaxsyn.nn.dense import BatchStats, TorchDense, torch_uniform
from jaxsyn.nn.layers import Conv
from jaxsyn.nn.remat import checkpointed, field_error, per_stage

# Reference fixed_architecture.py: conv weights N(0, 0.02) (the DCGAN initialisation).
CONV_INIT = nn.initializers.normal(0.02)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ACGANConfig:
    """`jaxsyn train acgan --data phantom:vertebra:512 --out runs/acgan --steps 2000`

    Defaults from Sun et al. 2021 (section 6.2) and the reference pGAN code
    (Train/fixed_architecture.py, training_parser.py).
    """

    num_classes: int = 3  # section 6.2: the region, cervical / thoracic / lumbar, one-hot
    latent_dim: int = 100  # section 6.2: 100-d standard Gaussian noise
    channels: int = 9  # section 6.2: 9 sagittal slices of a vertebral unit as channels
    width: int = 64  # n; training_parser.py net_size 64 (the released weights used 128)
    size: int = 64  # section 6.2: slices rescaled to 64 x 64
    batch_norm: bool = False  # fixed_architecture.py: generator BatchNorm optional, off by default
    bn_momentum: float = 0.1  # PyTorch BatchNorm2d's running-average momentum (the reference's)
    dtype: str = "float32"  # compute dtype of the convolutions; params stay float32
    # Ours (memory, not numbers): activation checkpointing, one jaxsyn.nn.remat policy ("none",
    # "nothing_saveable", "dots_saveable") for every layer or one per resolution 4, 8, ..., size
    # (G's layer that makes it and D's layer that reads it). Same parameters and values.
    remat: str | tuple[str, ...] = "none"

    def __post_init__(self):
        for name in ("num_classes", "latent_dim", "channels", "width"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ACGANConfig.{name} is {getattr(self, name)}; expected >= 1")
        if self.num_classes < 2:
            raise ConfigError(f"ACGANConfig.num_classes is {self.num_classes}; expected >= 2")
        if self.size < 8 or self.size & (self.size - 1):
            raise ConfigError(
                f"ACGANConfig.size is {self.size}; expected a power of two >= 8 (4 -> size by doubling)"
            )
        if not 0 < self.bn_momentum <= 1:
            raise ConfigError(f"ACGANConfig.bn_momentum is {self.bn_momentum}; expected in (0, 1]")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(
                f"ACGANConfig.dtype is {self.dtype!r}; expected float32, bfloat16 or float16"
            )
        if error := field_error(self, self.doublings + 1, f"one per resolution 4..{self.size}"):
            raise ConfigError(error)

    @classmethod
    def tiny(cls, **overrides) -> ACGANConfig:
        """The preset every test and smoke run uses: 16 x 16, n = 8, BatchNorm on (exercised)."""
        fields = dict(latent_dim=16, width=8, size=16, batch_norm=True)
        return cls(**{**fields, **overrides})

    @property
    def doublings(self) -> int:
        """Stride-2 layers of each network: 4 -> size."""
        return self.size.bit_length() - 3  # log2(size / 4)

    @property
    def remat_blocks(self) -> tuple[str, ...] | None:
        """`remat` as one policy per resolution 4, 8, ..., size (None: invalid)."""
        return per_stage(self.remat, self.doublings + 1)


def _bn2d(axis_name: str | None, momentum: float, use_running_average: bool, name: str):
    """BatchNorm2d over [B, H, W, C]: `BatchStats` on the [B * H * W, C] rows (equal shares per
    device, so the pmean of per-device means is the global mean; n = B * H * W as PyTorch's)."""
    bn = BatchStats(
        axis_name=axis_name, momentum=momentum, use_running_average=use_running_average, name=name
    )

    def apply(x):
        return bn(x.reshape(-1, x.shape[-1])).reshape(x.shape)

    return apply


class Generator(nn.Module):
    config: ACGANConfig
    axis_name: str | None = None
    use_running_average: bool = False  # eval mode: normalise with the running statistics

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:
        """inputs [B, K + latent] = [condition; z] -> images [B, size, size, channels] in [-1, 1]."""
        c = self.config
        dtype = jnp.dtype(c.dtype)
        h = inputs.astype(dtype)[:, None, None, :]  # a 1x1 image with K + latent channels
        for i in range(c.doublings + 1):  # layer i makes 4 * 2^i
            h = checkpointed(self._layer(i), c.remat_blocks[i])(self, h)
        return jnp.tanh(h.astype(jnp.float32))

    def _layer(self, i: int):
        """Layer i as `(module, h) -> h`: the transposed convolution to 4 * 2^i and, below the
        output, BatchNorm (when on) and ReLU. Named as flax names them inline (ConvTranspose_i,
        BatchStats_i), the tree of checkpoints saved before remat existed."""
        c, k = self.config, self.config.doublings
        # PyTorch padding p of a 4x4 transposed conv is lax padding 4 - 1 - p on each side.
        pad = 3 if i == 0 else 2  # first layer: p = 0 (1 -> 4); then p = 1 (doubling)
        stride = 1 if i == 0 else 2
        features = c.width * 2 ** (k - 1 - i) if i < k else c.channels

        def layer(module, h):
            h = nn.ConvTranspose(
                features, (4, 4), strides=(stride, stride), padding=((pad, pad), (pad, pad)),
                use_bias=False, kernel_init=CONV_INIT, dtype=jnp.dtype(c.dtype),
                name=f"ConvTranspose_{i}",
            )(h)  # fmt: skip
            if i == k:
                return h
            if c.batch_norm:
                bn = _bn2d(
                    module.axis_name, c.bn_momentum, module.use_running_average, f"BatchStats_{i}"
                )
                h = bn(h)
            return nn.relu(h)

        return layer


class Discriminator(nn.Module):
    config: ACGANConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x [B, size, size, channels] -> (real/fake logits [B], class logits [B, K]), float32."""
        c = self.config
        dtype = jnp.dtype(c.dtype)
        h = x.astype(dtype)
        for i in range(c.doublings + 1):  # layer i reads size / 2^i
            h = checkpointed(self._layer(i), c.remat_blocks[c.doublings - i])(self, h)
        h = h.reshape(h.shape[0], -1).astype(jnp.float32)
        # fc_d and fc_cr of the reference (nn.Linear, PyTorch's initialisation); the sigmoid and
        # softmax it applies live in the losses here, as logits.
        real = TorchDense(1, name="real_head")(h)[:, 0]
        classes = TorchDense(c.num_classes, name="class_head")(h)
        return real, classes

    def _layer(self, i: int):
        """Layer i as `(module, h) -> h`, LeakyReLU 0.2 after its convolution: stride 2,
        padding 1 (halving) below the last; the last (section 6.2) stride 1, no padding: 4 x 4 ->
        1 x 1, n features. Named Conv_i, as flax names them inline (the tree before remat)."""
        c, dtype = self.config, jnp.dtype(self.config.dtype)

        def layer(module, h):
            if i == c.doublings:
                conv = Conv(
                    c.width, (4, 4), padding="VALID", use_bias=False, kernel_init=CONV_INIT,
                    dtype=dtype, name=f"Conv_{i}",
                )  # fmt: skip
            else:  # the first has no bias, the middle ones PyTorch's default bias (initialised
                # U(+-1/sqrt(fan_in)); the reference's N(0, 0.02) init touches weights only)
                conv = Conv(  # flax's Conv params; the bias added in float32 (nn.layers.Conv)
                    c.width * 2**i, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)),
                    use_bias=i > 0, kernel_init=CONV_INIT,
                    bias_init=torch_uniform(16 * h.shape[-1]), dtype=dtype, name=f"Conv_{i}",
                )  # fmt: skip
            return nn.leaky_relu(conv(h), 0.2)

        return layer


def generator_input(conditions: jax.Array, z: jax.Array) -> jax.Array:
    """[condition; z]: the condition first, as the reference concatenates them. [B, K + latent]."""
    return jnp.concatenate([conditions.astype(jnp.float32), z.astype(jnp.float32)], axis=-1)


def init(key: jax.Array, config: ACGANConfig) -> dict[str, Any]:
    """Parameters {"g": ..., "d": ...} as plain pytrees (running statistics: `init_stats`)."""
    kg, kd = jax.random.split(key)
    inputs = jnp.zeros((2, config.num_classes + config.latent_dim))  # BN needs a batch
    x = jnp.zeros((2, config.size, config.size, config.channels))
    return {
        "g": Generator(config).init(kg, inputs)["params"],
        "d": Discriminator(config).init(kd, x)["params"],
    }


def init_stats(config: ACGANConfig) -> Any:
    """The generator's running BatchNorm statistics before training (means 0, variances 1);
    an empty dict when `batch_norm` is off."""
    if not config.batch_norm:
        return {}
    inputs = jnp.zeros((2, config.num_classes + config.latent_dim))
    return Generator(config).init(jax.random.key(0), inputs)["batch_stats"]


def apply_generator(
    params: Any,
    inputs: jax.Array,
    config: ACGANConfig,
    axis_name: str | None = None,
    *,
    stats: Any = None,
    update: bool = False,
) -> jax.Array | tuple[jax.Array, Any]:
    """Images [B, size, size, channels] from inputs [B, K + latent].

    With `update`: training mode, BatchNorm with this (global) batch's statistics; returns
    (images, updated running `stats`). Without: eval mode, BatchNorm with the running `stats`
    (each image independent of the rest of the batch). Without BatchNorm `stats` is ignored.
    """
    if not config.batch_norm:
        out = Generator(config).apply({"params": params}, inputs)
        return (out, stats) if update else out
    if not stats:
        raise ConfigError(
            "this generator has BatchNorm (ACGANConfig.batch_norm); expected its running "
            "statistics `stats` (from training or `init_stats`), got none"
        )
    variables = {"params": params, "batch_stats": stats}
    if update:
        out, new = Generator(config, axis_name).apply(variables, inputs, mutable=["batch_stats"])
        return out, new["batch_stats"]
    return Generator(config, axis_name, use_running_average=True).apply(variables, inputs)


def apply_discriminator(
    params: Any, x: jax.Array, config: ACGANConfig
) -> tuple[jax.Array, jax.Array]:
    """x [B, size, size, channels] -> (real/fake logits [B], class logits [B, K])."""
    return Discriminator(config).apply({"params": params}, x)


def as_conditions(conditions: jax.Array, config: ACGANConfig) -> jax.Array:
    """Class indices int [B] -> one-hot [B, K]; condition vectors float [B, K] pass through."""
    conditions = jnp.asarray(conditions)
    if conditions.ndim == 1 and jnp.issubdtype(conditions.dtype, jnp.integer):
        return jax.nn.one_hot(conditions, config.num_classes)
    if conditions.ndim != 2 or conditions.shape[1] != config.num_classes:
        raise ConfigError(
            f"conditions of shape {conditions.shape} and dtype {conditions.dtype}; expected class "
            f"indices int [B] or condition vectors [B, {config.num_classes}]"
        )
    return conditions.astype(jnp.float32)


def latents(key: jax.Array, n: int, config: ACGANConfig) -> jax.Array:
    """z [n, latent] with z_i drawn from fold_in(key, i): example i's noise does not depend on n."""
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n))
    return jax.vmap(lambda k: jax.random.normal(k, (config.latent_dim,)))(keys)


@functools.partial(jax.jit, static_argnames=("config",))
def _generate(params, z, conditions, stats, config):
    return apply_generator(params, generator_input(conditions, z), config, stats=stats)


def generate(
    params: Any,
    key: jax.Array,
    conditions: jax.Array,
    config: ACGANConfig,
    stats: Any = None,
    z: jax.Array | None = None,
) -> jax.Array:
    """Images [B, size, size, channels] in [-1, 1] from generator `params` (the "g" tree).

    `conditions`: class indices int [B] or condition vectors float [B, K] (one-hot, or any mix,
    as morphing uses). Image i's z comes from fold_in(key, i), so it is the same whatever B, or
    is row i of `z` [B, latent_dim] when given.
    `stats`: the running BatchNorm statistics when the generator has BatchNorm (eval mode).
    """
    conditions = as_conditions(conditions, config)
    z = latents(key, conditions.shape[0], config) if z is None else jnp.asarray(z)
    return _generate(params, z, conditions, stats, config)


def morph_conditions(config: ACGANConfig, from_class: int, to_class: int, frames: int) -> jax.Array:
    """c^t = ((n - t)/n) c_k + (t/n) c_k' for t = 0..n (paper section 6.4): [n + 1, K]."""
    for name, k in (("from_class", from_class), ("to_class", to_class)):
        if not 0 <= k < config.num_classes:
            raise ConfigError(f"{name} is {k}; expected a class index in [0, {config.num_classes})")
    if frames < 1:
        raise ConfigError(f"frames is {frames}; expected >= 1 (the number of steps n)")
    t = jnp.arange(frames + 1, dtype=jnp.float32)[:, None] / frames
    eye = jnp.eye(config.num_classes)
    return (1 - t) * eye[from_class] + t * eye[to_class]


def morph(
    params: Any,
    key: jax.Array,
    config: ACGANConfig,
    from_class: int,
    to_class: int,
    frames: int,
    stats: Any = None,
) -> jax.Array:
    """Images [frames + 1, size, size, channels]: one z (that of `generate`'s first image with the
    same key), the condition moved from class `from_class` to `to_class` in `frames` steps.

    Frame 0 equals `generate(params, key, [from_class], ...)` and the last frame
    `generate(params, key, [to_class], ...)`.
    """
    conditions = morph_conditions(config, from_class, to_class, frames)
    z = jnp.broadcast_to(latents(key, 1, config), (frames + 1, config.latent_dim))
    return _generate(params, z, conditions, stats, config)
