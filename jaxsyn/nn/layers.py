"""3D building blocks: convolutions, nearest upsampling, GroupNorm with external statistics, SN.

Arrays are channels-last, `[B, D, H, W, C]`. Parameters are float32; `dtype` is the compute
dtype (bfloat16 on accelerators); normalisation statistics are always computed in float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsyn import kernels
from jaxsyn.nn.dense import add_bias

Padding = str | Sequence[tuple[int, int]]


def triple(k: int | Sequence[int]) -> tuple[int, int, int]:
    return (k, k, k) if isinstance(k, int) else tuple(k)


def pads(p: int | Sequence[int]) -> tuple[tuple[int, int], ...]:
    """PyTorch-style symmetric padding per spatial axis -> lax padding pairs."""
    return tuple((q, q) for q in triple(p))


class Conv(nn.Module):
    """`flax.linen.Conv` for channels-last 2D/3D inputs (same parameter names, shapes and
    initialisers: a tree saved from `nn.Conv` loads), through `kernels.conv_general_dilated`
    (oneDNN for 3D on CPU when built). The convolution runs in `dtype`; the bias is added in
    float32 (`add_bias`), so its gradient sums the cotangent in float32 under bfloat16."""

    features: int
    kernel_size: Sequence[int]
    strides: Sequence[int] | None = None
    padding: Padding = "SAME"
    use_bias: bool = True
    dtype: jnp.dtype = jnp.float32
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = tuple(self.kernel_size)
        shape = (*k, x.shape[-1], self.features)
        kernel = self.param("kernel", self.kernel_init, shape)
        numbers = ("NDHWC", "DHWIO", "NDHWC") if len(k) == 3 else ("NHWC", "HWIO", "NHWC")
        y = kernels.conv_general_dilated(
            x.astype(self.dtype),
            kernel.astype(self.dtype),
            tuple(self.strides or (1,) * len(k)),
            self.padding,
            dimension_numbers=numbers,
        )
        if not self.use_bias:
            return y
        return add_bias(y, self.param("bias", self.bias_init, (self.features,)))


def conv3d(features: int, kernel=3, stride=1, padding=1, dtype=jnp.float32, name=None) -> Conv:
    """`Conv` with PyTorch's (kernel, stride, padding) conventions and a bias."""
    return Conv(
        features,
        triple(kernel),
        strides=triple(stride),
        padding=pads(padding),
        dtype=dtype,
        name=name,
    )


def upsample2(x: jax.Array) -> jax.Array:
    """Nearest-neighbour ×2 on D, H, W (PyTorch `F.interpolate(scale_factor=2)`)."""
    for axis in (1, 2, 3):
        x = jnp.repeat(x, 2, axis=axis)
    return x


