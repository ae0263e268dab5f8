"""One axial head slice per simulated patient in three modalities (CT, T1-like MRI, PET), each
labelled with a physiological age that drives visible atrophy: the data of DUIIT (issue 19).

    images, table = cohort("mri", n=200, size=64, seed=0)   # uint8 [N, 64, 64], labels

The anatomy is the kind `headct` draws (elliptic skull, scalp, grey-matter ribbon over a
white-matter core, sulci, interhemispheric fissure, two lateral ventricles as tilted ellipses), in
normalised coordinates u (columns, patient's right -> left) and v (rows, anterior -> posterior),
both in [-1, 1]. `headct` itself is left untouched (its slices are bitwise as before).

Patients. Each modality draws its own patients from its own seed stream (`STREAMS`), so a CT, an
MRI and a PET cohort of one seed share no patient (ids `ct-00000`, `mri-00000`, `pet-00000`).
Per patient: age ~ Uniform(20, 90) years rounded to 0.1 (the label); skull half-axes a in
[0.78, 0.86], b in [0.90, 0.96], skull 4-6 % thick; subcutaneous fat 2-4 %; smooth texture and
fold fields; `slices` axial levels z in [-0.25, 0.25] (0 the ventricles' level; the head's
cross-section shrinks as sqrt(1 - z^2), the ventricles as 1 - 2|z|).

Ground truth (t = age - 20, in years; `effects(age)` returns these numbers):
  ventricles   half-width 0.06 (1 + 0.016 t) and half-length 0.26 (1 + 0.005 t): at 90 the
               width is x2.12, length x1.35, area x2.86 of the 20-year-old's.
  sulci        CSF where |fold field| < 0.05 + 0.0025 t within the cortex (share of the cortex
               that is sulcal CSF: about 4 % at 20, 17 % at 90), plus a CSF rim under the inner
               table of 0.004 + 0.0003 t (atrophy widens the subarachnoid space).
  cortex       grey-matter ribbon depth 0.30 - 0.0018 t of the inner radius (0.30 at 20,
               0.174 at 90): cortical thinning, white matter fills the rest.
  PET uptake   grey matter 1.0 - 0.005 t (0.65 at 90), white matter 0.35 x that, CSF 0.
Contrast per modality (before smoothing and noise):
  tissue      CT (HU)   MRI T1 (a.u., 0-1)  PET (uptake)
  air          -1000          0.00              0
  scalp          +30          0.45              0.04
  fat           -100          0.95              0.02
  skull        +1000          0.06              0.02
  grey matter    +40          0.50              see above
  white matter   +28          0.78              see above
  CSF             +5          0.10              0
CT is shown in a window of level 40 HU, width 160 HU (-40..120 HU black..white; fat black, skull
white); MRI has a smooth multiplicative bias field (+-8 %) and Rician noise (sd 0.02); PET is the
uptake blurred (Gaussian, FWHM 8 % of the field of view), sampled at a quarter of the size
(nearest) and brought back (bilinear), with Gaussian noise of sd 0.04 x sqrt(uptake), shown on
a fixed scale (0 -> 0, 1.25 -> 255) so a lower uptake is a darker image.
`write_cohort(out, modality, n, size, seed)` writes `<image_id>.png`, `labels.csv` (`image_id`,
`patient_id`, `age`), `truth.csv` and `manifest.json`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage
from tqdm.auto import tqdm

from jaxsyn.data.phantoms import images2d
from jaxsyn.errors import ConfigError
from jaxsyn.files import MANIFEST, atomic_path, tree_files, write_json, write_text

MODALITIES = ("ct", "mri", "pet")
STREAMS = {"ct": 11, "mri": 12, "pet": 13}  # per-modality patient streams (images2d.image_seed)
AGES = (20.0, 90.0)
CT_WINDOW = (40.0, 160.0)  # level, width (HU)
PET_SCALE = 1.25  # uptake shown as white
AIR, SCALP, FAT, SKULL, GREY, WHITE, CSF = range(7)
CONTRAST = {
    "ct": (-1000.0, 30.0, -100.0, 1000.0, 40.0, 28.0, 5.0),
    "mri": (0.0, 0.45, 0.95, 0.06, 0.50, 0.78, 0.10),
}


def effects(age: float) -> dict[str, float]:
    """The age -> anatomy ground truth of the module docstring (t = age - 20)."""
    t = float(age) - AGES[0]
    return {
        "ventricle_width": 0.06 * (1 + 0.016 * t),
        "ventricle_length": 0.26 * (1 + 0.005 * t),
        "sulcus_threshold": 0.05 + 0.0025 * t,
        "csf_rim": 0.004 + 0.0003 * t,
        "cortex_depth": 0.30 - 0.0018 * t,
        "grey_uptake": 1.0 - 0.005 * t,
        "white_uptake": 0.35 * (1.0 - 0.005 * t),
    }


def check_modality(modality: str) -> str:
    if modality not in MODALITIES:
        raise ConfigError(f"modality is {modality!r}; expected one of {', '.join(MODALITIES)}")
    return modality


def labels(modality: str, n: int, seed: int, slices: int = 1) -> pd.DataFrame:
    """The label table of `n` patients x `slices` slices: image_id, patient_id, age (years)."""
    check_modality(modality)
    if n < 1 or slices < 1:
        raise ConfigError(f"n is {n} and slices {slices}; expected both >= 1")
    rows = []
    for i in range(n):
        rng = np.random.default_rng(images2d.image_seed(seed, i, STREAMS[modality]))
        age = round(float(rng.uniform(*AGES)), 1)
        pid = f"{modality}-{i:05d}"
        for k in range(slices):
            rows.append({"image_id": pid if slices == 1 else f"{pid}-s{k}", "patient_id": pid,
                         "age": age})  # fmt: skip
    return pd.DataFrame(rows)


def tissues(age: float, size: int, seed: int, level: float = 0.0) -> tuple[np.ndarray, dict]:
    """(tissue map int8 [size, size] with AIR..CSF, truth) of one patient at axial `level`."""
    size = images2d.check_size(size)
    rng = np.random.default_rng(seed)
    e = effects(age)
    v, u = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    px = 2.0 / size
    shrink = np.sqrt(1 - level**2)
    a, b = rng.uniform(0.78, 0.86) * shrink, rng.uniform(0.90, 0.96) * shrink
    thick, fat = rng.uniform(0.04, 0.06), rng.uniform(0.02, 0.04)
    folds = images2d.smooth_noise(rng, size, 0.015)

    r = np.sqrt((u / a) ** 2 + (v / b) ** 2)  # 1 at the outer table
    inner = 1 - thick
    tissue = np.full((size, size), AIR, np.int8)
    tissue[r < 1.0 + fat + 0.02] = SCALP
    tissue[r < 1.0 + fat] = FAT
    tissue[r < 1.0] = SKULL
    brain = r < inner - e["csf_rim"]
    tissue[(r < inner) & ~brain] = CSF  # subarachnoid space under the inner table
    depth = (inner - r) / inner  # 0 at the inner table, 1 at the centre
    cortex = brain & (depth < e["cortex_depth"])
    tissue[brain] = WHITE
    tissue[cortex] = GREY
    sulci = cortex & (np.abs(folds) < e["sulcus_threshold"])
    fissure = brain & (np.abs(u) < 0.012 + px) & (np.abs(v) > 0.25)
    tissue[sulci | fissure] = CSF
    scale = max(0.0, 1 - 2 * abs(level))
    half_w, half_l = e["ventricle_width"] * scale, e["ventricle_length"] * scale
    ventricles = np.zeros_like(brain)
    if scale > 0:
        for sign in (-1, 1):
            du, dv = u - sign * (0.06 + half_w), v - 0.02
            c, s = np.cos(-sign * 0.35), np.sin(-sign * 0.35)  # frontal horns close together
            ventricles |= ((c * du + s * dv) / half_w) ** 2 + ((-s * du + c * dv) / half_l) ** 2 < 1
    tissue[ventricles & brain] = CSF
    truth = {"skull_a": float(a), "skull_b": float(b), "level": float(level),
             "ventricle_area": float((ventricles & brain).mean()),
             "sulcal_fraction": float(sulci.sum() / max(cortex.sum(), 1))}  # fmt: skip
    return tissue, truth


def render(tissue: np.ndarray, modality: str, age: float, seed: int) -> np.ndarray:
    """A tissue map as the modality shows it: uint8 [size, size]."""
    check_modality(modality)
    size = tissue.shape[0]
    rng = np.random.default_rng([seed, STREAMS[modality]])
    texture = images2d.smooth_noise(rng, size, 0.02)
    parenchyma = (tissue == GREY) | (tissue == WHITE)
    if modality == "pet":
        e = effects(age)
        uptake = np.zeros((size, size))
        uptake[tissue == GREY] = e["grey_uptake"]
        uptake[tissue == WHITE] = e["white_uptake"]
        uptake[(tissue == SCALP)] = 0.04
        uptake[(tissue == FAT) | (tissue == SKULL)] = 0.02
        uptake *= 1 + 0.05 * texture
        uptake = ndimage.gaussian_filter(uptake, 0.08 * size / 2.355)  # FWHM 8 % of the view
        low = max(4, size // 4)
        uptake = ndimage.zoom(uptake[:: size // low, :: size // low], size / low, order=1)
        uptake = np.clip(uptake[:size, :size], 0, None)
        uptake += rng.normal(0, 1, (size, size)) * 0.04 * np.sqrt(uptake)
        image = uptake / PET_SCALE
    else:
        value = np.asarray(CONTRAST[modality])[tissue]
        if modality == "ct":
            value = value + 3.0 * texture * parenchyma
            value = ndimage.gaussian_filter(value, max(0.5, size / 512))
            value = value + rng.normal(0, 2.0, (size, size))
            level, width = CT_WINDOW
            image = (value - (level - width / 2)) / width
        else:
            value = value * (1 + 0.03 * texture * parenchyma)
            value = ndimage.gaussian_filter(value, max(0.5, size / 256))
            value = value * (1 + 0.08 * images2d.smooth_noise(rng, size, 0.3))  # bias field
            noise = rng.normal(0, 0.02, (2, size, size))
            image = np.hypot(value + noise[0], noise[1])  # Rician magnitude
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def patient_slices(row_age: float, modality: str, size: int, seed: int, slices: int):
    """[(uint8 image, truth)] of one patient's `slices` axial levels (one patient's seed)."""
    levels = [0.0] if slices == 1 else np.linspace(-0.25, 0.25, slices).tolist()
    out = []
    for k, level in enumerate(levels):
        tissue, truth = tissues(row_age, size, seed, level)
        out.append((render(tissue, modality, row_age, seed + k), truth))
    return out


def cohort(
    modality: str, n: int, size: int, seed: int, slices: int = 1, progress: bool = False
) -> tuple[np.ndarray, pd.DataFrame]:
    """(uint8 [n x slices, size, size], labels) in memory; `truth` columns joined to labels."""
    table = labels(modality, n, seed, slices)
    images, truths = [], []
    patients = table.drop_duplicates("patient_id").reset_index(drop=True)
    bar = tqdm(patients.itertuples(), total=len(patients), desc=f"head {modality}", unit="patient",
               disable=not progress)  # fmt: skip
    for i, row in enumerate(bar):
        pseed = images2d.image_seed(seed, i, STREAMS[modality])
        for image, truth in patient_slices(row.age, modality, size, pseed, slices):
            images.append(image)
            truths.append(truth)
    return np.stack(images), pd.concat([table, pd.DataFrame(truths)], axis=1)


def write_cohort(
    out_dir: str | os.PathLike,
    modality: str,
    n: int,
    size: int,
    seed: int,
    slices: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Write `<image_id>.png`, labels.csv, truth.csv and manifest.json; returns labels."""
    out = Path(out_dir)
    images, table = cohort(modality, n, size, seed, slices, progress)
    for image, name in zip(images, table["image_id"], strict=True):
        with atomic_path(out / f"{name}.png", suffix=".png") as tmp:
            Image.fromarray(image).save(tmp, format="PNG")
    label_columns = ["image_id", "patient_id", "age"]
    write_text(out / "labels.csv", table[label_columns].to_csv(index=False))
    truth = table.drop(columns=["patient_id", "age"])
    write_text(out / "truth.csv", truth.to_csv(index=False))
    write_json(out / MANIFEST, {"kind": "phantom", "phantom": "head", "modality": modality,
                                "n_patients": n, "slices": slices, "size": size, "seed": seed,
                                "files": tree_files(out)})  # fmt: skip
    return table[label_columns]
