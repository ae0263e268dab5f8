"""The volume parts of `jaxsyn evaluate`, and volume features for callers holding HU arrays.

For a model that makes CT volumes (HA-GAN, MMCGAN) held as numpy arrays in Hounsfield units:

    f_real = volume_features(real_hu, "pixels")                   # 2.5D: [N, 1024]
    f_real = volume_features(real_hu, "inception", weights=PATH)  # 2.5D: [N, 2048]
    clf = train_volume_classifier(real_hu, labels, model="resnet3d-10")
    f_real = volume_features(real_hu, "3d-domain", classifier=clf)  # 3D: [N, 512]
    metrics = sections.distribution_metrics(f_real, f_syn)        # FID, KID, PRDC, ...

volumes_hu are float [N, D, H, W] (or one channel [N, D, H, W, 1]) in HU. Two views of them:
  2.5D   `volume_planes`: the central axial, coronal and sagittal slices in the training window
         (-1024, 600) HU -> [0, 1], each resized to S x S (S: the largest side, or `size`):
         [N, 3, S, S, 1]. A 2D extractor runs on each plane; the features are averaged.
  2.5D FID by plane (`fid_2p5d`, MAISI's protocol: NV-Generate-CTMR scripts/compute_fid_2-5d_ct.py):
         for each plane XY (axial, slices along D), ZX (coronal, along H) and YZ (sagittal, along
         W), the slices of the centre band [int((1 - r) / 2 n), int((1 + r) / 2 n)) of every
         volume (r = CENTRE_BAND), each one 2D sample; one FID per plane over all those slices,
         and their mean. Deviations: slices are windowed like the rest here (-1024, 600) HU ->
         [0, 1] and resized to S x S, where MAISI clips to [-1000, 1000] HU and min-max scales
         the batch of slices; MAISI keeps every slice unless given a ratio (its example: 0.4).
  3D     `volume_grid`: the whole volume in the same window, trilinearly resized to
         `size`^3 (default `VOLUME_SIZE`): [N, S, S, S, 1], the input of the 3D ResNet
         (`jaxsyn.eval.classifiers3d`). Its "domain" features are the pooled last stage of a
         3D classifier trained on real volumes' labels (`train_volume_classifier`).
In the report (`jaxsyn evaluate` on folders of .nii/.nii.gz): fidelity per 2D extractor in 2.5D
(`fidelity.<name>_2p5d`: the metrics of the central slices' averaged features, and the plane FIDs
`xy`, `yz`, `zx` and their `mean` of `fid_2p5d`) and, with --labels (`--features domain` or by default when labels are
given), in the 3D domain features (`fidelity.domain_3d`); privacy: pGAN's attacks on the stacked
planes' pixels (`privacy.pairwise_attack_auc`, ...), again in the 3D domain features when the
classifier was trained on --features-train (`privacy.pairwise_attack_auc_domain_3d`, ...), with --umap in UMAP space (`..._umap`), and
nearest training volumes of synthetic ones: L2 on the planes' pixels, cosine in the 3D domain
features (DuMont et al. S.6); utility: `utility.tstr` with a 3D ResNet on `volume_grid`s.
Labels of a volume folder come from its labels.csv or table.csv (the phantom's), matched to the
file names by an id column (`id`, `patient_id`, or any column holding every file's id); a store's
from its table.parquet, by patient id.
Before anything is compared, every volume of a report (a NIfTI folder's or a store's) is put on
one isotropic grid, `volume_sets.common_grid`: the coarsest voxel side and the largest field of
view of the first real and first synthetic volume; planes, slices and 3D inputs are taken there,
so anisotropic scans are neither squashed nor padded against isotropic synthetic cubes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from jaxsyn.errors import ConfigError, DataError
from jaxsyn.eval import features as feats
from jaxsyn.eval.report import figure
from jaxsyn.eval.sections import (
    DOMAIN_SAW_MEMBERS,
    FIDELITY_NOTE,
    INCEPTION_PRECISION,
    attack_section,
    classifier_config,
    distribution_metrics,
    nearest_pairs,
    small_sample_note,
    targets,
    umap_figure,
    utility_figure,
)
from jaxsyn.eval.volume_sets import Grid, VolumeSet, common_grid, on_grid

WINDOW_HU = (-1024.0, 600.0)  # HA-GAN's CT window, the one the generators train in
# Ours: the 3D ResNet's input side. MedicalNet trains on larger crops; 64^3 keeps a ResNet-10
# affordable on CPU and still shows organs at the phantoms' 400 mm field of view (6 mm voxels).
VOLUME_SIZE = 64
EXTRACTORS_3D = ("3d-domain",)
# The centre band of slices per axis that the 2.5D plane FIDs use: issue 17's default, the middle
# half (MAISI's script takes all slices unless given a ratio; its usage example gives 0.4).
CENTRE_BAND = 0.5
# Why volume reports leave Inception out unless asked (`--features inception`).
INCEPTION_SKIPPED = (
    "Inception features skipped for volumes: by default volumes get pixel features only, since "
    "MAISI's 2.5D FID runs Inception over the middle half of the slices of every volume along "
    "three axes (384 slices of a 256³ volume, several CPU minutes per volume); ask for them with "
    "--features pixels --features inception."
)
# Plane -> the axis of [D, H, W] (RAS+ canonical: z, y, x) its slices are taken along.
PLANES_2P5D = {"xy": 0, "yz": 2, "zx": 1}


def _as_hu(volumes_hu) -> np.ndarray:
    v = np.asarray(volumes_hu)
    if v.ndim == 5 and v.shape[-1] == 1:
        v = v[..., 0]
    if v.ndim != 4 or len(v) == 0 or v.dtype.kind not in "iuf":
        raise DataError(f"volumes: got {v.dtype} {v.shape}, expected HU numbers [N, D, H, W]")
    return v


def _window01(hu: np.ndarray) -> np.ndarray:
    lo, hi = WINDOW_HU
    return np.clip((hu.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)


def _planes_one(hu: np.ndarray, size: int | None) -> np.ndarray:
    from jaxsyn.data.images import resize
    from jaxsyn.data.preview import orthogonal_slices

    tiles = orthogonal_slices(hu, WINDOW_HU).astype(np.float32) / 255  # [S, 3S], radiological
    s = tiles.shape[0]
    planes = tiles.reshape(s, 3, s).transpose(1, 0, 2)[..., None]
    return np.stack([resize(x, size) for x in planes]) if size else planes


def _grid_one(hu: np.ndarray, size: int) -> np.ndarray:
    from scipy import ndimage

    x = _window01(hu)
    if x.shape != (size,) * 3:
        x = ndimage.zoom(x, [size / n for n in x.shape], order=1, grid_mode=True, mode="nearest")
    return x[..., None].astype(np.float32)


def volume_planes(volumes_hu, size: int | None = None) -> np.ndarray:
    """Central axial, coronal and sagittal slices in [0, 1]: float32 [N, 3, S, S, 1]."""
    v = _as_hu(volumes_hu)
    return np.stack([_planes_one(x, size or max(v.shape[1:])) for x in v])


def volume_grid(volumes_hu, size: int = VOLUME_SIZE) -> np.ndarray:
    """Whole volumes windowed to [0, 1] and resized to size^3: float32 [N, S, S, S, 1]."""
    return np.stack([_grid_one(x, size) for x in _as_hu(volumes_hu)])


def planes_features(extract, planes: np.ndarray, *, progress: bool = False, name: str = ""):
    """A 2D extractor's features of each plane [N, 3, S, S, C], averaged: [N, F]."""
    per_plane = [
        feats.extract(extract, planes[:, k], progress=progress, name=name) for k in range(3)
    ]
    return np.mean(per_plane, axis=0)


