"""Reading a DUIIT run back: translate images into the target modality, predict their label.

    config, params, info = load_run("runs/duiit")
    fake_ct = translate(params, images, config, source=0)      # [N, S, S, 1] in [-1, 1]
    ages = predict(params, images, config)                      # [N], in label units
    write_translations("runs/duiit", "mri_images", "fake_ct")   # PNGs, labels.csv, manifest.json
    write_translations("runs/duiit", "phantom:head-mri:8", "fake_ct", seed=3)   # drawn phantoms
    write_predictions("runs/duiit", "ct_images", "preds")       # predictions.csv, manifest.json

No Optax or Grain: only the arrays the call needs are read from the latest checkpoint.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from PIL import Image

from jaxsyn import files
from jaxsyn.checkpoint import restore_subtree
from jaxsyn.errors import ConfigError
from jaxsyn.infer import run_info
from jaxsyn.models import cyclegan
from jaxsyn.models import duiit as model

FAMILY = "duiit"
BATCH = 32  # images per forward pass


def load_run(run_dir: str | os.PathLike, parts: tuple[str, ...] = ("gen", "p")):
    """(DUIITConfig, {"gen": {"g": {"s0": ...}, "f": ...}, "p": ...} for the `parts` the run has,
    config.json) of a run's latest checkpoint."""
    run_dir = Path(run_dir)
    info = run_info(run_dir, (FAMILY,))
    config = model.DUIITConfig.from_json(info["model"])
    target = {}
    if "gen" in parts and config.has_translator:
        shapes = jax.eval_shape(functools.partial(cyclegan.init, config=config.translator),
                                jax.random.key(0))["g"]  # fmt: skip
        names = [f"s{k}" for k in range(config.sources)]
        target["gen"] = {d: {k: shapes for k in names} for d in ("g", "f")}
    if "p" in parts and config.predict:
        target["p"] = jax.eval_shape(
            functools.partial(model.init, config=config.predictor, size=config.size),
            jax.random.key(0),
        )
    params = (
        restore_subtree(run_dir / "checkpoints", {"params": target})["params"] if target else {}
    )
    return config, params, info


def _batched(fn, images: np.ndarray) -> np.ndarray:
    out = [np.asarray(fn(images[i : i + BATCH])) for i in range(0, len(images), BATCH)]
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def translate(params, images, config: model.DUIITConfig, source: int = 0, reverse: bool = False):
    """Source `source` -> target (G), or target -> source with `reverse` (F), of images
    [N, S, S, C] in [-1, 1]."""
    if "gen" not in params:
        raise ConfigError(
            f"setting {config.setting!r} has no translator; expected joint or cyclegan"
        )
    if not 0 <= source < config.sources:
        raise ConfigError(f"source is {source}; expected 0 .. {config.sources - 1}")
    g = params["gen"]["f" if reverse else "g"][f"s{source}"]
    fn = functools.partial(_translate_fn(config.translator), g)
    return _batched(fn, np.asarray(images, np.float32))


@functools.cache
def _translate_fn(translator: cyclegan.CycleGANConfig):
    """One jitted translator per config (the weights an argument): repeated calls, such as the
    model library's and its explorer's, compile once."""
    return jax.jit(lambda g, x: cyclegan.translate(g, x, translator))


def predict(params, images, config: model.DUIITConfig) -> np.ndarray:
    """The target head's prediction [N] for images [N, S, S, C] in [-1, 1], in label units."""
    if "p" not in params:
        raise ConfigError(
            "this run has no predictor (the cyclegan setting trained without --label)"
        )
    fn = jax.jit(lambda x: model.predict(params["p"], x, config.predictor))
    out = _batched(fn, np.asarray(images, np.float32))
    return out * config.label_scale + config.label_mean


