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
    deviation) rather than E[x^2] - E[x]^2, which cancels badly in float32. No running averages:
    a GAN generator normalises with the batch it generates, so there is no state to thread.
    """

    axis_name: str | None = None
    eps: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # [B, F] -> [B, F]
        x32 = x.astype(jnp.float32)  # statistics in float32 whatever the compute dtype
        mean = self._mean(x32)
        var = self._mean(jnp.square(x32 - mean))
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
        bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
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


class TorchDense(nn.Module):
    """`nn.Dense` with PyTorch's default initialisation (weights and bias U(+-1/sqrt(fan_in)))."""

    features: int
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        init = torch_uniform(x.shape[-1])
        return nn.Dense(self.features, use_bias=self.use_bias, kernel_init=init, bias_init=init)(x)
