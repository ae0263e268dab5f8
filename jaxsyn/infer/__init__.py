"""Inference: full-resolution volume generation (chunked, streamed) and synthetic cohorts."""

from __future__ import annotations

import json
import os
from pathlib import Path

from jaxsyn.errors import ConfigError


def run_info(run_dir: str | os.PathLike, families: tuple[str, ...]) -> dict:
    """config.json of a run folder made by `jaxsyn train`, checked to be one of `families`."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ConfigError(
            f"{run_dir}: no config.json; expected a folder made by `jaxsyn train {'|'.join(families)}`"
        )
    info = json.loads(path.read_text())
    if info.get("family") not in families:
        expected = " or ".join(repr(f) for f in families)
        raise ConfigError(f"{path}: field family is {info.get('family')!r}; expected {expected}")
    return info
