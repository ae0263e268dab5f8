"""What the MMCGAN paper reports, as functions and figures of one report.

    report = mmcgan_report(run_dir, real=store, synthetic=cohort_dir, out=report_dir)

  * conditioning (paper Fig. A.4): the fraction of body voxels (> -500 HU) that are fat
    (-150..-50 HU), soft tissue (-50..300 HU; the paper's "-150 to 300 HU" minus fat) and water
    (-10..10 HU, a subset of soft tissue), by BMI class, real beside synthetic, and the Spearman
    correlation between the class and the fat fraction in each cohort;
  * MMCGAN's own conditioning measure (§4, Fig. A.4): the total occupied volume of -150..300 HU
    matter in ml per volume, against BMI (the `bmi` column, else the class): Pearson r,
    Spearman rho and slope per cohort (`conditioning.occupied_volume`), beside ours above;
  * centre transverse slices of 8 latent points × every class (Fig. 4);
  * univariate comparisons of every clinical column and real / synthetic / difference
    association heat maps (Figs. 3, A.5), with the tabular quality scores;
  * UMAPs of image features and of clinical rows fitted on real and applied to both (Fig. 2),
    when umap-learn is installed (the `umap` extra); otherwise the report says so.
Image features for the UMAP are the evaluation suite's 2.5D pixel features
(`jaxsyn.eval.volumes.volume_features`: central axial, coronal and sagittal slices); the paper
used a pretrained MedicalNet, whose weights are not available offline.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from jaxsyn.data.volumes import load_volume
from jaxsyn.errors import DataError
from jaxsyn.eval import tabular
from jaxsyn.eval.report import Report, figure

BODY_HU = -500.0
RANGES: dict[str, tuple[float, float]] = {
    "fat": (-150.0, -50.0),
    "soft_tissue": (-50.0, 300.0),
    "water": (-10.0, 10.0),
}


def tissue_fractions(hu: np.ndarray) -> dict[str, float]:
    """Fractions of the body voxels (> -500 HU) in each of `RANGES` (lower bound inclusive)."""
    hu = np.asarray(hu)
    body = hu > BODY_HU
    n = int(body.sum())
    if n == 0:
        return {name: float("nan") for name in RANGES}
    v = hu[body]
    return {name: float(np.mean((v >= lo) & (v < hi))) for name, (lo, hi) in RANGES.items()}


def fractions_table(volumes, classes) -> pd.DataFrame:
    """One row per volume: class and tissue fractions. `volumes` iterable of HU arrays."""
    rows = [{"class": int(c), **tissue_fractions(v)} for v, c in zip(volumes, classes, strict=True)]
    return pd.DataFrame(rows)


def spearman(fractions: pd.DataFrame, column: str = "fat") -> dict[str, float]:
    """Spearman ρ (and its p-value) between the class and a tissue fraction."""
    ok = np.isfinite(fractions[column].to_numpy())
    if ok.sum() < 3 or fractions["class"][ok].nunique() < 2:
        return {"rho": float("nan"), "p_value": float("nan"), "n": int(ok.sum())}
    r = sps.spearmanr(fractions["class"][ok], fractions[column][ok])
    return {"rho": float(r.statistic), "p_value": float(r.pvalue), "n": int(ok.sum())}


def conditioning(real: pd.DataFrame, synthetic: pd.DataFrame) -> dict:
    """Per-class mean fractions and Spearman ρ(class, fat) for both cohorts."""
    out = {}
    for name, df in (("real", real), ("synthetic", synthetic)):
        means = df.groupby("class")[list(RANGES)].mean()
        out[name] = {
            "spearman_class_fat": spearman(df),
            "by_class": {str(k): v for k, v in means.to_dict(orient="index").items()},
            "n": len(df),
        }
    return out


# MMCGAN's own conditioning measure (Ziegler et al. 2022 §4 and Fig. A.4): "the total occupied
# volume of matter with a density in the range of -150 HU to 300 HU", correlated with BMI.
OCCUPIED_HU = (-150.0, 300.0)  # both ends included


def occupied_volume_ml(hu: np.ndarray, spacing_mm) -> float:
    """Total volume (ml) of the voxels with OCCUPIED_HU[0] <= HU <= OCCUPIED_HU[1]."""
    hu = np.asarray(hu)
    lo, hi = OCCUPIED_HU
    voxel_ml = float(np.prod(np.asarray(spacing_mm, np.float64))) / 1000.0
    return int(np.count_nonzero((hu >= lo) & (hu <= hi))) * voxel_ml


def occupied_volume(volumes: pd.DataFrame) -> dict:
    """Per cohort (`volumes`: columns occupied_ml and bmi, one row per volume): Pearson r and
    Spearman rho of occupied volume against BMI, the least-squares slope (ml per BMI unit), n."""
    ok = volumes[["occupied_ml", "bmi"]].dropna()
    out = {"n": len(ok), "mean_ml": float(ok["occupied_ml"].mean()) if len(ok) else float("nan")}
    if len(ok) < 3 or ok["bmi"].nunique() < 2 or ok["occupied_ml"].nunique() < 2:
        return out | {"pearson_r": float("nan"), "spearman_rho": float("nan"),
                      "slope_ml_per_bmi": float("nan")}  # fmt: skip
    x, y = ok["bmi"].to_numpy(float), ok["occupied_ml"].to_numpy(float)
    return out | {
        "pearson_r": float(sps.pearsonr(x, y).statistic),
        "spearman_rho": float(sps.spearmanr(x, y).statistic),
        "slope_ml_per_bmi": float(np.polyfit(x, y, 1)[0]),
    }


def occupied_figure(real: pd.DataFrame, synthetic: pd.DataFrame, bmi_name: str):
    fig, ax = figure(5, 3.6)
    for df, name in ((real, "real"), (synthetic, "synthetic")):
        ax[0, 0].scatter(df["bmi"], df["occupied_ml"], s=12, alpha=0.7, label=name)
    ax[0, 0].set(xlabel=bmi_name, ylabel="occupied volume, -150..300 HU (ml)")
    ax[0, 0].legend(fontsize=8)
    return fig


MIN_REAL_PER_CLASS = 5  # a class's real spread is not estimated from fewer patients


def fidelity(
    real: pd.DataFrame, synthetic: pd.DataFrame, hu_real, hu_syn, window=(-1024.0, 600.0)
) -> dict:
    """Behind ρ, per class present in both cohorts (`real`/`synthetic`: `fractions_table`s whose
    rows are the volumes `hu_real`/`hu_syn`, in the same order):

      fat_ratio, soft_tissue_ratio   synthetic mean fraction / real mean fraction (1 = equal)
      fat_sd_ratio                   sd of the synthetic fat fraction / the real one's
      distance_ratio                 mean pairwise distance between same-class synthetic volumes
                                     / the same between real ones (mean |a - b| in HU over the
                                     voxels, both clipped to `window`); 0 = every synthetic
                                     volume of the class is one image
    The two diversity ratios are None (with `n_real`) where a class has fewer than
    MIN_REAL_PER_CLASS real patients or fewer than 2 synthetic ones. Classes only one cohort has
    are listed under `missing`."""
    lo, hi = window
    real_classes, syn_classes = set(real["class"]), set(synthetic["class"])

    def mean_pairwise(vols) -> float:
        v = [np.clip(np.asarray(x, np.float32), lo, hi) for x in vols]
        d = [np.abs(v[i] - v[j]).mean() for i in range(len(v)) for j in range(i + 1, len(v))]
        return float(np.mean(d))

    by_class = {}
    for c in sorted(real_classes & syn_classes):
        r, s = real[real["class"] == c], synthetic[synthetic["class"] == c]
        row = {
            "n_real": len(r),
            "n_synthetic": len(s),
            **{f"{k}_ratio": float(s[k].mean() / r[k].mean()) for k in ("fat", "soft_tissue")},
            "fat_sd_ratio": None,
            "distance_ratio": None,
        }
        if len(r) >= MIN_REAL_PER_CLASS and len(s) >= 2:
            row["fat_sd_ratio"] = float(s["fat"].std() / r["fat"].std())
            rv = [hu_real[i] for i in np.flatnonzero(real["class"].to_numpy() == c)]
            sv = [hu_syn[i] for i in np.flatnonzero(synthetic["class"].to_numpy() == c)]
            row["distance_ratio"] = mean_pairwise(sv) / mean_pairwise(rv)
        by_class[str(c)] = row
    return {
        "by_class": by_class,
        "missing": {
            "in_synthetic": sorted(int(c) for c in real_classes - syn_classes),
            "in_real": sorted(int(c) for c in syn_classes - real_classes),
        },
        "settings": {"window_hu": list(window), "min_real_per_class": MIN_REAL_PER_CLASS},
    }


def fractions_figure(real: pd.DataFrame, synthetic: pd.DataFrame, class_name: str = "class"):
    fig, axes = figure(12, 3.6, ncols=len(RANGES))
    classes = sorted(set(real["class"]) | set(synthetic["class"]))
    for ax, name in zip(axes[0], RANGES, strict=True):
        for offset, (label, df, color) in enumerate(
            (("real", real, "tab:blue"), ("synthetic", synthetic, "tab:orange"))
        ):
            data = [df.loc[df["class"] == c, name].dropna().to_numpy() for c in classes]
            pos = np.arange(len(classes)) + (offset - 0.5) * 0.35
            keep = [i for i, d in enumerate(data) if len(d)]
            if keep:
                parts = ax.boxplot([data[i] for i in keep], positions=pos[keep], widths=0.3,
                                   patch_artist=True, manage_ticks=False)  # fmt: skip
                for box in parts["boxes"]:
                    box.set_facecolor(color)
                    box.set_alpha(0.6)
            ax.plot([], [], color=color, lw=6, alpha=0.6, label=label)
        lo, hi = RANGES[name]
        ax.set_title(f"{name} ({lo:g}..{hi:g} HU)")
        ax.set_xticks(range(len(classes)), [str(c) for c in classes])
        ax.set_xlabel(class_name)
        ax.set_ylabel("fraction of body voxels")
    axes[0][0].legend()
    return fig


def slices_figure(slices: np.ndarray, classes, window=(-400.0, 400.0)):
    """Grid of centre transverse slices [n_classes, n_latent, H, W] in HU (paper Fig. 4)."""
    rows, cols = slices.shape[:2]
    fig, axes = figure(1.6 * cols, 1.6 * rows, ncols=cols, nrows=rows)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.imshow(slices[r, c], cmap="gray", vmin=window[0], vmax=window[1])
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(f"class {classes[r]}")
            if r == 0:
                ax.set_title(f"z{c}", fontsize=8)
    return fig


def univariate_figure(real: pd.DataFrame, synthetic: pd.DataFrame, columns: list[str]):
    """Histograms (numeric) or category frequencies (discrete), real beside synthetic."""
    ncols = 4
    nrows = max(1, -(-len(columns) // ncols))
    fig, axes = figure(3.2 * ncols, 2.4 * nrows, ncols=ncols, nrows=nrows)
    flat = [a for row in axes for a in row]
    for ax, name in zip(flat, columns, strict=False):
        r, s = real[name], synthetic[name]
        numeric = pd.api.types.is_numeric_dtype(r) and r.nunique() > 10
        if numeric:
            both = pd.concat([r, s]).dropna().astype(float)
            bins = np.histogram_bin_edges(both, 20) if len(both) else 10
            ax.hist(r.dropna().astype(float), bins=bins, alpha=0.5, density=True, label="real")
            ax.hist(s.dropna().astype(float), bins=bins, alpha=0.5, density=True, label="synthetic")
        else:
            cats = sorted(set(r.dropna().astype(str)) | set(s.dropna().astype(str)))
            x = np.arange(len(cats))
            fr = r.dropna().astype(str).value_counts(normalize=True).reindex(cats, fill_value=0)
            fs = s.dropna().astype(str).value_counts(normalize=True).reindex(cats, fill_value=0)
            ax.bar(x - 0.2, fr.to_numpy(), 0.4, label="real")
            ax.bar(x + 0.2, fs.to_numpy(), 0.4, label="synthetic")
            ax.set_xticks(x, cats, rotation=45, fontsize=7)
        ax.set_title(name, fontsize=9)
    for ax in flat[len(columns) :]:
        ax.axis("off")
    flat[0].legend(fontsize=7)
    return fig


def umap_figure(real: np.ndarray, synthetic: np.ndarray, classes_real, classes_syn, title: str,
                seed: int = 0):  # fmt: skip
    """2-D UMAP fitted on the real features and applied to both, coloured by class."""
    import umap  # the `umap` extra

    reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, len(real) - 1))
    er = reducer.fit_transform(real)
    es = reducer.transform(synthetic)
    fig, axes = figure(6, 5)
    ax = axes[0][0]
    ax.scatter(er[:, 0], er[:, 1], c=classes_real, cmap="viridis", marker="o", s=18, label="real")
    ax.scatter(
        es[:, 0], es[:, 1], c=classes_syn, cmap="viridis", marker="x", s=18, label="synthetic"
    )
    ax.set_title(title)
    ax.legend()
    return fig


def read_cohort(folder: str | os.PathLike, id_column: str = "patient_id"):
    """(table, {patient id: volume path}) of a generated cohort or a phantom cohort folder."""
    folder = Path(folder)
    for name in ("synthetic.parquet", "table.parquet", "table.csv"):
        if (folder / name).is_file():
            path = folder / name
            table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
            break
    else:
        raise DataError(f"{folder}: no synthetic.parquet or table.csv; expected a cohort folder")
    if id_column not in table.columns:
        raise DataError(f"{path}: no {id_column!r} column; expected patient ids")
    vols = {p.name.split(".nii")[0].split("__")[0]: p for p in sorted(folder.glob("*.nii.gz"))}
    return table, vols


def mmcgan_report(
    real: str | os.PathLike,
    synthetic: str | os.PathLike,
    out: str | os.PathLike,
    *,
    class_column: str = "bmi_class",
    slices: np.ndarray | None = None,
    slice_classes: list | None = None,
    umap: bool | None = None,
    seed: int = 0,
    title: str = "MMCGAN: synthetic cohort vs real",
) -> Path:
    """Write `out/index.html` + `report.json` comparing a real cohort folder (volumes + table)
    with a generated one. `slices` [classes, latents, H, W] adds the Fig. 4 grid."""
    report = Report(out, title=title)
    t_real, v_real = read_cohort(real)
    t_syn, v_syn = read_cohort(synthetic)

    bmi_column = "bmi" if "bmi" in t_real.columns and "bmi" in t_syn.columns else class_column
    occupied = {}

    def cohort(table, vols, name):
        ids = [p for p in table["patient_id"].astype(str) if p in vols]
        rows = table.set_index(table["patient_id"].astype(str)).loc[ids]
        hus, ml = [], []
        for p in ids:
            volume = load_volume(vols[p])
            hus.append(volume.hu)
            ml.append(occupied_volume_ml(volume.hu, volume.spacing))
        occupied[name] = pd.DataFrame({"occupied_ml": ml, "bmi": rows[bmi_column].to_numpy(float)})
        return hus, rows[class_column].to_numpy().astype(int)

    hu_real, c_real = cohort(t_real, v_real, "real")
    hu_syn, c_syn = cohort(t_syn, v_syn, "synthetic")
    f_real, f_syn = fractions_table(hu_real, c_real), fractions_table(hu_syn, c_syn)
    report.numbers(
        "conditioning",
        conditioning(f_real, f_syn),
        settings={"body_hu": BODY_HU, "ranges_hu": RANGES, "class_column": class_column},
    )
    report.numbers(
        "conditioning.occupied_volume",
        {name: occupied_volume(df) for name, df in occupied.items()},
        settings={"range_hu": OCCUPIED_HU, "against": bmi_column,
                  "source": "MMCGAN (Ziegler et al. 2022) Fig. A.4: total volume of -150..300 "
                  "HU matter, in ml (voxel count x voxel volume of each file's spacing)"},
    )  # fmt: skip
    report.figure("conditioning", "occupied_volume",
                  occupied_figure(occupied["real"], occupied["synthetic"], bmi_column),
                  caption="Occupied volume (-150..300 HU, ml) against BMI, real vs synthetic "
                  "(MMCGAN's measure)")  # fmt: skip
    report.numbers("fidelity", fidelity(f_real, f_syn, hu_real, hu_syn))
    report.figure("conditioning", "fractions", fractions_figure(f_real, f_syn, class_column),
                  caption="Tissue fractions of body voxels by class, real (blue) vs synthetic (orange) (paper Fig. A.4)")  # fmt: skip
    if slices is not None:
        report.figure("conditioning", "centre_slices", slices_figure(slices, slice_classes),
                      caption="Centre transverse slices: 8 latent points (columns) x classes (rows), same noise per column (paper Fig. 4)")  # fmt: skip

    columns = [c for c in t_real.columns if c != "patient_id" and c in t_syn.columns]
    real_rows, syn_rows = t_real[columns], t_syn[columns]
    report.numbers("tabular.quality", tabular.quality(real_rows, syn_rows))
    report.figure("tabular", "univariate", univariate_figure(real_rows, syn_rows, columns),
                  caption="Every clinical column, real vs synthetic (paper Fig. 3a)")  # fmt: skip
    heat = tabular.correlation_heatmaps(
        real_rows, syn_rows, Path(out) / "figures" / "tabular_heatmaps.png"
    )
    report.figures.append(("tabular", str(heat.relative_to(out)), "Associations: real, synthetic, |difference| (paper Figs. 3b, A.5)"))  # fmt: skip

    if umap is None:
        try:
            import umap as _  # noqa: F401

            umap = True
        except ImportError:
            umap = False
    if umap and len(hu_real) >= 5:
        from jaxsyn.eval.volumes import volume_features

        fr = volume_features(np.stack(hu_real), "pixels")
        fs = volume_features(np.stack(hu_syn), "pixels")
        report.figure(
            "umap",
            "images",
            umap_figure(fr, fs, c_real, c_syn, "image features (2.5D pixels)", seed),
        )
        from jaxsyn.eval.privacy import encode_table

        fit = real_rows.drop(columns=[class_column])
        er = encode_table(fit)
        es = encode_table(syn_rows.drop(columns=[class_column]), fit_on=fit)
        report.figure("umap", "clinical", umap_figure(er, es, c_real, c_syn, "clinical rows", seed))
    else:
        report.text(
            "umap", "skipped: needs umap-learn (pip install 'jaxsyn[umap]') and >= 5 real volumes"
        )
    return report.write()


__all__ = [
    "OCCUPIED_HU",
    "RANGES",
    "conditioning",
    "fidelity",
    "fractions_table",
    "mmcgan_report",
    "occupied_volume",
    "occupied_volume_ml",
    "spearman",
    "tissue_fractions",
]
