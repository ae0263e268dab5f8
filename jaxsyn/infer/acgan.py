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

prog-GAN and cpD-GAN runs (multi-label findings) go through the same writer: `sample_gan2d` draws
label vectors from the training data's label combinations (those agreeing with
`--condition FINDING=0|1`) unless given, and labels.csv has one 0/1 column per finding.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from jaxsyn import files
from jaxsyn.checkpoint import restore_subtree
from jaxsyn.data.phantoms import images2d
from jaxsyn.errors import ConfigError
from jaxsyn.infer import check_latents, latents_digest, run_info
from jaxsyn.models import acgan as model

FAMILY = "acgan"


def read_info(run_dir: str | os.PathLike, families: tuple[str, ...] = (FAMILY,)) -> dict:
    """config.json of a run folder, checked to be one of `families` (default: AC-GAN)."""
    return run_info(run_dir, families)


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
    latents: np.ndarray | None = None,
) -> Path:
    """n images of an AC-GAN, prog-GAN or cpD-GAN run into `out_dir` (the loaders' layout);
    `latents` [n, latent_dim]: image i's noise is row i (labels still drawn from `seed`)."""
    info = read_info(run_dir, (FAMILY, *GAN2D_FAMILIES))
    conditions = dict(conditions or {})
    ids = [f"syn_{i:06d}" for i in range(n)]
    info_latents = {"latents_sha256": latents_digest(latents)}
    if info["family"] in GAN2D_FAMILIES:
        images, labels, names = sample_gan2d(
            run_dir, n=n, seed=seed, conditions=conditions, latents=latents
        )
        table = pd.DataFrame({"image_id": ids})
        for j, name in enumerate(names):
            table[name] = labels[:, j].astype(np.int64)
        return save_images(
            out_dir, ids, images, table, run_dir, seed, conditions, info, info_latents
        )
    config, g, stats, info = load_generator(run_dir)
    column = info.get("class_column", "class")
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
    z = None if latents is None else check_latents(latents, n, config.latent_dim)
    images = np.asarray(model.generate(g, jax.random.key(seed), labels, config, stats, z=z))
    images = (images + 1) / 2  # [-1, 1] -> [0, 1]
    classes = list(info["classes"])
    table = pd.DataFrame({"image_id": ids, column: np.asarray(classes)[labels]})
    for k, name in enumerate(classes):
        table[name] = (labels == k).astype(np.int64)
    return save_images(out_dir, ids, images, table, run_dir, seed, conditions, info, info_latents)


def save_images(out_dir, ids, images, table, run_dir, seed, conditions, info, extra=None) -> Path:
    """Images [N, H, W, C] in [0, 1] as `<id>.png` (+ `<id>.npy` when C > 1), labels.csv and
    manifest.json (with `extra`'s entries): the layout `jaxsyn.data.images.load_images` reads."""
    out = Path(out_dir)
    for i, image in zip(ids, images, strict=True):
        if image.shape[-1] > 1:
            with files.atomic_path(out / f"{i}.npy", suffix=".npy") as tmp:
                np.save(tmp, np.clip(image, 0, 1).astype(np.float32))
        with files.atomic_path(out / f"{i}.png", suffix=".png") as tmp:
            Image.fromarray(preview(image)).save(tmp, format="PNG")
    files.write_text(out / "labels.csv", table.to_csv(index=False))
    manifest = {"family": info["family"], "run": str(Path(run_dir).absolute()), "n": len(ids),
                "seed": seed, "conditions": conditions, **(extra or {}), "config": info,
                "files": files.tree_files(out)}  # fmt: skip
    files.write_json(out / "manifest.json", manifest)
    return out


# --- prog-GAN and cpD-GAN runs (multi-label) ------------------------------------------------------

GAN2D_FAMILIES = ("proggan", "cpdgan")


def load_gan2d(run_dir: str | os.PathLike) -> tuple[Any, Any, tuple[int, float], dict]:
    """(model config, generator params, (stage, alpha) reached, run info) of a prog-GAN or
    cpD-GAN run; reads only the generator's arrays from the latest checkpoint: its moving
    average (the state's stats["g_ema"]) when the run kept one (`g_smoothing` > 0), else G."""
    from jaxsyn.models import cpdgan, proggan

    run_dir = Path(run_dir)
    info = read_info(run_dir, GAN2D_FAMILIES)
    module = proggan if info["family"] == "proggan" else cpdgan
    cls = proggan.ProgGANConfig if info["family"] == "proggan" else cpdgan.CPDGANConfig
    config = cls(**info["model"])
    params = jax.eval_shape(functools.partial(module.init, config=config), jax.random.key(0))
    part = ("stats", "g_ema") if info.get("g_smoothing", 0) > 0 else ("params", "g")
    g = restore_subtree(run_dir / "checkpoints", {part[0]: {part[1]: params["g"]}})
    g = g[part[0]][part[1]]
    stage = (config.size, 1.0)
    if info["family"] == "proggan":  # the stage and alpha of the last step trained
        steps = [int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()]
        images = max(max(steps) - 1, 0) * info["batch_size"]
        args = (config, info["stable_images"], info["fade_images"])
        at = proggan.stage_at(images, *args)
        stage = (at, float(proggan.fade_alpha(jax.numpy.int32(images), config, at, *args[1:])))
    return config, g, stage, info


