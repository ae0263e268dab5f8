"""Reading PyTorch checkpoint files into numpy without importing torch.

`read_torch_file(path)` -> {name: array} for a `torch.save` zip archive (`*/data.pkl` plus raw
storages `*/data/<key>`), a TorchScript zip, or the legacy pre-1.6 stream format. A restricted
unpickler rebuilds tensors (offsets and strides honoured; float/double/half/bfloat16 and integer
and bool storages) and refuses every other global, so no code in the file runs.

Anything else is a one-line `DataError` naming the file: a damaged or truncated zip archive, a tar
archive (what `torch.load` reports as `KeyError: 'storages'`, e.g. a download that packs several
checkpoints, or torch's oldest tar-based format, which is not supported), or no PyTorch file at all.
Used by `jaxsyn.eval` (FID and MedicalNet weights) and `jaxsyn.compat` (reference checkpoints).
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import tarfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxsyn.errors import DataError

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


def _container(path: Path) -> str:
    """ "zip" or "legacy" from the first bytes (as torch.load decides); anything else refused.

    A tar archive is refused before `zipfile` looks at it: `zipfile` finds the central directory
    at the end of a file, so it would read the last checkpoint packed in a tar as if it were all.
    """
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        if not zipfile.is_zipfile(path):
            raise DataError(
                f"{path}: a damaged or truncated zip archive (no central directory); expected a whole `torch.save` file (download or copy it again)"
            )
        return "zip"
    if tarfile.is_tarfile(path):
        try:
            with tarfile.open(path) as tar:
                names = tar.getnames()[:4]
        except (tarfile.TarError, OSError):
            names = []
        old = " (torch's oldest, tar-based format is not supported)" if "storages" in names else ""
        raise DataError(
            f"{path}: a tar archive (members {names}), not a `torch.save` file{old}; if it packs checkpoints, unpack it and use the .pth files inside"
        )
    if head[:1] != pickle.PROTO:
        raise DataError(
            f"{path}: not a PyTorch file (starts with {head!r}: neither a zip archive nor torch's legacy pickle stream)"
        )
    return "legacy"


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
        obj = _read_zip(path) if _container(path) == "zip" else _read_legacy_file(path)
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