def train_volume_classifier(
    volumes_hu, labels, *, task: str = "multilabel", model: str = "resnet3d-10",
    size: int = VOLUME_SIZE, epochs: int = 10, seed: int = 0, progress: bool = False,
) -> tuple[dict, object]:  # fmt: skip
    """A 3D ResNet (`model` in `sections.UTILITY_MODELS_3D`) trained on `volume_grid(volumes_hu,
    size)` and labels ([N, L] 0/1 for "multilabel", [N] class indices for "multiclass"):
    (variables, config), the `classifier` that `volume_features(..., "3d-domain")` takes."""
    from jaxsyn.eval import classifiers

    y = np.asarray(labels)
    outputs = (y.reshape(len(y), -1).shape[1]) if task == "multilabel" else int(y.max()) + 1
    config = classifier_config(model, 1, outputs)
    if getattr(config, "spatial_dims", 2) != 3:
        raise ConfigError(f"model {model!r} is a 2D classifier; volumes take a resnet3d-*")
    x = volume_grid(volumes_hu, size)
    variables = classifiers.train_classifier(config, x, y, task=task, epochs=epochs, seed=seed,
                                             batch_size=8, progress=progress)  # fmt: skip
    return variables, config


def volume_features(
    volumes_hu, extractor="pixels", *, weights: str | None = None, classifier=None,
    size: int | None = None, batch: int = 8, progress: bool = False,
) -> np.ndarray:  # fmt: skip
    """Features float32 [N, F] of volumes in HU [N, D, H, W].

    extractor: "pixels" or "inception" (`weights`: its file; default the installed FID weights)
    or any 2D extractor callable: 2.5D, on `volume_planes(volumes_hu, size)` averaged over the
    three planes; "3d-domain": `classifier` = (variables, config) from
    `train_volume_classifier`, on `volume_grid(volumes_hu, size or VOLUME_SIZE)`. Volumes are
    converted `batch` at a time, so memory stays bounded by the batch."""
    from jaxsyn.eval import classifiers

    v = _as_hu(volumes_hu)
    if extractor == "3d-domain":
        if classifier is None:
            raise ConfigError("extractor '3d-domain' needs classifier=(variables, config), e.g. "
                              "from train_volume_classifier")  # fmt: skip
        variables, config = classifier
        out = [
            classifiers.embed(variables, config, volume_grid(v[s : s + batch], size or VOLUME_SIZE))
            for s in tqdm(range(0, len(v), batch), "3d features", disable=not progress)
        ]
        return np.concatenate(out).astype(np.float32)
    extract = extractor if callable(extractor) else feats.builtin(extractor, weights)
    side = size or max(v.shape[1:])
    out = [
        planes_features(extract, volume_planes(v[s : s + batch], side))
        for s in tqdm(range(0, len(v), batch), "2.5d features", disable=not progress)
    ]
    return np.concatenate(out).astype(np.float32)


