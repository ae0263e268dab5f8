"""jaxsyn: generative models for synthetic medical data in JAX.

The public API is re-exported here lazily, so `import jaxsyn` stays cheap and importing a model
never pulls in Grain, TensorStore or Optax.
"""

from __future__ import annotations

import importlib

from jaxsyn.errors import CheckpointError, ConfigError, DataError, JaxsynError

__version__ = "0.1.0"

_LAZY = {
    "Volume": "jaxsyn.data.volumes",
    "load_volume": "jaxsyn.data.volumes",
    "save_nifti": "jaxsyn.data.volumes",
    "fit_cube": "jaxsyn.data.volumes",
    "resample": "jaxsyn.data.volumes",
    "window": "jaxsyn.data.volumes",
    "unwindow": "jaxsyn.data.volumes",
    "ingest": "jaxsyn.data.store",
    "VolumeStore": "jaxsyn.data.store",
    "PipelineConfig": "jaxsyn.data.pipeline",
    "make_dataset": "jaxsyn.data.pipeline",
    "infer_schema": "jaxsyn.data.tabular",
    "TableSchema": "jaxsyn.data.tabular",
    "TableTransformer": "jaxsyn.data.tabular",
    "TableSynthesizer": "jaxsyn.infer.ctgan",
    "tabular_quality": "jaxsyn.eval.tabular",
    "load_images": "jaxsyn.data.images",
    "evaluate": "jaxsyn.eval.evaluate",
    "Generators": "jaxsyn.zoo.generators",
}
_NAMES = {"tabular_quality": "quality"}  # public name -> the module's own

__all__ = ["CheckpointError", "ConfigError", "DataError", "JaxsynError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), _NAMES.get(name, name))
    raise AttributeError(f"module 'jaxsyn' has no attribute {name!r}")