class GroupNorm(nn.Module):
    """GroupNorm whose statistics can come from outside (for chunked whole-volume inference).

    `stats(x)` returns per-example, per-group (mean, var) over D, H, W and the group's channels;
    `normalize(x, mean, var)` applies them with the learned scale and bias. `__call__` does both,
    matching `torch.nn.GroupNorm` (biased variance, eps inside the square root).
    """

    features: int
    groups: int = 8
    epsilon: float = 1e-5  # torch.nn.GroupNorm default

    def setup(self):
        if self.features % self.groups:
            raise ValueError(
                f"GroupNorm: {self.features} channels do not split into {self.groups} groups"
            )
        self.scale = self.param("scale", nn.initializers.ones, (self.features,))
        self.bias = self.param("bias", nn.initializers.zeros, (self.features,))

    def __call__(self, x: jax.Array) -> jax.Array:
        mean, var = self.stats(x)
        return self.normalize(x, mean, var)

    def stats(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        return group_stats(x, self.groups)

    def normalize(self, x: jax.Array, mean: jax.Array, var: jax.Array) -> jax.Array:
        g = self._grouped(x)
        inv = jax.lax.rsqrt(var + self.epsilon)[:, None, None, None, :, None]
        y = ((g - mean[:, None, None, None, :, None]) * inv).reshape(x.shape)
        return (y * self.scale + self.bias).astype(x.dtype)

    def _grouped(self, x: jax.Array) -> jax.Array:
        return _grouped(x, self.groups)


def _grouped(x: jax.Array, groups: int) -> jax.Array:
    return x.astype(jnp.float32).reshape(*x.shape[:-1], groups, x.shape[-1] // groups)


def group_stats(x: jax.Array, groups: int) -> tuple[jax.Array, jax.Array]:
    """Per-example, per-group (mean, biased var) of `x` [B, D, H, W, C] in float32: [B, groups]."""
    g = _grouped(x, groups)
    mean = g.mean(axis=(1, 2, 3, 5))
    var = jnp.square(g - mean[:, None, None, None, :, None]).mean(axis=(1, 2, 3, 5))
    return mean, var


class ConvGNReLU(nn.Module):
    """[nearest ×2 upsampling ->] conv3d -> GroupNorm -> ReLU: every HA-GAN generator and encoder
    block. With `upsample`, the convolution is k3 p1 and runs as `UpConv3d` (`fused` phases)."""

    features: int
    kernel: int | Sequence[int] = 3
    stride: int | Sequence[int] = 1
    padding: int | Sequence[int] = 1
    groups: int = 8
    dtype: jnp.dtype = jnp.float32
    upsample: bool = False
    fused: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.upsample:
            x = UpConv3d(self.features, self.fused, self.dtype)(x)
        else:
            x = conv3d(self.features, self.kernel, self.stride, self.padding, self.dtype)(x)
        return nn.relu(GroupNorm(self.features, self.groups)(x))


def sn(layer: nn.Module) -> nn.SpectralNorm:
    """Spectral normalisation, one power iteration per call; `u` lives in the 'spectral' collection.

    The weight is flattened to [fan_in, out] (σ is the same as PyTorch's [out, fan_in] view);
    biases are not normalised, as in BigGAN-style SN.
    """
    return nn.SpectralNorm(layer, n_steps=1, epsilon=1e-12, collection_name="spectral")


# Per axis, a 3-tap kernel applied to a nearest-×2-upsampled signal equals 2-tap kernels on the
# original: output 2i sees x[i-1], x[i], x[i] (taps w0, w1 + w2 on x[i-1], x[i]) and output 2i+1
# sees x[i], x[i], x[i+1] (taps w0 + w1, w2 on x[i], x[i+1]).
_PHASE_TAPS = jnp.array(
    [[[1, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]], jnp.float32
)  # [phase, 2, 3]


class UpConv3d(nn.Module):
    """Nearest ×2 upsampling then a k3 p1 convolution: `conv3d(upsample2(x))`, with its params.

    `fused=True` never builds the upsampled tensor: each of the 8 output phases (odd/even on
    D, H, W) is a 2³ convolution of `x` with merged taps, 8 instead of 27 multiply-adds per
    output and input channel (3.4× fewer FLOPs, 8× less activation memory). Equal to the
    unfused path up to float rounding.
    """

    features: int
    fused: bool = True
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (3, 3, 3, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape).astype(self.dtype)
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        x = x.astype(self.dtype)
        if not self.fused:
            return add_bias(kernels.conv3d(upsample2(x), kernel, 1, 1), bias)
        taps = _PHASE_TAPS.astype(self.dtype)
        padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (1, 1), (0, 0)))
        d, h, w = x.shape[1:4]
        phases = []
        for a in (0, 1):
            for b in (0, 1):
                for c in (0, 1):
                    k = jnp.einsum("xd,ye,zf,defio->xyzio", taps[a], taps[b], taps[c], kernel)
                    window = padded[:, a : a + d + 1, b : b + h + 1, c : c + w + 1]
                    phases.append(kernels.conv3d(window, k, 1, "VALID"))
        y = jnp.stack(phases).reshape(2, 2, 2, *phases[0].shape)  # [a, b, c, B, D, H, W, C]
        y = y.transpose(3, 4, 0, 5, 1, 6, 2, 7).reshape(
            x.shape[0], 2 * d, 2 * h, 2 * w, self.features
        )
        return add_bias(y, bias)