def band_slices(hu: np.ndarray, axis: int, size: int, band: float = CENTRE_BAND) -> np.ndarray:
    """The centre band of slices of `hu` [D, H, W] along `axis`, windowed to [0, 1] and resized
    to size x size: float32 [K, size, size, 1], K = int((1 + band) / 2 n) - int((1 - band) / 2 n)
    (as MAISI's script; at least one slice)."""
    from jaxsyn.data.images import resize

    if not 0 < band <= 1:
        raise ConfigError(f"band: got {band!r}, expected a fraction of slices in (0, 1]")
    n = hu.shape[axis]
    lo, hi = int((1 - band) / 2 * n), int((1 + band) / 2 * n)
    x = np.moveaxis(_window01(hu), axis, 0)[lo : max(hi, lo + 1)]
    return np.stack([resize(sl[..., None], size) for sl in x])


def fid_2p5d(real_hu, synthetic_hu, extractor="pixels", *, size: int, weights=None,
             band: float = CENTRE_BAND, progress: bool = False) -> dict:  # fmt: skip
    """MAISI's 2.5D FID (module docstring): {"xy", "yz", "zx": FID over the centre-band slices of
    every volume, "mean": their mean, "slices": {plane: [real, synthetic] slice counts}}.

    real_hu, synthetic_hu: iterables of HU volumes [D, H, W] (read one at a time, e.g. from
    files); extractor: "pixels", "inception" or a 2D extractor callable; slices resized to
    `size`. Memory: one volume's slices and about 2 F^2 numbers per plane and set
    (`fid.FeatureStats`, exact from the rows while there are fewer than F)."""
    from jaxsyn.eval.fid import FeatureStats, fid_of_stats

    extract = extractor if callable(extractor) else feats.builtin(extractor, weights)
    stats = {}
    for which, volumes in (("real", real_hu), ("synthetic", synthetic_hu)):
        for hu in tqdm(volumes, f"2.5d FID, {which}", unit="vol", disable=not progress):
            hu = _as_hu(np.asarray(hu)[None])[0]
            for plane, axis in PLANES_2P5D.items():
                f = feats.extract(extract, band_slices(hu, axis, size, band), progress=False)
                key = (plane, which)
                stats.setdefault(key, FeatureStats(f"{which} {plane} slices")).update(f)
    out = {plane: fid_of_stats(stats[plane, "real"], stats[plane, "synthetic"])
           for plane in PLANES_2P5D}  # fmt: skip
    out["mean"] = float(np.mean([out[p] for p in PLANES_2P5D]))
    out["slices"] = {p: [stats[p, w].n for w in ("real", "synthetic")] for p in PLANES_2P5D}
    return out


