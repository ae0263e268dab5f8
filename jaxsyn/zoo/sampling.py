"""Generating from a model folder: through each family's writer in `jaxsyn.infer` (the one
implementation `jaxsyn generate --run` uses), so files land in the same layout; arrays are what
those files hold, read back (`read_output`), so the two can never disagree.

Output kinds and the arrays of each (`save_images=False`):
  volumes  {"volumes": int16 [N, S, S, S] HU}                                      (hagan)
  cohort   {"table": DataFrame (patient_id + clinical columns), "volumes": ...}     (mmcgan)
  table    {"table": DataFrame}                                                     (ctgan)
  images   {"images": float32 [N, H, W, C] in [0, 1], "labels": DataFrame}          (acgan, proggan, cpdgan)
  translations  the same: the translated images and their sources' labels.csv rows   (duiit)

A translator (duiit) translates `n` source images into its target modality through
`jaxsyn.infer.duiit.write_translations` (what `jaxsyn translate` runs): `images` is a folder (its
first n images), an array [N, H, W(, 1)] in [0, 1] (the first n) or None: n head phantoms of the
source modality it was trained on, drawn from `seed` (`phantom:head-mri:N`).
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
          latents: np.ndarray | None = None, images=None, progress: bool = True) -> Path:  # fmt: skip
    """`n` samples of the model into `out`, as `jaxsyn generate --run` (a translator: `jaxsyn
    translate`) writes them."""
    if n < 1:
        raise ConfigError(f"num_samples is {n}; expected >= 1")
    family = card["execution"]["family"]
    run = Path(card["execution"]["path"]) / card["execution"]["run"]
    conditions = check_conditions(card, conditions)
    if family == "duiit":
        return _translate(card, run, out, n=n, seed=seed, images=images, latents=latents,
                          progress=progress)  # fmt: skip
    if images is not None:
        raise ConfigError(
            f"model {card['model_id']}: images= given to a {family} model; expected it only for a "
            "translator (family duiit)"
        )
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


def _translate(card: dict, run: Path, out, *, n: int, seed: int, images, latents, progress):
    from jaxsyn.infer import duiit

    where = f"model {card['model_id']}"
    if latents is not None:
        raise ConfigError(f"{where}: latents given; a translator has none (it reads images=)")
    if images is None:
        images = source_spec(card, n)
    elif not isinstance(images, str | os.PathLike):
        images = source_arrays(images, card["execution"]["output"]["shape"][0], where)
    return duiit.write_translations(run, images, out, n=n, seed=seed, progress=progress)


def source_spec(card: dict, n: int) -> str:
    """phantom:head-MODALITY:n of the source a translator was trained on (its card's
    output.source), or a ConfigError when it was trained on a folder."""
    source = card["execution"]["output"].get("source", "")
    if not source.startswith("phantom:head-") or source.count(":") != 2:
        raise ConfigError(
            f"model {card['model_id']}: trained on {source!r}, not on phantoms; expected "
            "images= (a folder or an array of source images)"
        )
    return f"{source.rsplit(':', 1)[0]}:{n}"


def source_arrays(images, size: int, where: str):
    """Source images [N, H, W] or [N, H, W, 1] in [0, 1] as `LabelledImages` at `size`
    (resized as a folder's images are), ids src_000000 ..."""
    from jaxsyn.data.images import resize
    from jaxsyn.data.labelled import LabelledImages

    array = np.asarray(images, np.float32)
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] != 1 or len(array) == 0:
        raise ConfigError(
            f"{where}: images of shape {list(np.shape(images))}; expected [N, H, W] or "
            "[N, H, W, 1] grey source images"
        )
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise ConfigError(
            f"{where}: images in [{np.nanmin(array)}, {np.nanmax(array)}]; expected [0, 1]"
        )
    array = np.stack([resize(np.ascontiguousarray(a), size) for a in array])
    ids = [f"src_{i:06d}" for i in range(len(array))]
    return LabelledImages(array * 2.0 - 1.0, None, ids, ids, "arrays")


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
    if kind in ("images", "translations"):
        from jaxsyn.data.images import load_images

        out["images"], out["labels"] = load_images(folder, progress=False)
    return out


def generate(card: dict, n: int, *, output_path=None, save_images: bool = True, seed: int = 0,
             conditions=None, batch_size=None, latents=None, images=None,
             progress: bool = True):  # fmt: skip
    """Files in `output_path` (returns the folder) or, with save_images=False, the arrays."""
    if save_images:
        if output_path is None:
            raise ConfigError("generate: save_images=True needs output_path (a folder)")
        return write(card, output_path, n=n, seed=seed, conditions=conditions,
                     batch_size=batch_size, latents=latents, images=images,
                     progress=progress)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="jaxsyn-zoo-") as tmp:
        folder = write(card, Path(tmp) / "out", n=n, seed=seed, conditions=conditions,
                       batch_size=batch_size, latents=latents, images=images,
                       progress=progress)  # fmt: skip
        return read_output(card["execution"]["output"]["kind"], folder)


def latent_dim(card: dict) -> int:
    """The size of one sample's noise vector (what `latents` rows hold)."""
    config, family = card["execution"]["config"], card["execution"]["family"]
    if family == "mmcgan":
        return int(config["image"]["latent_dim"])
    if family == "ctgan":
        return int(config["embedding_dim"])
    if family == "duiit":  # a translator's input is an image
        return 0
    return int(config["latent_dim"])


def model_folder_card(folder: Path) -> dict:
    """The card of a model folder, hash-checked, with `execution.path` set."""
    card = cards.read(folder)
    cards.check_files(folder, card)
    card["execution"]["path"] = str(Path(folder).absolute())
    return card
