"""Inference: full-resolution volume generation (chunked, streamed) and synthetic cohorts."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from jaxsyn.errors import ConfigError


def run_info(run_dir: str | os.PathLike, families: tuple[str, ...]) -> dict:
    """config.json of a run folder made by `jaxsyn train`, checked to be one of `families`."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        found = "no config.json" if Path(run_dir).is_dir() else "no such folder"
        raise ConfigError(
            f"{run_dir}: {found}; expected a run folder made by `jaxsyn train {'|'.join(families)}`"
        )
    info = json.loads(path.read_text())
    if info.get("family") not in families:
        expected = " or ".join(repr(f) for f in families)
        raise ConfigError(f"{path}: field family is {info.get('family')!r}; expected {expected}")
    return info


def check_latents(latents, n: int, width: int, source: str = "--latents") -> np.ndarray:
    """`latents` as float32 [n, width], or a ConfigError naming `source` and what was expected."""
    z = np.asarray(latents, dtype=np.float32)
    if z.ndim != 2 or z.shape != (n, width):
        raise ConfigError(
            f"{source}: shape {list(z.shape)}; expected [{n}, {width}] (N noise vectors of the model's latent size)"
        )
    if not np.isfinite(z).all():
        raise ConfigError(f"{source}: holds NaN or infinite values; expected finite noise vectors")
    return z


def latents_digest(latents) -> str | None:
    """sha256 of float32 noise vectors, for a manifest (None when the noise was drawn)."""
    if latents is None:
        return None
    return hashlib.sha256(np.ascontiguousarray(latents, np.float32).tobytes()).hexdigest()