# ------------------------------------------------------------------------------------------------
# Folders of NIfTI volumes and stores, on a common isotropic grid


def read_set(volumes: VolumeSet, grid: Grid, grid_size: int | None = None,
             progress: bool = True):  # fmt: skip
    """(planes [N, 3, S, S, 1] with S = grid.size, 3D inputs [N, G, G, G, 1] or None) of a
    set's volumes on `grid`, one volume in memory at a time."""
    planes, grids = [], []
    n = len(volumes)
    for hu in tqdm(on_grid(volumes, grid), "volumes", total=n, unit="vol",
                   disable=not progress or n < 8):  # fmt: skip
        planes.append(_planes_one(hu, None))
        if grid_size:
            grids.append(_grid_one(hu, grid_size))
    return np.stack(planes), np.stack(grids) if grid_size else None


def read_folder(folder, plane_size: int | None = None, grid_size: int | None = None,
                progress: bool = True, grid: Grid | None = None):  # fmt: skip
    """(planes [N, 3, S, S, 1], grids [N, G, G, G, 1] or None, ids) of a folder's (or a
    store's) volumes on `grid` (default: the folder's own `common_grid`); planes resized to
    `plane_size` when given."""
    volumes = VolumeSet(folder)
    planes, grids = read_set(volumes, grid or common_grid(volumes), grid_size, progress)
    if plane_size and plane_size != planes.shape[2]:
        from jaxsyn.data.images import resize

        planes = np.stack([np.stack([resize(x, plane_size) for x in p]) for p in planes])
    return planes, grids, volumes.ids


def load_planes(folder: str | os.PathLike, size: int | None = None, progress: bool = True):
    """The central axial, coronal and sagittal slices of every NIfTI volume in `folder` (or
    store), on the folder's isotropic `common_grid`, in the training HU window (-1024, 600) ->
    [0, 1]: float32 [N, 3, S, S, 1] (S: the grid's side, or `size`), and the volume ids."""
    planes, _, ids = read_folder(folder, size, None, progress)
    return planes, ids


def volume_labels(folder, ids: list[str], labels: list[str]) -> pd.DataFrame:
    """The `labels` columns of a volume folder's labels.csv (or table.csv, or synthetic.parquet
    as MMCGAN's `jaxsyn generate` writes; a store's table.parquet), one row per id (a store's
    volumes by their patient ids: `VolumeSet.patient_ids`)."""
    folder = Path(folder)
    names = ("labels.csv", "table.csv", "synthetic.parquet", "table.parquet")
    found = [folder / n for n in names if (folder / n).is_file()]
    if not found:
        raise DataError(f"{folder}: none of {names}; expected one with the columns {labels}")
    table = pd.read_parquet(found[0]) if found[0].suffix == ".parquet" else pd.read_csv(found[0])
    absent = [c for c in labels if c not in table.columns]
    if absent:
        raise DataError(f"{found[0]}: no column(s) {absent}; expected {labels}")
    names = [c for c in ("id", "patient_id") if c in table.columns] + list(table.columns)
    for c in names:
        keys = table[c].astype(str)
        if keys.is_unique and set(ids) <= set(keys):
            return table.set_index(keys).loc[ids, labels].reset_index(drop=True)
    raise DataError(f"{found[0]}: no column holds every volume's id (e.g. {ids[0]!r})")


# ------------------------------------------------------------------------------------------------
# Report sections

# Fewest volumes per set: FID needs a covariance of each set, precision/recall a neighbour.
MIN_VOLUMES = 2


def check_sizes(sets: dict[str, VolumeSet]) -> None:
    """Refuse, naming the flag and folder, a real or synthetic set too small for any number."""
    for name in ("real", "synthetic"):
        if len(sets[name]) < MIN_VOLUMES:
            raise DataError(
                f"--{name} {sets[name].path}: {len(sets[name])} volume; expected at least "
                f"{MIN_VOLUMES} (FID needs the covariance of each set)"
            )


