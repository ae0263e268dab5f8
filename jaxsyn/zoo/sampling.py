"""Generating from a model folder: through each family's writer in `jaxsyn.infer` (the one
implementation `jaxsyn generate --run` uses), so files land in the same layout; arrays are what
those files hold, read back (`read_output`), so the two can never disagree.

Output kinds and the arrays of each (`save_images=False`):
  volumes  {"volumes": int16 [N, S, S, S] HU}                                      (hagan)
  cohort   {"table": DataFrame (patient_id + clinical columns), "volumes": ...}     (mmcgan)
  table    {"table": DataFrame}                                                     (ctgan)
  images   {"images": float32 [N, H, W, C] in [0, 1], "labels": DataFrame}          (acgan, proggan, cpdgan)
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxsyn.errors import ConfigError
from jaxsyn.zoo import cards


def check_conditions(card: dict, conditions: Mapping[str, Any] | None) -> dict:
    """`conditions` checked against the card's schema: known names, values the model takes."""
    schema = card["execution"]["conditions"]
    given = dict(conditions or {})
    where = f"model {card['model_id']}"
    unknown = sorted(set(given) - set(schema))
    if unknown:
        raise ConfigError(
            f"{where}: conditions {unknown} unknown; expected names among {sorted(schema) or 'none'}"
        )
    missing = sorted(n for n, s in schema.items() if s.get("required") and n not in given)
    if missing:
        raise ConfigError(
            f"{where}: conditions {missing} missing; this model needs every one of {sorted(schema)}"
        )
    for name, value in given.items():
        given[name] = _known_value(where, name, schema[name], value)
    return given


def _known_value(where: str, name: str, spec: dict, value: Any) -> Any:
    """`value` as the card lists it (`"1"` -> 1.0 for a category 1.0); a class may also be
    given by its index; a number stays a number (or a "LO:HI" range for tables)."""
    if spec["type"] == "number":
        if isinstance(value, str) and ":" not in value:
            try:
                return float(value)
            except ValueError:
                raise ConfigError(
                    f"{where}: condition {name}={value!r}; expected a number"
                ) from None
        return value
    for known in spec["values"]:
        if str(value) == str(known) or _same_number(value, known):
            return known
    if spec["type"] == "class" and str(value).isdigit() and int(value) < len(spec["values"]):
        return int(value)
    raise ConfigError(f"{where}: condition {name}={value!r}; expected one of {spec['values']}")


def _same_number(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def write(card: dict, out: str | os.PathLike, *, n: int, seed: int = 0,
          conditions: Mapping[str, Any] | None = None, batch_size: int | None = None,
          latents: np.ndarray | None = None, progress: bool = True) -> Path:  # fmt: skip
    """`n` samples of the model into `out`, as `jaxsyn generate --run` writes them."""
    if n < 1:
        raise ConfigError(f"num_samples is {n}; expected >= 1")
    family = card["execution"]["family"]
    run = Path(card["execution"]["path"]) / card["execution"]["run"]
    conditions = check_conditions(card, conditions)
    if family == "hagan":
        from jaxsyn.infer import hagan

        numeric = {k: float(v) for k, v in conditions.items()}
        return hagan.write_volumes(run, out, n=n, seed=seed, conditions=numeric,
                                   latents=latents, progress=progress)  # fmt: skip
    if family == "mmcgan":
        from jaxsyn.infer import mmcgan

        numeric = {k: float(v) for k, v in conditions.items()}
        return mmcgan.write_cohort(run, out, n=n, seed=seed, conditions=numeric,
                                   batch=batch_size or 8, latents=latents, progress=progress)  # fmt: skip
    if family == "ctgan":
        from jaxsyn.infer import ctgan

        return ctgan.write_table(run, out, n=n, seed=seed, conditions=conditions,
                                 latents=latents, progress=progress)  # fmt: skip
    from jaxsyn.infer import acgan

    text = {k: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
            for k, v in conditions.items()}  # fmt: skip
    return acgan.write_images(run, out, n=n, seed=seed, conditions=text, latents=latents)


def read_output(kind: str, folder: str | os.PathLike) -> dict[str, Any]:
    """The arrays of a generated folder (see the module docstring), in the manifest's order."""
    import pandas as pd

    folder = Path(folder)
    out: dict[str, Any] = {}
    if kind in ("table", "cohort"):
        out["table"] = pd.read_parquet(folder / "synthetic.parquet")
    if kind in ("volumes", "cohort"):
        from jaxsyn.data.volumes import load_nifti

        manifest = json.loads((folder / "manifest.json").read_text())
        if kind == "volumes":
            ids = [r["id"] for r in manifest["volumes"]]
        else:
            ids = out["table"]["patient_id"].tolist()
        vols = [np.asarray(load_nifti(folder / f"{i}.nii.gz").hu) for i in ids]
        out["volumes"] = np.rint(np.stack(vols)).astype(np.int16)
    if kind == "images":
        from jaxsyn.data.images import load_images

        out["images"], out["labels"] = load_images(folder, progress=False)
    return out


def generate(card: dict, n: int, *, output_path=None, save_images: bool = True, seed: int = 0,
             conditions=None, batch_size=None, latents=None, progress: bool = True):  # fmt: skip
    """Files in `output_path` (returns the folder) or, with save_images=False, the arrays."""
    if save_images:
        if output_path is None:
            raise ConfigError("generate: save_images=True needs output_path (a folder)")
        return write(card, output_path, n=n, seed=seed, conditions=conditions,
                     batch_size=batch_size, latents=latents, progress=progress)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="jaxsyn-zoo-") as tmp:
        folder = write(card, Path(tmp) / "out", n=n, seed=seed, conditions=conditions,
                       batch_size=batch_size, latents=latents, progress=progress)  # fmt: skip
        return read_output(card["execution"]["output"]["kind"], folder)


def latent_dim(card: dict) -> int:
    """The size of one sample's noise vector (what `latents` rows hold)."""
    config, family = card["execution"]["config"], card["execution"]["family"]
    if family == "mmcgan":
        return int(config["image"]["latent_dim"])
    if family == "ctgan":
        return int(config["embedding_dim"])
    return int(config["latent_dim"])


def model_folder_card(folder: Path) -> dict:
    """The card of a model folder, hash-checked, with `execution.path` set."""
    card = cards.read(folder)
    cards.check_files(folder, card)
    card["execution"]["path"] = str(Path(folder).absolute())
    return card