def _load_images(images, config: model.DUIITConfig, seed: int, progress: bool):
    """(LabelledImages, the labels table or None) of a folder, a phantom spec (its labels: image_id,
    patient_id, age; drawn from `seed`) or LabelledImages as they are."""
    from jaxsyn.data.images import read_labels
    from jaxsyn.data.labelled import PHANTOM_PREFIX, LabelledImages, load_labelled

    if isinstance(images, LabelledImages):
        return images, None
    if str(images).startswith("phantom:"):
        label = "age" if str(images).startswith(PHANTOM_PREFIX) else None
        ds = load_labelled(str(images), label, config.size, seed, progress=progress)
        table = pd.DataFrame({"image_id": ds.image_ids, "patient_id": ds.patient_ids})
        if ds.labels is not None:  # float32's shortest decimal (73.9, not 73.9000015...)
            table["age"] = [float(str(v)) for v in ds.labels]
        return ds, table
    ds = load_labelled(str(images), None, config.size, 0, progress=progress)
    table = None
    if (Path(images) / "labels.csv").is_file():
        table, id_column = read_labels(images)
        table = table.assign(image_id=table[id_column].astype(str))
        table = table.set_index("image_id").reindex(ds.image_ids).reset_index()
    return ds, table


def _first(ds, table, n: int | None, where: str):
    """The first `n` images (all when None) and their rows."""
    if n is None:
        return ds, table
    if not 1 <= n <= len(ds):
        raise ConfigError(f"n is {n}; expected 1 .. {len(ds)} (the images in {where})")
    return ds.subset(np.arange(n)), None if table is None else table.iloc[:n]


def _manifest(out: Path, run_dir, info: dict, extra: dict) -> None:
    manifest = {"family": FAMILY, "run": str(Path(run_dir).absolute()), **extra, "config": info,
                "files": files.tree_files(out)}  # fmt: skip
    files.write_json(out / "manifest.json", manifest)


def write_translations(run_dir, images, out_dir, *, source: int = 0, reverse: bool = False,
                       n: int | None = None, seed: int = 0, progress: bool = True) -> Path:  # fmt: skip
    """Translate the first `n` (default: every) image of `images` into OUT as `<id>.png` (grey,
    [0, 1]) with their labels.csv rows and manifest.json. `images`: a folder `load_labelled`
    reads, phantom:head-MODALITY:N (N patients drawn from `seed`) or a `LabelledImages`."""
    config, params, info = load_run(run_dir, ("gen",))
    ds, table = _load_images(images, config, seed, progress)
    ds, table = _first(ds, table, n, ds.source)
    fake = translate(params, ds.images, config, source, reverse)
    out = Path(out_dir)
    for i, image in zip(ds.image_ids, fake, strict=True):
        grey = np.round(np.clip((image[..., 0] + 1) / 2, 0, 1) * 255).astype(np.uint8)
        with files.atomic_path(out / f"{i}.png", suffix=".png") as tmp:
            Image.fromarray(grey).save(tmp, format="PNG")
    if table is None:
        table = pd.DataFrame({"image_id": ds.image_ids, "patient_id": ds.patient_ids})
    files.write_text(out / "labels.csv", table.to_csv(index=False))
    direction = f"target -> source {source}" if reverse else f"source {source} -> target"
    spec = ds.source if ds.source.startswith("phantom:") else str(Path(ds.source))
    extra = {"images": spec, "n": len(ds), "direction": direction}
    if spec.startswith("phantom:"):
        extra["seed"] = seed
    _manifest(out, run_dir, info, extra)
    return out


def write_predictions(run_dir, images_dir, out_dir, *, progress: bool = True) -> Path:
    """predictions.csv (image_id, prediction) of every image of `images_dir`, and manifest.json."""
    config, params, info = load_run(run_dir, ("p",))
    ds, _ = _load_images(images_dir, config, 0, progress)
    values = predict(params, ds.images, config)
    out = Path(out_dir)
    table = pd.DataFrame({"image_id": ds.image_ids, "prediction": values.astype(np.float64)})
    files.write_text(out / "predictions.csv", table.to_csv(index=False))
    _manifest(out, run_dir, info, {"images": str(images_dir), "n": len(ds),
                                   "label": info.get("label")})  # fmt: skip
    return out