def volumes(report, real, synthetic, holdout, features, umap, domain, seed, progress,
            volume_size: int = VOLUME_SIZE) -> None:  # fmt: skip
    """Fidelity and privacy of volume folders: 2.5D per 2D extractor; in the 3D domain features
    when `domain` = (labels, model, epochs) has labels and `features` is None or names domain."""
    labels, model, epochs, features_train = domain
    extractors = {"pixels": None, **(features or {})}
    use_3d = "domain" in extractors or (features is None and bool(labels))
    extractors.pop("domain", None)
    if use_3d and not labels:
        raise ConfigError("--features domain needs --labels: the 3D classifier is trained on them")
    sets = {"real": VolumeSet(real), "synthetic": VolumeSet(synthetic)}
    if holdout:
        sets["holdout"] = VolumeSet(holdout)
    check_sizes(sets)
    grid = common_grid(sets["real"], sets["synthetic"])
    side = volume_size if use_3d else None
    read = {name: read_set(v, grid, side, progress) for name, v in sets.items()}
    (p_real, g_real), (p_syn, g_syn) = read["real"], read["synthetic"]
    p_hold, g_hold = read.get("holdout", (None, None))
    size = grid.size
    report.numbers("inputs", {"n_real": len(p_real), "n_synthetic": len(p_syn),
                              "n_holdout": 0 if p_hold is None else len(p_hold),
                              "grid_spacing_mm": grid.spacing, "grid_size": grid.size,
                              "plane_size": size, "volume_size": side})  # fmt: skip
    report.text("inputs", grid.describe())
    rows = min(4, len(p_real), len(p_syn))
    fig, ax = figure(6, 2 * rows * 0.8 + 0.5, ncols=2, nrows=rows)
    for r in range(rows):
        for c, (v, label) in enumerate(((p_real, "real"), (p_syn, "synthetic"))):
            ax[r, c].imshow(np.concatenate(list(v[r, ..., 0]), axis=1), cmap="gray", vmin=0, vmax=1)
            ax[r, c].axis("off")
            ax[0, c].set_title(label, fontsize=8)
    report.figure("fidelity", "slices", fig, caption="central axial, coronal, sagittal slices "
                  f"on the common grid ({grid.spacing:.4g} mm, {grid.size}³)")  # fmt: skip
    if features is None:
        report.text("fidelity", INCEPTION_SKIPPED)
    if not use_3d:
        report.text("fidelity", "3D domain features skipped: they need --labels (a 3D "
                    "classifier is trained on --real's labels).")  # fmt: skip

    report.text("fidelity", FIDELITY_NOTE)
    for name, path in extractors.items():
        extract = feats.builtin(name, path)
        f_real, f_syn = (planes_features(extract, p, progress=progress, name=name)
                         for p in (p_real, p_syn))  # fmt: skip
        if umap:
            umap_figure(report, f"{name}_2p5d", f_real, f_syn, seed)
        small_sample_note(report, f"{name}_2p5d", len(f_real), len(f_syn), f_real.shape[1])
        planes = fid_2p5d(on_grid(sets["real"], grid), on_grid(sets["synthetic"], grid), extract,
                          size=size, progress=progress)  # fmt: skip
        report.numbers(f"fidelity.{name}_2p5d", distribution_metrics(f_real, f_syn, seed) | planes,
                       settings={"extractor": name, "weights": path, "features": "fid, kid, ...: "
                                 "mean of the axial, coronal and sagittal central slices' "
                                 "features; xy, yz, zx: MAISI's 2.5D FID, one FID per plane over "
                                 f"the middle {CENTRE_BAND:.0%} of slices along its axis of every "
                                 "volume (each slice a sample); mean: their mean",
                                 "slice_size": size, "grid_spacing_mm": grid.spacing,
                                 "window_hu": list(WINDOW_HU)}
                       | ({"precision": INCEPTION_PRECISION} if name == "inception" else {}))  # fmt: skip

    def tiles(p):  # the three planes side by side: [N, S, 3S, 1], for pictures and pixel space
        return p.transpose(0, 2, 1, 3, 4).reshape(len(p), size, 3 * size, 1)

    pix_real, pix_syn = feats.pixels(tiles(p_real)), feats.pixels(tiles(p_syn))
    nearest_pairs(report, "nearest", tiles(p_syn), tiles(p_real), pix_syn, pix_real,
                  metric="l2", space="pixel space of the three central slices")  # fmt: skip
    d_real = d_syn = d_hold = None
    if use_3d:
        t_real = volume_labels(real, sets["real"].patient_ids(), labels)
        task, outputs, y = targets(labels, t_real)
        config = classifier_config(model, 1, outputs)
        if getattr(config, "spatial_dims", 2) != 3:
            raise ConfigError(f"--utility-model {model!r} is 2D; volumes take {EXTRACTORS_3D} "
                              "features from a resnet3d-*")  # fmt: skip
        from jaxsyn.eval import classifiers

        g_fit, y_fit = g_real, y(t_real)
        if features_train is not None:  # issue 17.5a: an extractor that never saw the members
            fit_set = VolumeSet(features_train)
            g_fit = read_set(fit_set, grid, side, progress)[1]
            y_fit = y(volume_labels(features_train, fit_set.patient_ids(), labels))
        else:
            report.text("privacy", DOMAIN_SAW_MEMBERS)
        variables = classifiers.train_classifier(config, g_fit, y_fit, task=task,
                                                 epochs=epochs, batch_size=8, seed=0,
                                                 progress=progress)  # fmt: skip
        d_real, d_syn = (classifiers.embed(variables, config, g) for g in (g_real, g_syn))
        d_hold = None if g_hold is None else classifiers.embed(variables, config, g_hold)
        if umap:
            umap_figure(report, "domain_3d", d_real, d_syn, seed)
        small_sample_note(report, "domain_3d", len(d_real), len(d_syn), d_real.shape[1])
        report.numbers("fidelity.domain_3d", distribution_metrics(d_real, d_syn, seed),
                       settings={"extractor": f"{model} trained on {'--features-train' if features_train else '--real'}'s "
                                 f"{labels} (seed 0, "
                                 f"{epochs} epochs), pooled last stage", "volume_size": side,
                                 "grid_spacing_mm": grid.spacing,
                                 "window_hu": list(WINDOW_HU)})  # fmt: skip
        nearest_pairs(report, "nearest_domain_3d", tiles(p_syn), tiles(p_real), d_syn, d_real,
                      metric="cosine", space="the real-trained 3D classifier's features")  # fmt: skip
    if p_hold is None:
        report.text("privacy", "Membership attacks skipped: they need --holdout.")
        report.numbers("privacy", {"pairwise_attack_auc": None, "distribution_attack_auc": None})
        return
    attack_section(report, "pixels of the three central slices", pix_real, pix_syn,
                   feats.pixels(tiles(p_hold)), seed=seed, umap=umap)  # fmt: skip
    if d_hold is not None and features_train is not None:
        attack_section(report, "3D domain features", d_real, d_syn, d_hold, seed=seed,
                       umap=umap, key_suffix="_domain_3d")  # fmt: skip


