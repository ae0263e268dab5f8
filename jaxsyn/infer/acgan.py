"""Generating labelled images and condition-morphing strips from a trained AC-GAN run.

    jaxsyn generate --run RUN --n 100 --out DIR [--condition region=lumbar]
    jaxsyn morph --run RUN --from cervical --to lumbar --frames 8 --out strip.png

`write_images` writes the layout the loaders read (`jaxsyn.data.images`): single-channel images
as `<id>.png`, multi-channel ones as `<id>.npy` (values in [0, 1]) with a PNG preview (the
channels as a mosaic), `labels.csv` (id, the class column, one-hot columns) and `manifest.json`.
Classes not given are drawn from the training data's class prior. `morph_strip` writes the frames
of `jaxsyn.models.acgan.morph` (z fixed, the condition moved linearly from one class to another)
side by side, one row per channel group. `load_generator` reads only the generator's arrays of a
run (no Optax, no Grain: generation needs neither).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pandas as pd
from PIL import Image

from jaxsyn import files
from jaxsyn.checkpoint import restore_subtree
from jaxsyn.data.phantoms import images2d
from jaxsyn.errors import ConfigError
from jaxsyn.models import acgan as model

FAMILY = "acgan"


def read_info(run_dir: str | os.PathLike) -> dict:
    """config.json of an AC-GAN run folder (checked to be one)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ConfigError(
            f"{run_dir}: no config.json; expected a folder made by `jaxsyn train acgan`"
        )
    info = json.loads(path.read_text())
    if info.get("family") != FAMILY:
        raise ConfigError(f"{path}: field family is {info.get('family')!r}; expected {FAMILY!r}")
    return info


def load_generator(run_dir: str | os.PathLike) -> tuple[model.ACGANConfig, Any, Any, dict]:
    """(model config, generator params, running BatchNorm stats or None, run info) of a run;
    reads only the generator's arrays from the latest checkpoint."""
    run_dir = Path(run_dir)
    info = read_info(run_dir)
    config = model.ACGANConfig(**info["model"])
    params = jax.eval_shape(functools.partial(model.init, config=config), jax.random.key(0))
    target: dict[str, Any] = {"params": {"g": params["g"]}}
    if config.batch_norm:
        target["stats"] = {"batch_stats": jax.eval_shape(lambda: model.init_stats(config))}
    restored = restore_subtree(run_dir / "checkpoints", target)
    stats = restored["stats"]["batch_stats"] if config.batch_norm else None
    return config, restored["params"]["g"], stats, info


def class_index(info: dict, name: str | int) -> int:
    """A class given by name (as in the run's data) or index -> its index."""
    classes = info["classes"]
    if isinstance(name, int) or str(name).isdigit():
        k = int(name)
        if 0 <= k < len(classes):
            return k
    elif str(name) in classes:
        return classes.index(str(name))
    raise ConfigError(
        f"class is {name!r}; expected one of {classes} or an index below {len(classes)}"
    )


def preview(image: np.ndarray) -> np.ndarray:
    """[H, W, C] in [0, 1] -> uint8 mosaic of the channels (9 -> 3 x 3), a PNG preview."""
    return images2d.mosaic((np.clip(image, 0, 1) * 255).round().astype(np.uint8))


def write_images(
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    n: int,
    seed: int = 0,
    conditions: Mapping[str, str] | None = None,
) -> Path:
    config, g, stats, info = load_generator(run_dir)
    column = info.get("class_column", "class")
    conditions = dict(conditions or {})
    unknown = set(conditions) - {column}
    if unknown:
        raise ConfigError(
            f"--condition {sorted(unknown)}: this model is conditioned on {column!r} only"
        )
    rng = np.random.default_rng(seed)
    if column in conditions:
        labels = np.full(n, class_index(info, conditions[column]))
    else:
        labels = rng.choice(config.num_classes, n, p=np.asarray(info["class_prior"]))
    images = np.asarray(model.generate(g, jax.random.key(seed), labels, config, stats))
    images = (images + 1) / 2  # [-1, 1] -> [0, 1]
    out = Path(out_dir)
    ids = [f"syn_{i:06d}" for i in range(n)]
    for i, image in zip(ids, images, strict=True):
        if image.shape[-1] > 1:
            with files.atomic_path(out / f"{i}.npy", suffix=".npy") as tmp:
                np.save(tmp, np.clip(image, 0, 1).astype(np.float32))
        with files.atomic_path(out / f"{i}.png", suffix=".png") as tmp:
            Image.fromarray(preview(image)).save(tmp, format="PNG")
    classes = list(info["classes"])
    table = pd.DataFrame({"image_id": ids, column: np.asarray(classes)[labels]})
    for k, name in enumerate(classes):
        table[name] = (labels == k).astype(np.int64)
    files.write_text(out / "labels.csv", table.to_csv(index=False))
    manifest = {"family": "acgan", "run": str(Path(run_dir).absolute()), "n": n, "seed": seed,
                "conditions": conditions, "config": info, "files": files.tree_files(out)}  # fmt: skip
    files.write_json(out / "manifest.json", manifest)
    return out


def morph_strip(
    run_dir: str | os.PathLike,
    out_png: str | os.PathLike,
    *,
    source: str,
    target: str,
    frames: int = 8,
    seed: int = 0,
) -> Path:
    if frames < 1:
        raise ConfigError(f"--frames is {frames}; expected >= 1")
    config, g, stats, info = load_generator(run_dir)
    a, b = class_index(info, source), class_index(info, target)
    strip = np.asarray(model.morph(g, jax.random.key(seed), config, a, b, frames, stats))
    tiles = [preview((x + 1) / 2) for x in strip]
    image = np.concatenate(tiles, axis=1)
    with files.atomic_path(out_png, suffix=".png") as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return Path(out_png)
