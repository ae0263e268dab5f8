"""jaxsyn bench's arithmetic: analytic FLOPs of a matmul and of 2D/3D convolutions counted by
hand, the training-step convention (x3 for a differentiated forward, x1 without a gradient),
peaks and MFU, and the CPU peak read from a /proc/cpuinfo text. No model is compiled here."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsyn import kernels
from jaxsyn.bench import flops, peaks
from jaxsyn.errors import ConfigError
from jaxsyn.train import parallel


def count(fn, *args, training=False):
    return flops.step_flops(fn, *args, training=training)


def test_matmul_and_dense_by_hand():
    x, w = jnp.ones((5, 7)), jnp.ones((7, 3))
    assert count(lambda x, w: x @ w, x, w) == 2 * 5 * 7 * 3  # 210
    # a batched contraction: [2, 5, 7] x [2, 7, 3] -> [2, 5, 3], 7 contracted
    xb, wb = jnp.ones((2, 5, 7)), jnp.ones((2, 7, 3))
    assert count(lambda a, b: jnp.einsum("bij,bjk->bik", a, b), xb, wb) == 2 * 2 * 5 * 3 * 7
    # elementwise work counts nothing
    assert count(lambda x: jnp.tanh(x) * 2 + 1, x) == 0


def test_conv2d_stride_same_by_hand():
    """9x9 -> 5x5 at stride 2 with SAME padding: every one of the 3x3 taps counted, even those on
    the padding (XLA's cost_analysis counts only the in-image ones, so it reports fewer)."""
    x, w = jnp.ones((2, 9, 9, 3)), jnp.ones((3, 3, 3, 4))

    def conv(x, w):
        return jax.lax.conv_general_dilated(
            x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    by_hand = 2 * (2 * 5 * 5 * 4) * (3 * 3) * 3  # 2 x output elements x K x C_in = 10,800
    assert count(conv, x, w) == by_hand
    xla = jax.jit(conv).lower(x, w).compile().cost_analysis()
    xla = xla[0] if isinstance(xla, list) else xla
    assert 0 < xla["flops"] < by_hand  # taps on the padding left out


@pytest.mark.parametrize("implementation", ["xla", "onednn"])
def test_conv3d_by_hand_on_either_path(implementation):
    """A 3D convolution through jaxsyn.kernels (the oneDNN custom call on CPU, lax's otherwise)
    counts the same: 2 x K x C_in x C_out per output voxel."""
    if implementation == "onednn" and not kernels.available():
        pytest.skip("oneDNN extension not built")
    x, w = jnp.ones((1, 6, 6, 6, 2)), jnp.ones((3, 3, 3, 2, 5))
    same = functools.partial(
        kernels.conv3d, stride=1, padding="SAME", implementation=implementation
    )
    assert count(same, x, w) == 2 * (6 * 6 * 6) * 27 * 2 * 5  # 116,640
    strided = functools.partial(kernels.conv3d, stride=2, padding=1, implementation=implementation)
    # (6 + 2 - 3) // 2 + 1 = 3 per axis
    assert count(strided, x, w) == 2 * (3 * 3 * 3) * 27 * 2 * 5


def test_input_dilated_conv_counts_its_real_work():
    """The data gradient of a strided convolution is a convolution of the input-dilated cotangent:
    counted as the forward it transposes (the inserted zeros do no work)."""
    x, w = jnp.ones((1, 8, 8, 3)), jnp.ones((3, 3, 3, 4))

    def conv(x, w):
        return jax.lax.conv_general_dilated(
            x, w, (2, 2), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    forward = count(conv, x, w)
    assert forward == 2 * (4 * 4 * 4) * 9 * 3
    both = count(lambda x, w: jax.grad(lambda x: conv(x, w).sum())(x), x, w)
    # the traced forward plus the transposed convolution: 8x8x3 outputs, 9 taps, 4 input
    # features, input dilation 2x2 -> 2 x 192 x 9 x 4 / 4, the forward's count again
    assert both - forward == 2 * (8 * 8 * 3) * 9 * 4 // 4 == forward


def test_scan_counts_each_iteration_and_cond_its_costliest_branch():
    w = jnp.ones((4, 4))

    def scanned(x):
        return jax.lax.scan(lambda h, _: (h @ w, None), x, None, length=5)[0]

    assert count(scanned, jnp.ones((1, 4))) == 5 * 2 * 4 * 4
    branches = lambda p, x: jax.lax.cond(p, lambda: x @ w @ w, lambda: x @ w)  # noqa: E731
    assert count(branches, True, jnp.ones((1, 4))) == 2 * (2 * 4 * 4)


def _toy_step(state, batch, key):
    """A training step as the families write theirs: one differentiated loss (two dense layers)
    and one forward without a gradient."""
    del key
    w1, w2, w3 = state["w1"], state["w2"], state["w3"]
    frozen = jax.lax.stop_gradient(batch @ w3)  # [B, 4]: counted once

    def loss(params, x):
        return jnp.mean(jnp.tanh(x @ params["w1"]) @ params["w2"]) + jnp.mean(frozen)

    value, grads = parallel.mean_value_and_grad(loss)({"w1": w1, "w2": w2}, batch)
    new = {"w1": w1 - grads["w1"], "w2": w2 - grads["w2"], "w3": w3}
    return new, value


def _toy_count(devices, training=True):
    mesh = parallel.make_mesh(devices)
    b, i, h, o, k = 8, 5, 7, 3, 4
    ones = {"w1": jnp.ones((i, h)), "w2": jnp.ones((h, o)), "w3": jnp.ones((i, k))}

    def make():
        return jax.shard_map(
            lambda s, x: _toy_step(s, x, None),
            mesh=mesh,
            in_specs=(jax.P(), jax.P(parallel.DATA)),
            out_specs=(jax.P(), jax.P()),
        )

    with jax.set_mesh(mesh):
        state = jax.device_put(ones, parallel.replicated(mesh))
        batch = jax.device_put(jnp.ones((b, i)), parallel.batch_sharding(mesh))
        n = count(make(), state, batch, training=training)
        new, _ = jax.jit(make())(state, batch)  # the patch is gone: the step differentiates
    assert float(jnp.abs(new["w1"] - ones["w1"]).sum()) > 0
    return n, 2 * b * i * h + 2 * b * h * o, 2 * b * i * k


def test_training_step_counts_a_differentiated_forward_three_times():
    n, forward, frozen = _toy_count(jax.devices()[:1])
    assert n == 3 * forward + frozen
    # on 2 devices each shard_map body sees half the batch; the count is still the whole step's
    if len(jax.devices()) >= 2:
        assert _toy_count(jax.devices()[:2])[0] == n


def test_mfu_and_accelerator_peaks():
    assert peaks.mfu(2e12, 0.5, 8e12) == pytest.approx(0.5)  # 4 TFLOP/s of 8
    assert peaks.mfu(1.0, 1.0, None) is None
    h100 = "NVIDIA H100 80GB HBM3"
    assert peaks.peak_flops(h100, "bfloat16", 8) == (8 * 989.4e12, "table")
    assert peaks.accelerator_peak("NVIDIA H100 PCIe", "bfloat16") == 756.5e12
    assert peaks.accelerator_peak("NVIDIA H200", "float32") == 494.7e12
    assert peaks.accelerator_peak("NVIDIA A100-SXM4-80GB", "bfloat16") == 312e12
    assert peaks.accelerator_peak("NVIDIA L4", "bfloat16") == 121e12
    assert peaks.accelerator_peak("NVIDIA L40S", "bfloat16") == 362.05e12
    assert peaks.accelerator_peak("TPU v5 lite", "bfloat16") == 197e12
    assert peaks.accelerator_peak("TPU v5p", "bfloat16") == 459e12
    assert peaks.accelerator_peak("TPU v4", "float32") == 275e12
    assert peaks.accelerator_peak("TPU v6 lite", "bfloat16") == 918e12
    peak, why = peaks.peak_flops("Some New GPU", "float32")
    assert peak is None and "--peak-flops" in why
    assert peaks.peak_flops("Some New GPU", "float32", 2, override=1e12) == (2e12, "--peak-flops")
    with pytest.raises(ConfigError, match="--peak-flops"):
        peaks.peak_flops("cpu", "float32", override=0)


def _cpuinfo(vendor, flags, mhz=3000.0, cores=((0, 0), (0, 0), (0, 1), (0, 1))):
    """/proc/cpuinfo text: one block per logical processor (two threads per core here)."""
    blocks = [
        f"processor\t: {n}\nvendor_id\t: {vendor}\nphysical id\t: {p}\ncore id\t\t: {c}\n"
        f"cpu MHz\t\t: {mhz}\nflags\t\t: {flags}\n"
        for n, (p, c) in enumerate(cores)
    ]
    return "\n".join(blocks)


def test_cpu_peak_from_cpuinfo():
    # AMD Zen 4: AVX-512 on two 256-bit FMA pipes = 32 float32 FLOP per cycle per core
    amd = peaks.cpu_peak(_cpuinfo("AuthenticAMD", "sse avx avx2 fma avx512f avx512_bf16"))
    assert (amd["cores"], amd["flop_per_cycle"]) == (2, 32)  # hyperthreads do not count
    assert amd["peak_flops"] == pytest.approx(2 * 3.0e9 * 32)  # 192 GFLOP/s
    bf16 = peaks.cpu_peak(_cpuinfo("AuthenticAMD", "avx2 fma avx512f avx512_bf16"), "bfloat16")
    assert bf16["flop_per_cycle"] == 64
    # Intel with two AVX-512 FMA units: 16 lanes x 2 x 2
    intel = peaks.cpu_peak(_cpuinfo("GenuineIntel", "avx avx2 fma avx512f"), max_mhz=2000.0)
    assert (intel["flop_per_cycle"], intel["mhz"]) == (64, 2000.0)
    assert peaks.cpu_peak(_cpuinfo("GenuineIntel", "avx avx2 fma"))["flop_per_cycle"] == 32
    assert peaks.cpu_peak(_cpuinfo("GenuineIntel", "sse sse2"))["flop_per_cycle"] == 8
    # no topology fields (some VMs): every processor counts
    bare = "processor\t: 0\ncpu MHz\t\t: 1000\nflags\t\t: avx2 fma\n\nprocessor\t: 1\n"
    assert peaks.cpu_peak(bare + "cpu MHz\t\t: 1000\nflags\t\t: avx2 fma\n")["cores"] == 2
    with pytest.raises(ConfigError, match="--peak-flops"):
        peaks.cpu_peak("nothing here")


def test_this_machines_cpu_peak_is_plausible():
    peak, why = peaks.peak_flops("cpu", "float32")
    assert 1e9 < peak < 1e14 and why.startswith("estimated")
    assert np.isfinite(peak)