def volume_utility(report, real, synthetic, test, labels, model, epochs, augment, progress,
                   volume_size: int = VOLUME_SIZE, val=None) -> None:  # fmt: skip
    """TRTR vs TSTR with a 3D ResNet on the volume folders' labels, tested on `test`; `val` (a
    labelled real folder) selects each classifier's epoch (`utility.tstr`'s val)."""
    from jaxsyn.eval import utility

    found = {"real": VolumeSet(real), "synthetic": VolumeSet(synthetic), "test": VolumeSet(test)}
    if val is not None:
        found["val"] = VolumeSet(val)
    grid = common_grid(found["real"], found["synthetic"])
    sets = {}
    for name, v in found.items():
        g = read_set(v, grid, volume_size, progress)[1]
        sets[name] = (g, volume_labels(v.path, v.patient_ids(), labels))
    task, outputs, y = targets(labels, sets["real"][1])
    config = classifier_config(model, 1, outputs)
    if getattr(config, "spatial_dims", 2) != 3:
        raise ConfigError(f"--utility-model {model!r} is 2D; volumes take a resnet3d-*")
    pairs = [(g, y(t)) for g, t in sets.values()]
    result = utility.tstr(*pairs[:3], model=config, task=task, epochs=epochs, augment=augment,
                          batch_size=8, val=pairs[3] if val is not None else None,
                          progress=progress)  # fmt: skip
    report.text("utility", f"Model selection: {result.model_selection}" + (
        "" if val is not None else " (give --val, labelled real volumes, to select epochs)"))  # fmt: skip
    report.numbers("utility", result.asdict(), settings={"labels": labels, "model": model,
                   "volume_size": volume_size, "grid_spacing_mm": grid.spacing,
                   "window_hu": list(WINDOW_HU)})  # fmt: skip
    utility_figure(report, result)
