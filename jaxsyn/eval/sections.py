"""Report sections that images, volumes and other callers share (MMCGAN's evaluation, say).

    report = Report("reports/ct", title="MMCGAN, epoch 300")
    f_real = volumes.volume_features(real_hu, "pixels")
    f_syn = volumes.volume_features(synthetic_hu, "pixels")
    report.numbers("fidelity.pixels_2p5d", distribution_metrics(f_real, f_syn))
    umap_figure(report, "pixels_2p5d", f_real, f_syn)
    attack_section(report, "pixels", f_real, f_syn, f_holdout, umap=True)
    report.write()

distribution_metrics  FID (full sets), FID_rr, FID_rs and r_FID on equal halves over random
                      splits, KID, MMD, precision/recall/density/coverage of two feature sets
                      [N, F] (`jaxsyn.eval.fid`, `jaxsyn.eval.fidelity`).
umap_figure           a 2-d UMAP fitted on the real features and applied to both (umap-learn).
attack_section        pGAN's pairwise and distribution attacks (`jaxsyn.eval.attacks`) on
                      training members, the holdout's first half ("holdout") and second half
                      ("test") against the synthetic set in a given space, optionally again in
                      pGAN's 32-d UMAP and in ours (min_dist 1); AUCs, top tables and ROC
                      curves in the report.
nearest_pairs         each of the first synthetic samples beside its nearest training sample
                      (l2 or cosine, `jaxsyn.eval.neighbours`), pictures and numbers.
"""

from __future__ import annotations

import warnings

import numpy as np

from jaxsyn.errors import ConfigError
from jaxsyn.eval import attacks, fidelity
from jaxsyn.eval.neighbours import nearest_neighbours
from jaxsyn.eval.report import Report, figure

GRID = 8  # images per row in the grids
KID_SUBSET = 1000  # clean-fid / torch-fidelity default subset size (shrinks to small sets)


# What `distribution_metrics` computes, as the report says it (once per fidelity section).
FIDELITY_NOTE = (
    "How the fidelity numbers are computed, per feature set: fid is the FID of the full sets (N "
    "real vs M synthetic rows). fid_real_real (FID_rr) is the FID of two disjoint real halves and "
    "fid_halves (FID_rs) that of one of those halves vs as many synthetic rows drawn without "
    "replacement (h = fid_half_size = min(N // 2, M) rows each), both the mean over fid_splits "
    "random splits; fid_ratio (r_FID) = fid_real_real / fid_halves: about 1 when the synthetic "
    "set is as close to the real data as the real data is to itself. fid and fid_halves differ "
    "by FID's 1/n bias, so only equal sizes are compared. KID: the cubic-kernel unbiased MMD^2 "
    "over 100 subsets of min(1000, N, M); MMD: RBF kernel, median-distance bandwidth; precision, "
    "recall, density, coverage: k = 5 nearest neighbours (fewer for tiny sets)."
)
# Said in the report when the domain feature extractor was trained on --real (issue 17.5a).
DOMAIN_SAW_MEMBERS = (
    "The domain feature extractor was trained on --real, the generator's training data, whose "
    "samples are the attack's members: its features have seen the members, so the membership "
    "attacks in its feature space are skipped (its fidelity numbers and nearest neighbours are "
    "reported). Give --features-train (labelled real data disjoint from --real, --holdout and "
    "--test) to train it elsewhere and run them."
)
# How the distribution attack's neighbourhoods are chosen (issue 17.7), said once per report.
QUANTILE_NOTE = (
    "Distribution attack: distribution_attack_auc uses pGAN's quantile (1 % of all "
    "candidate-synthetic distances in input space, 0.1 % in UMAP space, Sun et al. 2021 §6.5), "
    "at which every candidate has about quantile x n_synthetic random neighbours, more than a "
    "copying generator's n_synthetic / n_train copies unless quantile x n_train << 1: there it "
    "cannot flag copies. distribution_attack_auc_copies uses a quantile that can (ours, "
    "attacks.copy_quantile): n_members / (2 n_candidates n_train), half the share of "
    "candidate-synthetic pairs that copies of the members would be."
)
# Said once per report with --umap (issue 17.7).
UMAP_NOTE = (
    "UMAP-space attacks: _umap keys are in pGAN's 32-d UMAP (n_neighbors 20, min_dist 0), "
    "_umap_spread keys in ours, the same with min_dist 1.0; both fitted on candidates + "
    "synthetic. At min_dist 0 UMAP packs a held-out sample into the clump of a training "
    "sample's copies, where it counts them: a generator of noisy copies (10 per image, noise 5 % "
    "of the range, 300 training radiographs) scored 0.80 at the copy quantile there and 0.91-0.92 "
    "in ours (tests/eval/test_attack_sizes.py)."
)
# The UMAP spaces of the attacks: (key tag, umap.UMAP settings, their source), issue 17.7.
UMAP_SPACES = (
    ("umap", attacks.UMAP_SETTINGS, "pGAN notebook 2"),
    ("umap_spread", attacks.UMAP_SETTINGS_SPREAD, "ours: pGAN's with min_dist 1.0, where UMAP "
     "does not pack a held-out sample into the clump of a training sample's copies"),
)  # fmt: skip
# The settings line of Inception numbers (jaxsyn.eval.inception, issue 17.8).
INCEPTION_PRECISION = "float32, every convolution at Precision.HIGHEST (no TF32 on GPUs)"


