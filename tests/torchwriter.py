"""`save_torch(obj, path)`: a `torch.save`-style zip archive written without torch, for tests.

The layout torch (>= 1.6) writes: `archive/data.pkl` (pickle protocol 2) whose tensors are
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)` with each
storage a persistent id `("storage", torch.<Type>Storage, key, "cpu", numel)`, and the raw
little-endian bytes of storage `key` in `archive/data/<key>`. numpy arrays in `obj` (nested in
dicts, lists and tuples) become tensors; everything else is pickled as it is. The peers tests
check `jaxsyn.torchfile` against torch's own writer; this one lets the default suite make files.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

_STORAGES = {
    np.dtype("<f4"): "FloatStorage",
    np.dtype("<f8"): "DoubleStorage",
    np.dtype("<i8"): "LongStorage",
}


class _Global:
    """A name `module.name` as pickle's GLOBAL opcode writes it (no import of `module`)."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle checks that a reduce function is callable
        raise TypeError(f"{self.module}.{self.name} is a name only")


class _Storage:
    def __init__(self, key: str, kind: str, numel: int):
        self.key, self.kind, self.numel = key, kind, numel


_REBUILD = _Global("torch._utils", "_rebuild_tensor_v2")


class _Pickler(pickle._Pickler):  # the pure-Python pickler: its dispatch table is extensible
    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file, storages: dict[str, bytes]):
        super().__init__(file, protocol=2)
        self.storages = storages

    def _save_global(self, obj: _Global) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[_Global] = _save_global

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", _Global("torch", obj.kind), obj.key, "cpu", obj.numel)
        return None

    def reducer_override(self, obj):
        if not isinstance(obj, np.ndarray):
            return NotImplemented
        array = np.ascontiguousarray(obj, obj.dtype.newbyteorder("<"))
        key = str(len(self.storages))
        self.storages[key] = array.tobytes()
        storage = _Storage(key, _STORAGES[array.dtype], array.size)
        stride = tuple(s // array.itemsize for s in array.strides) if array.ndim else ()
        hooks = collections.OrderedDict()
        return _REBUILD, (storage, 0, array.shape, stride, False, hooks)


def save_torch(obj, path: str | Path) -> Path:
    storages: dict[str, bytes] = {}
    buffer = io.BytesIO()
    _Pickler(buffer, storages).dump(obj)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        archive.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            archive.writestr(f"archive/data/{key}", raw)
        archive.writestr("archive/version", "3\n")
    return Path(path)
