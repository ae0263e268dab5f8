"""Fully connected building blocks: batch statistics across devices, PyTorch-initialised Dense.

Used by the table models (CTGAN) and the toy GAN. Parameters float32; statistics float32.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp


class BatchStats(nn.Module):
    """Normalise features with the batch mean and variance, then a learned scale and bias.

    With `axis_name` the statistics are over the global batch: every device holds an equal share,
    so the `pmean` of per-device means is the global mean. Two passes (mean, then the mean squared
    deviation) rather than E[x^2] - E[x]^2, which cancels badly in float32.

    With `momentum`, running averages are kept in the "batch_stats" collection as PyTorch's
    BatchNorm1d keeps them (r <- (1 - momentum) r + momentum s, the variance unbiased), updated
    whenever that collection is mutable, and `use_running_average` normalises with them instead
    of the batch's (eval mode). Without `momentum` there is no state at all.
    """

    axis_name: str | None = None
    eps: float = 1e-5
    momentum: float | None = None  # PyTorch BatchNorm1d: 0.1
    use_running_average: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, F] -> [B, F]
        x32 = x.astype(jnp.float32)  # statistics in float32 whatever the compute dtype
        features = x.shape[-1]
        if self.momentum is not None:
            ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
            ra_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
        if self.use_running_average:
            if self.momentum is None:
                raise ValueError("use_running_average needs running statistics (momentum)")
            mean, var = ra_mean.value, ra_var.value
        else:
            mean = self._mean(x32)
            var = self._mean(jnp.square(x32 - mean))
            if self.momentum is not None and self.is_mutable_collection("batch_stats"):
                n = x.shape[0] * (1 if self.axis_name is None else jax.lax.psum(1, self.axis_name))
                unbiased = var * n / max(n - 1, 1) if isinstance(n, int) else var * n / (n - 1)
                m = self.momentum
                if not self.is_initializing():
                    ra_mean.value = (1 - m) * ra_mean.value + m * mean
                    ra_var.value = (1 - m) * ra_var.value + m * unbiased
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
        scale = self.param("scale", nn.initializers.ones, (features,))
        bias = self.param("bias", nn.initializers.zeros, (features,))
        return (y * scale + bias).astype(x.dtype)

    def _mean(self, x: jax.Array) -> jax.Array:
        m = jnp.mean(x, axis=0)
        return m if self.axis_name is None else jax.lax.pmean(m, self.axis_name)


def torch_uniform(fan_in: int):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for nn.Linear weights and biases
    (kaiming_uniform with a = sqrt(5) gives this bound), for models that follow a PyTorch
    reference's initialisation."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def add_bias(y: jax.Array, bias: jax.Array) -> jax.Array:
    """`y + bias` summed in float32, returned in y's dtype (float32: exactly `y + bias`).

    With a bfloat16 `y`, a bias added in bfloat16 gets as its gradient the cotangent summed over
    every batch and spatial position *in bfloat16*: over a 32³ volume that sum is off by ~2 %
    (8 mantissa bits; tests/train/test_bf16.py). Added in float32, the sum is float32.
    """
    return (y.astype(jnp.float32) + bias.astype(jnp.float32)).astype(y.dtype)


class Dense(nn.Module):
    """`flax.linen.Dense` (same parameters, names and initialisers) whose bias is added in
    float32 (`add_bias`); `dtype` is the compute dtype of the matmul (None: float32)."""

    features: int
    use_bias: bool = True
    dtype: jnp.dtype | None = None
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [..., F] -> [..., features]
        dt = jnp.dtype(self.dtype or jnp.float32)
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
        y = jax.lax.dot_general(x.astype(dt), kernel.astype(dt), (((x.ndim - 1,), (0,)), ((), ())))
        if not self.use_bias:
            return y
        return add_bias(y, self.param("bias", self.bias_init, (self.features,)))


class TorchDense(nn.Module):
    """`nn.Dense` with PyTorch's default initialisation (weights and bias U(+-1/sqrt(fan_in))).
    `dtype` is the compute dtype (None: the input's and float32 params' promotion); params float32."""

    features: int
    use_bias: bool = True
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        init = torch_uniform(x.shape[-1])
        dense = Dense(
            self.features,
            use_bias=self.use_bias,
            kernel_init=init,
            bias_init=init,
            dtype=self.dtype,
        )
        return dense(x)