def small_sample_note(report, name: str, n_real: int, n_syn: int, n_features: int):
    """A note in the report (and a warning) when either set has fewer samples than features:
    the covariances FID compares are then rank-deficient and FID (and r_FID) mostly measures
    the sample sizes; Heusel et al. (TTUR) recommend at least 10,000 samples."""
    if min(n_real, n_syn) >= n_features:
        return
    message = (f"fidelity.{name}: FID from {n_real} real and {n_syn} synthetic samples of "
               f"{n_features} features (fewer samples than features: rank-deficient "
               "covariances) is dominated by its small-sample bias and noise; compare it only "
               "between sets of the same sizes, not with published values (TTUR recommends "
               "at least 10,000 samples).")  # fmt: skip
    report.text("fidelity", message)
    warnings.warn(message, stacklevel=2)


def distribution_metrics(f_real: np.ndarray, f_syn: np.ndarray, seed: int = 0) -> dict:
    """Every fidelity number of two feature sets, real [N, F] and synthetic [M, F] (a dict).

    fid            FID of the full sets, N vs M rows.
    fid_real_real  FID_rr: FID between two disjoint real halves of h = min(N // 2, M) rows,
                   averaged over `fid.FID_SPLITS` random splits (`fid.fid_halves`).
    fid_halves     FID_rs on the same splits: a real half vs h synthetic rows (no replacement).
    fid_ratio      r_FID = fid_real_real / fid_halves (medigan eq. 5 on equal sizes): about 1
                   for a synthetic set as close as real data is to itself, not fid_real_real /
                   fid (whose sizes differ, so it reads about 1.5-2 for a perfect generator).
    fid_half_size, fid_splits  h and the number of splits. Sets too small for halves (N < 4 or
                   M < 2) give NaN for the four split numbers.
    kid_mean, kid_std, mmd, precision, recall, density, coverage: `jaxsyn.eval.fidelity`."""
    if min(len(f_real) // 2, len(f_syn)) >= 2:
        halves = fidelity.fid_halves(f_real, f_syn, seed=seed)
    else:
        halves = dict.fromkeys(("fid_real_real", "fid_halves", "fid_ratio"), float("nan"))
        halves |= {"fid_half_size": 0, "fid_splits": 0}
    kid_mean, kid_std = fidelity.kid(f_real, f_syn, subset_size=KID_SUBSET, seed=seed)
    return {
        "fid": fidelity.fid(f_real, f_syn),
        **halves,
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "mmd": fidelity.mmd(f_real, f_syn, seed=seed),
        **fidelity.prdc(f_real, f_syn, k=min(fidelity.PRDC_K, len(f_real) - 1, len(f_syn) - 1)),
    }


def _umap():
    try:
        import umap as umap_learn
    except ImportError as e:
        raise ConfigError("--umap needs umap-learn: pip install 'jaxsyn[umap]'") from e
    return umap_learn


def umap_figure(
    report: Report, name: str, real_features, synthetic_features, seed: int = 0,
    section: str = "fidelity",
) -> None:  # fmt: skip
    """A 2-d UMAP (umap-learn defaults, `random_state` = seed) fitted on the real features [N, F]
    and applied to the synthetic ones [M, F], as `section`'s figure `umap_<name>`."""
    reducer = _umap().UMAP(n_components=2, random_state=seed).fit(np.asarray(real_features))
    e_real, e_syn = reducer.embedding_, reducer.transform(np.asarray(synthetic_features))
    fig, ax = figure(5, 4.5)
    ax[0, 0].scatter(*e_real.T, s=4, alpha=0.6, label="real")
    ax[0, 0].scatter(*e_syn.T, s=4, alpha=0.6, label="synthetic")
    ax[0, 0].legend(fontsize=7)
    ax[0, 0].set(title=f"UMAP of {name} features (fitted on real)")
    report.figure(section, f"umap_{name}", fig, caption=f"UMAP of {name} features")


def attack_section(
    report: Report, space: str, real, synthetic, holdout, *, seed: int = 0, umap: bool = False,
    section: str = "privacy", key_suffix: str = "",
) -> bool:  # fmt: skip
    """Both pGAN attacks in one space (rows of [N, ...] arrays, flattened); False when the holdout
    is too small (a note says so). Numbers: `<section>.pairwise_attack_auc<key_suffix>` (by the
    minimum distance; `_median`, `_ratio` the other scores), `distribution_attack_auc` at pGAN's
    quantile and `distribution_attack_auc_copies` at `attacks.copy_quantile` (one that can flag
    copies, `QUANTILE_NOTE`), and with `umap` the same AUCs in pGAN's 32-d UMAP (`..._umap`)
    and in ours with min_dist 1 (`..._umap_spread`, `UMAP_SPACES`);
    details under `<section>.pairwise_attack<key_suffix>`, `distribution_attack<key_suffix>` and
    `distribution_attack_copies<key_suffix>`."""
    half = len(holdout) // 2
    n = 3 * min(len(real), half, len(holdout) - half)
    if n < 6:
        report.text(section, f"Membership attacks in {space} skipped: {len(holdout)} holdout "
                    "samples; expected at least 4.")  # fmt: skip
        return False
    candidates, member, groups = attacks.make_candidates(
        real, holdout[:half], holdout[half:], n=n, seed=seed
    )
    found = attacks.membership_attacks(candidates, member, synthetic, groups=groups, seed=seed)
    pw, dist = found["pairwise"], found["distribution"]
    q_copies = attacks.copy_quantile(n, int(member.sum()), len(real))
    copies = attacks.membership_attacks(candidates, member, synthetic, groups=groups,
                                        quantile=q_copies, seed=seed)["distribution"]  # fmt: skip
    s = key_suffix
    if not s:
        report.text(section, QUANTILE_NOTE)
    report.numbers(section, {
        f"pairwise_attack_auc{s}": pw.by_min.auc,
        f"pairwise_attack_auc_median{s}": pw.by_median.auc,
        f"pairwise_attack_auc_ratio{s}": pw.by_ratio.auc,
        f"distribution_attack_auc{s}": dist.by_count.auc,
        f"distribution_attack_auc_copies{s}": copies.by_count.auc,
    })  # fmt: skip
    report.numbers(f"{section}.attack_settings{s}", {
        "space": space, "metric": "l2", "n_candidates": n, "n_train": len(real),
        "n_synthetic": len(synthetic), "quantile": dist.quantile,
        "quantile_source": "pGAN (Sun et al. 2021 §6.5): 1 % in input space",
        "quantile_copies": q_copies,
        "quantile_copies_source": "ours: n_members / (2 n_candidates n_train)",
        "groups": "train / holdout first half / holdout second half as test"})  # fmt: skip
    report.numbers(f"{section}.distribution_attack_copies{s}", {
        "auc_by_group": copies.by_count.auc_by_group, "threshold": copies.threshold,
        "top_k_hits": copies.by_count.top_k_hits, "counts": copies.counts})  # fmt: skip
    report.numbers(f"{section}.pairwise_attack{s}", {
        "auc_by_group": pw.by_min.auc_by_group, "top_k": pw.by_min.top_k,
        "top_k_hits": pw.by_min.top_k_hits, "top_third_hits": pw.by_min.top_third_hits,
        "min_distance": pw.min_distance})  # fmt: skip
    report.numbers(f"{section}.distribution_attack{s}", {
        "auc_by_group": dist.by_count.auc_by_group, "threshold": dist.threshold,
        "top_k_hits": dist.by_count.top_k_hits, "counts": dist.counts})  # fmt: skip
    cut = {"pairwise": attacks.cutoff_curves(pw.by_min, pw.groups),
           "distribution": attacks.cutoff_curves(dist.by_count, dist.groups)}  # fmt: skip
    report.numbers(f"{section}.cutoff{s}", {
        **{f"{a}_table": attacks.cutoff_table(c, (attacks.TOP_K, n // 3)) for a, c in cut.items()},
        **{f"{a}_curves": c for a, c in cut.items()}},
        settings={"what": "share of each candidate group among the k highest-ranked candidates, "
                  "k = 1..n (pGAN Fig. S4, Table S1 at 50 and n // 3); pairwise by minimum "
                  "distance, distribution at pGAN's quantile"})  # fmt: skip
    curves = {"pairwise (min distance)": pw.by_min, "distribution, pGAN's 1 %": dist.by_count,
              "distribution, copy quantile": copies.by_count}  # fmt: skip
    if umap:
        _umap()  # a clear error before the fit if umap-learn is missing
        if not s:
            report.text(section, UMAP_NOTE)
        for tag, settings, source in UMAP_SPACES:
            embedded = attacks.umap_embedding(candidates, synthetic, settings)  # one fit each
            found = attacks.membership_attacks(embedded[0], member, embedded[1], groups=groups,
                                               quantile=attacks.QUANTILE_EMBEDDING, seed=seed)  # fmt: skip
            pu, du = found["pairwise"], found["distribution"]
            cu = attacks.membership_attacks(embedded[0], member, embedded[1], groups=groups,
                                            quantile=q_copies, seed=seed)["distribution"]  # fmt: skip
            report.numbers(section, {
                f"pairwise_attack_auc_{tag}{s}": pu.by_min.auc,
                f"pairwise_attack_auc_ratio_{tag}{s}": pu.by_ratio.auc,
                f"distribution_attack_auc_{tag}{s}": du.by_count.auc,
                f"distribution_attack_auc_copies_{tag}{s}": cu.by_count.auc,
            })  # fmt: skip
            report.numbers(f"{section}.{tag}_attack_settings{s}", {
                "space": f"UMAP of {space}", "quantile": du.quantile,
                "quantile_source": "pGAN (Sun et al. 2021 §6.5): 0.1 % in UMAP space",
                "quantile_copies": q_copies, **settings, "settings_source": source,
                "fitted_on": "candidates + synthetic"})  # fmt: skip
            label = "UMAP" if tag == "umap" else "UMAP min_dist 1"
            curves |= {f"pairwise, {label}": pu.by_min, f"distribution, {label}": du.by_count}
    fig, ax = figure(13.5, 3.2, ncols=3)
    for name, r in curves.items():
        ax[0, 0].plot(r.roc_fpr, r.roc_tpr, label=f"{name}: AUC {r.auc:.3f}")
    ax[0, 0].plot([0, 1], [0, 1], "k:", lw=0.8)
    ax[0, 0].set(xlabel="false positive rate", ylabel="true positive rate", title="attack ROC")
    ax[0, 0].legend(fontsize=7)
    low = np.asarray(pw.min_distance)
    for g in ("train", "holdout", "test"):
        ax[0, 1].hist(low[np.asarray(pw.groups) == g], bins=30, alpha=0.5, label=g)
    ax[0, 1].set(xlabel=f"distance to nearest synthetic ({space})", title="candidates")
    ax[0, 1].legend(fontsize=7)
    for (attack, c), style in zip(cut.items(), ("-", "--"), strict=True):
        for g in ("train", "holdout", "test"):
            ax[0, 2].plot(c["cut_off"], c[g], style, label=f"{attack}: {g}")
    ax[0, 2].set(xlabel="cut-off k (top-ranked candidates)", ylabel="share of the top k",
                 title="cut-off curves", ylim=(0, 1))  # fmt: skip
    ax[0, 2].legend(fontsize=6)
    report.figure(section, f"attacks{s}", fig, caption=f"membership attacks in {space}: ROC, "
                  "distances and cut-off curves (pGAN Fig. S4)")  # fmt: skip
    return True


def nearest_pairs(
    report: Report, name: str, synthetic_images, real_images, f_syn, f_real, *,
    metric: str = "l2", space: str = "", section: str = "privacy",
) -> None:  # fmt: skip
    """The first `GRID` synthetic samples (top) over their nearest real training samples (bottom)
    by `metric` between features f_syn [M, F] and f_real [N, F]; pictures are images [., H, W, C]
    in [0, 1]. Numbers under `<section>.<name>`: the distances and the training indices."""
    k = min(GRID, len(f_syn))
    d, idx = nearest_neighbours(np.asarray(f_syn)[:k], f_real, metric=metric)
    fig, ax = figure(GRID * 1.2, 2 * 1.3, ncols=GRID, nrows=2)
    for j in range(GRID):
        for row in (0, 1):
            ax[row, j].axis("off")
        if j < k:
            for row, image in ((0, synthetic_images[j]), (1, real_images[idx[j, 0]])):
                ax[row, j].imshow(image.mean(-1), cmap="gray", vmin=0, vmax=1)
            ax[1, j].set_title(f"d={d[j, 0]:.3g}", fontsize=7)
    report.figure(section, name, fig, caption=f"synthetic samples (top) and their nearest "
                  f"training samples (bottom, {metric} in {space})")  # fmt: skip
    report.numbers(f"{section}.{name}", {"distance": d[:, 0], "train_index": idx[:, 0]},
                   settings={"metric": metric, "space": space})  # fmt: skip


# ------------------------------------------------------------------------------------------------
# Utility helpers (images and volumes)

# 2D classifiers for images; 3D ResNets (MedicalNet layout) for volumes.
UTILITY_MODELS = ("densenet121", "resnet18", "densenet-tiny", "resnet-tiny")
UTILITY_MODELS_3D = ("resnet3d-10", "resnet3d-18", "resnet3d-tiny")


def targets(labels: list[str], t_real):
    """(task, outputs, labels-of(table)): several 0/1 columns -> multi-label; one column of
    other values -> multi-class with the real table's classes."""
    from jaxsyn.errors import DataError

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


def classifier_config(model: str, channels: int, outputs: int):
    """The classifier config a `--utility-model` name gives (2D or 3D)."""
    from jaxsyn.eval import classifiers, classifiers3d

    if model in UTILITY_MODELS_3D:
        make = {"resnet3d-10": classifiers3d.ResNet3DConfig,
                "resnet3d-18": classifiers3d.ResNet3DConfig.resnet18,
                "resnet3d-tiny": classifiers3d.ResNet3DConfig.tiny}[model]  # fmt: skip
        return make(in_channels=channels, num_outputs=outputs)
    if model not in UTILITY_MODELS:
        raise ConfigError(
            f"utility model {model!r}: expected one of {UTILITY_MODELS} (images) or "
            f"{UTILITY_MODELS_3D} (volumes)"
        )
    base = classifiers.DenseNetConfig if model.startswith("densenet") else classifiers.ResNetConfig
    make = base.tiny if model.endswith("tiny") else base
    return make(in_channels=channels, num_outputs=outputs)


SET_NAMES = {"real": "real", "syn": "synthetic", "augmented": "real + synthetic"}


def utility_figure(report: Report, result) -> None:
    """Test AUROC per seed by training set (a `utility.UtilityResult`)."""
    fig, ax = figure(5, 3.5)
    groups = {"real": result.auc_real, "synthetic": result.auc_syn}
    if result.auc_augmented is not None:
        groups["real + synthetic"] = result.auc_augmented
    cases = result.test_cases or {}
    intervals = {SET_NAMES[k]: v for k, v in cases.get("auc_interval", {}).items()}
    for k, (name, aucs) in enumerate(groups.items()):
        x = k + np.linspace(-0.2, 0.2, len(aucs)) if len(aucs) > 1 else [k]
        ax[0, 0].scatter(x, aucs, label=name)
        for xi, ci in zip(x, intervals.get(name) or [], strict=False):
            if ci is not None:  # pGAN's test-case interval of this seed's model
                ax[0, 0].plot([xi, xi], [ci["low"], ci["high"]], color="k", lw=0.8)
    ax[0, 0].set_xticks(range(len(groups)), list(groups))
    ax[0, 0].set(ylabel="AUROC on held-out real data", title="trained on")
    report.figure("utility", "auc", fig, caption="test AUROC per seed by training set; bars: "
                  "95 % BCa interval over the test cases (pGAN)")  # fmt: skip
    if cases.get("confusion"):
        confusion_figure(report, cases["confusion"])


def confusion_figure(report: Report, confusion: dict) -> None:
    """Each training set's test confusion matrix summed over seeds: [K, K] (rows true, columns
    predicted) or, per label, [[TN, FP], [FN, TP]] drawn as one row of four per label."""
    fig, ax = figure(3.4 * len(confusion), 3.2, ncols=len(confusion))
    for j, (name, m) in enumerate(confusion.items()):
        m = np.asarray(m)
        multilabel = m.ndim == 3
        shown = m.reshape(len(m), 4) if multilabel else m
        a = ax[0, j]
        a.imshow(shown / max(shown.max(), 1), cmap="Blues", vmin=0, vmax=1)
        for (r, c), v in np.ndenumerate(shown):
            a.text(c, r, str(v), ha="center", va="center", fontsize=7)
        if multilabel:
            a.set_xticks(range(4), ["TN", "FP", "FN", "TP"])
            a.set(ylabel="label", title=f"trained on {SET_NAMES[name]}")
        else:
            a.set(xlabel="predicted", ylabel="true", title=f"trained on {SET_NAMES[name]}")
    report.figure("utility", "confusion", fig, caption="test confusion matrices, summed over "
                  "seeds (pGAN Fig. 3B); multilabel: score >= 0.5 per label")  # fmt: skip