def draw_labels(info: dict, n: int, conditions: Mapping[str, str], seed: int) -> np.ndarray:
    """Label vectors int [n, L]: combinations drawn with the real data's frequencies, among those
    that agree with `conditions` (finding -> "0" / "1"); forced to them if none does."""
    names = list(info["labels"])
    combos = np.array([c for c, _ in info["label_combinations"]], np.int64)
    counts = np.array([k for _, k in info["label_combinations"]], np.float64)
    fixed = {}
    for name, value in conditions.items():
        if name not in names or str(value) not in ("0", "1"):
            raise ConfigError(
                f"--condition {name}={value}: expected FINDING=0 or FINDING=1 with FINDING one "
                f"of {names}"
            )
        fixed[names.index(name)] = int(value)
    agree = np.all([combos[:, j] == v for j, v in fixed.items()], axis=0) if fixed else None
    if agree is not None and agree.any():
        combos, counts = combos[agree], counts[agree]
    rows = combos[np.random.default_rng(seed).choice(len(combos), n, p=counts / counts.sum())]
    for j, v in fixed.items():
        rows[:, j] = v
    return rows


def sample_gan2d(
    run_dir: str | os.PathLike,
    *,
    n: int | None = None,
    seed: int = 0,
    conditions: Mapping[str, str] | None = None,
    labels=None,
    batch: int = 256,
    latents: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images float32 [n, S, S, C] in [0, 1], labels int [n, L], finding names) from a prog-GAN
    or cpD-GAN run. `labels` [n, L] given: generate for them; else draw n label vectors from the
    real label combinations (`draw_labels`, honouring `conditions`). `latents` [n, latent_dim]:
    image i's noise instead of a drawn one."""
    from jaxsyn.models import cpdgan, proggan

    config, g, (stage, alpha), info = load_gan2d(run_dir)
    if labels is None:
        if n is None:
            raise ConfigError("sample_gan2d: give n or labels")
        labels = draw_labels(info, n, dict(conditions or {}), seed)
    labels = np.asarray(labels, np.int64)
    if latents is not None:
        latents = check_latents(latents, len(labels), config.latent_dim)
    key, out = jax.random.key(seed), []
    for s in range(0, len(labels), batch):  # image i's z: fold_in(fold_in(key, s), i - s)
        y, k = labels[s : s + batch], jax.random.fold_in(key, s)
        z = None if latents is None else latents[s : s + batch]
        if isinstance(config, proggan.ProgGANConfig):
            out.append(proggan.generate(g, k, y, config, stage, alpha, z=z))
        else:
            out.append(cpdgan.generate(g, k, y, config, z=z))
    images = np.clip((np.concatenate([np.asarray(x) for x in out]) + 1) / 2, 0, 1)
    return images.astype(np.float32), labels, list(info["labels"])


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
    image = labelled_strip(tiles, f"{source} -> {target}, n = {frames}")
    with files.atomic_path(out_png, suffix=".png") as tmp:
        image.save(tmp, format="PNG")
    return Path(out_png)


MORPH_BAND = 12  # px of each text band above a morph strip


def labelled_strip(tiles: list[np.ndarray], title: str) -> Image.Image:
    """Tiles side by side under two text bands: `title`, then each tile's step t (c^t mixes
    the classes (1 - t/n) : t/n, t = 0..n)."""
    strip = Image.fromarray(np.concatenate(tiles, axis=1))
    canvas = Image.new(strip.mode, (strip.width, strip.height + 2 * MORPH_BAND), 0)
    canvas.paste(strip, (0, 2 * MORPH_BAND))
    draw, white = ImageDraw.Draw(canvas), 255 if strip.mode == "L" else (255,) * 3
    draw.text((2, 0), title, fill=white)
    for t, tile in enumerate(tiles):
        draw.text((2 + t * tile.shape[1], MORPH_BAND), f"t={t}", fill=white)
    return canvas
