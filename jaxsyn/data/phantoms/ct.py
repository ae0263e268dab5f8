"""Procedural chest-CT phantom in Hounsfield units, linked to a clinical table row.

The generative story below is the ground truth that tests and experiments check recovery against
(sigmoid(t) = 1 / (1 + e^-t), scipy's expit; every draw comes from `np.random.default_rng(seed)`).

Clinical table (`clinical_table`, one row per patient; 22 model columns plus `patient_id`, in the
MMCGAN cohort's proportions: 7 categorical, 9 binary, 2 integer, 4 float).
  patient_id       "P00000", "P00001", ...: the join key to `<patient_id>.nii.gz`.
  age              integer, round(Normal(64, 10)) clipped to [30, 90].
  sex_male         binary, Bernoulli(0.55).
  height_cm        Normal(176 men / 163 women, 7) - 0.08 cm per year over 50, rounded to 0.1.
  weight_kg        latent BMI LogNormal(log 26.5 + 0.004 (age - 64), 0.17) clipped to [15, 55]
                   times (height / 100)², rounded to 0.1.
  bmi              weight_kg / (height_cm / 100)² from the *rounded* values, rounded to 0.01.
  bmi_class        categorical 0-3 from bmi: 0 if bmi <= 18.5, 1 if <= 25, 2 if <= 30, else 3.
  site             S01..S06 with probabilities .30 .22 .18 .12 .10 .08.
  region           north (S01, S02), south (S03, S04), east (S05), west (S06) for 90% of rows,
                   a uniformly drawn region for the other 10% (patients travel).
  smoking_status   current with p = sigmoid(-1.3 + 0.5 male - 0.03 (age - 64)); otherwise former
                   with p = sigmoid(-0.6 + 0.5 male + 0.04 (age - 64)); otherwise never.
  pack_years       nullable integer: 0 for never smokers, else round(Gamma(3, 1/3) 0.35 (age - 18)
                   x 1.2 current / 0.8 former); 2% of smokers' values missing (pd.NA).
  hypertension     sigmoid(-0.9 + 0.06 (age - 64) + 0.13 (bmi - 27) + 0.25 male).
  diabetes_t2      sigmoid(-2.0 + 0.04 (age - 64) + 0.14 (bmi - 27)).
  copd             sigmoid(-2.6 + 0.035 pack_years + 0.03 (age - 64)), true pack_years if hidden.
  cardiovascular_disease  sigmoid(-2.2 + 0.05 (age - 64) + 0.6 male + 0.7 hypertension
                   + 0.6 diabetes_t2 + 0.4 current smoker).
  statin_use       sigmoid(-1.8 + 2.2 cardiovascular_disease + 0.9 diabetes_t2 + 0.03 (age - 64)).
  prior_surgery    sigmoid(-1.2 + 0.02 (age - 64)).
  ecog             0/1/2: 0.03 (age - 64) + 0.4 cvd + 0.3 copd + Logistic(0, 1) cut at 0.8, 2.3.
  disease_stage    I-IV: 0.4 current smoker + Logistic(0, 1) cut at -1.7, -0.45, 0.85.
  treatment_arm    A / B / placebo, uniform, randomised: independent of every other column.
  responder        sigmoid(-0.4 + (0.9 A, 0.5 B, 0 placebo) - 0.45 stage index (I = 0)).
  adverse_event    sigmoid(-1.6 + (0.8 A, 0.5 B, 0 placebo) + 0.03 (age - 64) + 0.3 ecog).
  systolic_bp      124 + 0.45 (age - 64) + 0.5 (bmi - 27) + 10 hypertension + 3 male
                   + Normal(0, 11), rounded to 0.1; 3% missing (NaN) completely at random.
Only systolic_bp and pack_years have missing values; binary columns are int 0/1.

Image (`ct_volume(row, size, seed)`): a 400 mm cube (`FOV_MM`), `size`³ isotropic voxels, axes
[D, H, W] = inferior→superior, posterior→anterior, patient's left→right (RAS+, as
`jaxsyn.data.volumes`). The row sets the anatomy; the seed only adds small jitter (organ positions,
dome heights, rib and disc phase), the lung-vessel and bowel patterns, and noise, drawn in a fixed
order so the same seed gives the same randomness for every row and size.
  body       elliptic trunk, half-axes 128 x 90 mm x s x w, where s = sqrt(height / 170) x
             (1.03 men / 0.97 women) and w = 1 + 0.004 clip(bmi - 25, -8, 20): air -1000 outside.
  skin       2 mm, +40 HU.
  subcutaneous fat  -100 HU, thickness clip(3 + 32 (bmi - 18) / 22, 1.5, 45) mm (3 mm at BMI 18,
             35 mm at BMI 40), 0.7x posteriorly and up to 1.3x over the abdomen.
  muscle     +50 HU wall, 16 mm (50 mm paraspinal); ribs +500 (periodic along D, sloping down
             anteriorly) and sternum in its inner part.
  lungs      -850 HU (-895 with copd) above a two-domed diaphragm, apices tapering at the top;
             vessels +40 where n1² + n2² < eps² for two smooth Gaussian fields (tubes, thicker
             near the hila); trachea and main bronchi air.
  heart      +40 HU ellipsoid left of the midline (lower W), x1.08 with cardiovascular_disease,
             wrapped in pericardial fat (-100) of thickness clip(1 + 9 (bmi - 18) / 22, 0.5, 14) mm;
             aorta +45 (ascending, arch, descending left of the spine).
  spine      vertebral bodies 320 - 3 (age - 50) HU (x1.3 the loss for women, clipped to
             [120, 400]) with a +700 cortex, discs +80 every 27 mm, canal +15, posterior elements.
  abdomen    below the diaphragm: liver on the right (higher W), 62 - 1.2 max(bmi - 25, 0)
             - 8 diabetes_t2 HU; stomach (with a gas cap), spleen, kidneys; between them bowel
             (+30) and visceral fat (-100) filling a fraction clip(0.06 + 0.5 (bmi - 17) / 23,
             0.03, 0.75) of the free space (a threshold on a smooth noise field).
  noise      Gaussian, sigma 15 HU; result clipped to [-1024, 3071].
`truth` holds volumes (ml) counted on the label map, the centroids of heart and liver along the
patient's right (x, mm; negative = patient's left) and the row-derived parameters above.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.special import expit, ndtri
from tqdm.auto import tqdm

from jaxsyn.data.volumes import Volume, diagonal_affine, save_nifti
from jaxsyn.errors import ConfigError
from jaxsyn.files import write_text

FOV_MM = 400.0
MIN_SIZE, MAX_SIZE = 16, 256
NOISE_HU = 15.0

COLUMNS: dict[str, str] = dict(
    age="integer", sex_male="binary", height_cm="float", weight_kg="float", bmi="float",
    bmi_class="categorical", site="categorical", region="categorical",
    smoking_status="categorical", pack_years="integer", hypertension="binary",
    diabetes_t2="binary", copd="binary", cardiovascular_disease="binary", statin_use="binary",
    prior_surgery="binary", ecog="categorical", disease_stage="categorical",
    treatment_arm="categorical", responder="binary", adverse_event="binary", systolic_bp="float",
)  # fmt: skip
BMI_CUTS = (18.5, 25.0, 30.0)  # WHO: underweight | normal | overweight | obese
SITES = np.array(["S01", "S02", "S03", "S04", "S05", "S06"])
SITE_P = (0.30, 0.22, 0.18, 0.12, 0.10, 0.08)
REGIONS = np.array(["north", "south", "east", "west"])
SITE_REGION = np.array([0, 0, 1, 1, 2, 3])
ARMS = np.array(["A", "B", "placebo"])
STAGES = np.array(["I", "II", "III", "IV"])
SMOKING = np.array(["never", "former", "current"])

LABELS = (
    "air", "skin", "subcutaneous_fat", "muscle", "rib", "vertebra", "cortex", "disc", "canal",
    "lung", "vessel", "gas", "mediastinum", "heart", "pericardial_fat", "aorta", "liver",
    "visceral_fat", "bowel", "spleen", "stomach", "kidney",
)  # fmt: skip
L = {name: i for i, name in enumerate(LABELS)}
# Noise fields live on fixed grids (mm per cell fixed), so patterns are the same at every size.
VESSEL_GRID, BOWEL_GRID = 80, 48  # 5 mm and 8.3 mm cells


def _bernoulli(rng, p) -> np.ndarray:
    return (rng.random(np.shape(p)) < p).astype(np.int64)


def bmi_class(bmi) -> np.ndarray:
    """WHO class 0-3 from BMI: 0 if <= 18.5, 1 if <= 25, 2 if <= 30, else 3."""
    return np.searchsorted(np.asarray(BMI_CUTS), np.asarray(bmi), side="left").astype(np.int64)


def _body(rng, n: int) -> dict:
    """Demographics and body size: age, sex, height, weight, bmi (consistent after rounding)."""
    male = _bernoulli(rng, np.full(n, 0.55))
    age = np.clip(np.rint(rng.normal(64.0, 10.0, n)), 30, 90).astype(np.int64)
    height = rng.normal(np.where(male == 1, 176.0, 163.0), 7.0) - 0.08 * np.maximum(age - 50, 0)
    height = np.round(np.clip(height, 140.0, 205.0), 1)
    latent = np.exp(rng.normal(np.log(26.5) + 0.004 * (age - 64), 0.17))
    weight = np.round(np.clip(latent, 15.0, 55.0) * (height / 100) ** 2, 1)
    bmi = np.round(weight / (height / 100) ** 2, 2)  # from the rounded values, so it stays exact
    return dict(age=age, sex_male=male, height_cm=height, weight_kg=weight, bmi=bmi)


def _smoking(rng, age, male) -> tuple[np.ndarray, np.ndarray]:
    """Smoking status index (0 never, 1 former, 2 current) and full pack-years (no missing)."""
    p_current = expit(-1.3 + 0.5 * male - 0.03 * (age - 64))
    p_former = expit(-0.6 + 0.5 * male + 0.04 * (age - 64))
    u = rng.random(len(age))
    status = np.where(u < p_current, 2, np.where(u < p_current + (1 - p_current) * p_former, 1, 0))
    intensity = np.where(status == 2, 1.2, 0.8)
    packs = np.rint(rng.gamma(3.0, 1 / 3, len(age)) * 0.35 * (age - 18) * intensity)
    return status, np.where(status == 0, 0, packs).astype(np.int64)


def clinical_table(n: int, seed: int) -> pd.DataFrame:
    """A synthetic cohort of `n` patients following the module's generative story.

    Returns a DataFrame [n, 23]: `patient_id` then `COLUMNS` in order.
    """
    if not isinstance(n, int | np.integer) or n < 1:
        raise ConfigError(f"n={n!r}: expected a positive number of patients")
    rng = np.random.default_rng(seed)
    t = _body(rng, n)
    age, male, bmi = t["age"], t["sex_male"], t["bmi"]
    a = age - 64.0  # centred age, the unit every logistic model below uses
    site = rng.choice(6, n, p=SITE_P)
    region = np.where(rng.random(n) < 0.10, rng.integers(0, 4, n), SITE_REGION[site])  # travel
    smoke, packs = _smoking(rng, age, male)
    current = (smoke == 2).astype(float)
    htn = _bernoulli(rng, expit(-0.9 + 0.06 * a + 0.13 * (bmi - 27) + 0.25 * male))
    dm = _bernoulli(rng, expit(-2.0 + 0.04 * a + 0.14 * (bmi - 27)))
    copd = _bernoulli(rng, expit(-2.6 + 0.035 * packs + 0.03 * a))
    cvd_logit = -2.2 + 0.05 * a + 0.6 * male + 0.7 * htn + 0.6 * dm + 0.4 * current
    cvd = _bernoulli(rng, expit(cvd_logit))
    statin = _bernoulli(rng, expit(-1.8 + 2.2 * cvd + 0.9 * dm + 0.03 * a))
    surgery = _bernoulli(rng, expit(-1.2 + 0.02 * a))
    ecog = np.searchsorted([0.8, 2.3], 0.03 * a + 0.4 * cvd + 0.3 * copd + rng.logistic(size=n))
    stage = np.searchsorted([-1.7, -0.45, 0.85], 0.4 * current + rng.logistic(size=n))
    arm = rng.integers(0, 3, n)  # randomised: drawn from nothing else
    arm_effect, ae_effect = np.array([0.9, 0.5, 0.0])[arm], np.array([0.8, 0.5, 0.0])[arm]
    responder = _bernoulli(rng, expit(-0.4 + arm_effect - 0.45 * stage))
    adverse = _bernoulli(rng, expit(-1.6 + ae_effect + 0.03 * a + 0.3 * ecog))
    sbp = 124 + 0.45 * a + 0.5 * (bmi - 27) + 10 * htn + 3 * male + rng.normal(0, 11, n)
    sbp = np.where(rng.random(n) < 0.03, np.nan, np.round(sbp, 1))
    packs_missing = (smoke > 0) & (rng.random(n) < 0.02)
    pack_years = pd.array(np.where(packs_missing, None, packs), dtype="Int64")
    cols = dict(
        t, bmi_class=bmi_class(bmi), site=SITES[site], region=REGIONS[region],
        smoking_status=SMOKING[smoke], pack_years=pack_years, hypertension=htn, diabetes_t2=dm,
        copd=copd, cardiovascular_disease=cvd, statin_use=statin, prior_surgery=surgery,
        ecog=ecog.astype(np.int64), disease_stage=STAGES[stage], treatment_arm=ARMS[arm],
        responder=responder, adverse_event=adverse, systolic_bp=sbp,
    )  # fmt: skip
    ids = np.char.add("P", np.char.zfill(np.arange(n).astype(str), 5))
    return pd.DataFrame({"patient_id": ids, **{k: cols[k] for k in COLUMNS}})


def check_size(size) -> int:
    """`size` as an int, or ConfigError when it is not an integer in [16, 256]."""
    if isinstance(size, bool) or not isinstance(size, int | np.integer):
        raise ConfigError(f"size={size!r}: expected an integer cube side in [16, 256]")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ConfigError(f"size={size}: expected a cube side in [{MIN_SIZE}, {MAX_SIZE}]")
    return int(size)


def _field(row: Mapping, key: str, default: float | None = None) -> float:
    value = row.get(key)
    if value is None or pd.isna(value):
        if default is None:
            raise ConfigError(f"row field {key!r} is missing; ct_volume needs it")
        return default
    return float(value)


def anatomy(row: Mapping) -> dict[str, float]:
    """Row -> the image's patient parameters (mm, HU, scale factors), as the docstring says."""
    bmi, height = _field(row, "bmi"), _field(row, "height_cm", 170.0)
    male, age = _field(row, "sex_male", 0.0), _field(row, "age", 60.0)
    bone_loss = 3.0 * (age - 50) * (1.0 if male else 1.3)  # post-menopausal loss is faster
    return dict(
        scale=float(np.sqrt(height / 170.0) * (1.03 if male else 0.97)),
        widen=1.0 + 0.004 * float(np.clip(bmi - 25, -8, 20)),
        subcutaneous_fat_mm=float(np.clip(3 + 32 * (bmi - 18) / 22, 1.5, 45)),
        pericardial_fat_mm=float(np.clip(1 + 9 * (bmi - 18) / 22, 0.5, 14)),
        visceral_fat_fraction=float(np.clip(0.06 + 0.5 * (bmi - 17) / 23, 0.03, 0.75)),
        heart_scale=1.0 + 0.08 * _field(row, "cardiovascular_disease", 0.0),
        lung_hu=-850.0 - 45.0 * _field(row, "copd", 0.0),  # emphysema lowers lung density
        vertebra_hu=float(np.clip(320.0 - bone_loss, 120, 400)),
        liver_hu=62.0 - 1.2 * max(bmi - 25, 0.0) - 8.0 * _field(row, "diabetes_t2", 0.0),
    )


def _hu_lut(p: dict) -> np.ndarray:
    """[len(LABELS)] HU of each label for this patient."""
    hu = dict(
        air=-1000, skin=40, subcutaneous_fat=-100, muscle=50, rib=500, vertebra=p["vertebra_hu"],
        cortex=700, disc=80, canal=15, lung=p["lung_hu"], vessel=40, gas=-1000, mediastinum=20,
        heart=40, pericardial_fat=-100, aorta=45, liver=p["liver_hu"], visceral_fat=-100,
        bowel=30, spleen=45, stomach=30, kidney=30,
    )  # fmt: skip
    return np.array([hu[name] for name in LABELS], dtype=np.float32)


def _ellipse_sdf(y, x, a: float, b: float):
    """Approximate signed distance (mm) to an ellipse, negative inside: (rho - 1) / |grad rho|.

    Exact on the axes, smooth elsewhere; offsets of it give layers of even thickness.
    """
    u, v = x / a, y / b
    rho = np.sqrt(u * u + v * v)
    grad = np.sqrt((u / a) ** 2 + (v / b) ** 2) / np.maximum(rho, 1e-6)
    return (rho - 1.0) / np.maximum(grad, 1.0 / max(a, b))


def _paint_ellipsoid(lab, c, label, centre, radii, into=None, keep=None):
    """Set `label` inside an axis-aligned ellipsoid (D, H, W mm), only over labels `into`.

    `keep` ([D, H, W] bool) restricts it further. Works on the ellipsoid's bounding box only, so
    small organs cost little at 256³.
    """
    lo = np.searchsorted(c, np.subtract(centre, radii))
    hi = np.searchsorted(c, np.add(centre, radii), side="right")
    sl = tuple(slice(i, j) for i, j in zip(lo, hi, strict=True))
    z, y, x = ((c[s] - ctr) / r for s, ctr, r in zip(sl, centre, radii, strict=True))
    inside = z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2 <= 1.0
    sub = lab[sl]
    if into is not None:
        inside &= np.isin(sub, [L[k] for k in into])
    if keep is not None:
        inside &= keep[sl]
    sub[inside] = L[label]


def _tube(lab, c, label, start, end, radius, into):
    """A tube of balls of `radius` mm from `start` to `end` (D, H, W mm)."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    steps = max(2, int(np.linalg.norm(end - start) / (radius / 2)) + 1)
    for t in np.linspace(0.0, 1.0, steps):
        _paint_ellipsoid(lab, c, label, start + t * (end - start), (radius,) * 3, into)


def _interp_matrix(c_out: np.ndarray, n_lo: int) -> np.ndarray:
    """[len(c_out), n_lo] linear-interpolation weights from the noise grid to coordinates c_out."""
    pos = np.clip((c_out + FOV_MM / 2) / (FOV_MM / n_lo) - 0.5, 0, n_lo - 1)
    i0 = np.minimum(np.floor(pos).astype(int), n_lo - 2)
    m, rows, w = np.zeros((len(c_out), n_lo), np.float32), np.arange(len(c_out)), pos - i0
    m[rows, i0], m[rows, i0 + 1] = 1 - w, w
    return m


def _upsample(field: np.ndarray, cz: np.ndarray, c: np.ndarray) -> np.ndarray:
    """[n_lo]³ field -> [len(cz), len(c), len(c)] at those coordinates (separable, as matmuls)."""
    mz, m = _interp_matrix(cz, field.shape[0]), _interp_matrix(c, field.shape[0])
    out = np.tensordot(mz, field, axes=(1, 0)) @ m.T  # [nz, lo, W]
    return np.matmul(m, out)  # [nz, H, W]


def _smooth_noise(rng, n: int, sigma: float) -> np.ndarray:
    """[n]³ Gaussian field with unit variance and correlation length sigma cells."""
    f = rng.standard_normal((n,) * 3, dtype=np.float32)
    f = ndimage.gaussian_filter(f, sigma, mode="wrap")
    return f / f.std()


def _wall(y, x, b: float, s: float):
    """Muscle-wall thickness (mm): 16, rising to 50 over the paraspinal muscles (back midline)."""
    return 16 + 34 * np.clip((-y / b - 0.3) / 0.5, 0, 1) * np.exp(-((x / (70 * s)) ** 2))


def _layers(lab, c, p, jit) -> dict:
    """Skin, subcutaneous fat and muscle wall; returns the trunk geometry the organs use.

    `d` [H, W] is the signed distance (mm) to the muscle's outer surface, `wall` [H, W] the wall
    thickness, `cav` [H, W] the body cavity inside the wall, `y_spine` the vertebrae's centre.
    """
    s, zc, y, x = p["scale"], c[:, None, None], c[:, None], c[None, :]
    a = min(128 * s * p["widen"], 193 - 1.3 * p["subcutaneous_fat_mm"] - 2)  # stay in the FOV
    b = 90 * s * p["widen"]
    d, wall = _ellipse_sdf(y, x, a, b), _wall(y, x, b, s)
    belly = 1 + 0.3 * expit((jit["dome_l"] - 30 - zc) / 25)  # more fat over the abdomen
    t = p["subcutaneous_fat_mm"] * belly * (0.85 + 0.15 * np.tanh(y / 30))[None]  # [D, H, 1]
    lab[d[None] <= t + 2.0] = L["skin"]
    lab[d[None] <= t] = L["subcutaneous_fat"]
    lab[:, d <= 0] = L["muscle"]
    # On the midline the distance is exact (|y| - b): find the cavity's back wall on a fine line.
    yy = np.linspace(-b, 0.0, 2001)
    back = yy[np.argmax(-yy - b < -_wall(yy, 0.0, b, s))]
    return dict(d=d, wall=wall, cav=d < -wall, y_spine=float(back + 16 * s))


def _dome(c, s, jit):
    """[H, W] height (mm) of the diaphragm: two domes, the right one higher, falling back/out."""
    y, x = c[:, None], c[None, :]
    right = jit["dome_r"] - 55 * ((x - 55 * s) / (110 * s)) ** 2
    left = jit["dome_l"] - 55 * ((x + 55 * s) / (110 * s)) ** 2
    return np.maximum(right, left) - 35 * ((y - 15) / (90 * s)) ** 2


def _abdomen(lab, c, below, p, jit, field):
    """Bowel and visceral fat below the diaphragm, then liver, stomach, spleen and kidneys."""
    s, fat = p["scale"], L["visceral_fat"]
    zs = np.nonzero(below.any(axis=(1, 2)))[0]
    if len(zs):  # the noise is upsampled only over the slices that need it
        z0, z1 = zs[0], zs[-1] + 1
        n, free = _upsample(field, c[z0:z1], c), below[z0:z1]
        thr = ndtri(p["visceral_fat_fraction"])  # fraction of a unit-normal field below
        lab[z0:z1][free] = np.where(n[free] < thr, fat, L["bowel"]).astype(lab.dtype)
    free = ("bowel", "visceral_fat")
    liver_c = (jit["dome_r"] - 60, 5 * s, 55 * s)
    _paint_ellipsoid(lab, c, "liver", liver_c, (85 * s, 75 * s, 88 * s), free)
    stomach_c = (jit["dome_l"] - 70, 25 * s, -60 * s)
    _paint_ellipsoid(lab, c, "stomach", stomach_c, (55 * s, 40 * s, 45 * s), free)
    gas_c = (stomach_c[0] + 40, stomach_c[1], stomach_c[2])
    _paint_ellipsoid(lab, c, "gas", gas_c, (20 * s, 30 * s, 30 * s), ("stomach",))
    spleen_c = (jit["dome_l"] - 75, -45 * s, -90 * s)
    _paint_ellipsoid(lab, c, "spleen", spleen_c, (55 * s, 45 * s, 28 * s), free)
    for side in (-1, 1):
        kid_c = (-180 + jit["kidney"], -50 * s, side * 65 * s)
        _paint_ellipsoid(lab, c, "kidney", kid_c, (55 * s, 28 * s, 30 * s), free)


def _lungs(lab, c, g, chest, p, jit, fields):
    """Two lungs in the chest beside the mediastinum, apices tapering; vessels along curves."""
    s, y, x, z = p["scale"], c[:, None], c[None, :], c[:, None, None]
    x_med = -8 * s  # the mediastinum sits slightly left; it widens towards the spine
    lobe = g["d"] < -g["wall"] - 3  # a pleural gap inside the wall
    lobe &= np.abs(x - x_med) > (8 + 24 * expit(-y / 20)) * s
    xc = np.where(x > x_med, 70 * s, -70 * s)
    rho = np.sqrt(((x - xc) / (75 * s)) ** 2 + ((y + 10) / (85 * s)) ** 2)  # [H, W]
    h = np.clip((z - jit["apex"]) / 150 + 1, 0, 1)  # 0 up to 150 mm below the apex, 1 at it
    lung = chest & lobe[None] & (rho[None] < 1.4 * np.sqrt(1 - h * h))
    lab[lung] = L["lung"]
    zs = np.nonzero(lung.any(axis=(1, 2)))[0]
    if len(zs):  # vessels where both smooth fields are near zero: curves, thicker at the hila
        z0, z1 = zs[0], zs[-1] + 1
        n1, n2 = (_upsample(f, c[z0:z1], c) for f in fields)
        eps = 0.16 * (1 + 1.5 * np.exp(-(((np.abs(x - x_med) - 40 * s) / (45 * s)) ** 2)))
        sub = lab[z0:z1]
        sub[lung[z0:z1] & (n1 * n1 + n2 * n2 < (eps * eps)[None])] = L["vessel"]


def _mediastinum(lab, c, g, chest, p, jit):
    """Heart in pericardial fat (left of the midline), aorta, trachea and main bronchi."""
    s, hs, ys = p["scale"], p["heart_scale"] * p["scale"], g["y_spine"]
    soft = ("lung", "vessel", "mediastinum")
    heart_c = (jit["dome_l"] + 50, 25 * s + jit["heart_y"], -30 * s + jit["heart_x"])
    heart_r = np.array([55, 48, 62]) * hs
    fat_r = heart_r + p["pericardial_fat_mm"]
    _paint_ellipsoid(lab, c, "pericardial_fat", heart_c, fat_r, soft, keep=chest)
    _paint_ellipsoid(lab, c, "heart", heart_c, heart_r, ("pericardial_fat", *soft), chest)
    arch_z = heart_c[0] + 95 * hs
    top, desc = (arch_z, 30 * s, 10 * s), (arch_z, ys + 22 * s, -28 * s)
    aorta_in = (*soft, "heart", "pericardial_fat")
    _tube(lab, c, "aorta", (heart_c[0], top[1], top[2]), top, 15 * s, aorta_in)  # ascending
    _tube(lab, c, "aorta", top, desc, 13 * s, aorta_in)  # arch
    aorta_in += ("liver", "bowel", "visceral_fat", "stomach")
    _tube(lab, c, "aorta", desc, (-FOV_MM / 2, desc[1], desc[2]), 12 * s, aorta_in)
    carina = (arch_z - 20, ys + 35 * s, 0.0)
    _tube(lab, c, "gas", carina, (FOV_MM / 2, carina[1], 0.0), 9 * s, (*soft, "muscle"))
    for side in (-1, 1):
        _tube(lab, c, "gas", carina, (carina[0] - 35, carina[1] - 5, side * 50 * s), 6 * s, soft)


def _skeleton(lab, c, g, p, jit):
    """Vertebral bodies with discs, canal and posterior elements; ribs and sternum."""
    s, z, y, x = p["scale"], c[:, None], c[:, None], c[None, :]
    d, wall, yv, rv = g["d"], g["wall"], g["y_spine"], 17 * s
    r = np.sqrt(x * x + (y - yv) ** 2)
    disc = ((c - jit["disc"]) % 27.0) < 6.0  # [D]
    for mask, bone in ((r <= rv, "cortex"), (r <= rv - 2.5, "vertebra")):
        lab[:, mask] = np.where(disc[:, None], L["disc"], L[bone])
    yc = yv - rv - 9 * s  # spinal canal centre
    rc = np.sqrt(x * x + (y - yc) ** 2)
    arch = ((rc <= 14 * s) & (y < yc + 3)) | ((np.abs(x) < 5 * s) & (y < yc) & (y > yc - 28 * s))
    solid = ((c - jit["disc"]) % 27.0 < 18.0)[:, None]  # one arch per vertebra, gaps between
    lab[:, arch] = np.where(solid, L["cortex"], lab[:, arch])
    lab[:, rc <= 8 * s] = L["canal"]
    # Ribs: the inner 9 mm of the wall, in bands along D that slope down towards the front.
    band = (d >= -wall) & (d < -wall + 9) & (np.abs(x) > 25 * s)
    iy, ix = np.nonzero(band)
    phase = (z + 0.4 * y[iy, 0][None, :] + jit["rib"]) % 26.0  # [D, n]
    rib = (phase < 11.0) & (z > jit["dome_r"] - 130) & (z < jit["apex"] + 20)
    rib &= ~((np.abs(x[0, ix]) < 30 * s) & (y[iy, 0] > 0))[None]  # costal cartilage, not bone
    lab[:, iy, ix] = np.where(rib, L["rib"], lab[:, iy, ix])
    sternum = (d >= -wall) & (d < -wall + 12) & (np.abs(x) < 18 * s) & (y > 0)
    z0, z1 = np.searchsorted(c, [jit["dome_r"] + 5, jit["apex"] - 20])
    lab[z0:z1, sternum] = L["rib"]


def _jitter(rng) -> dict[str, float]:
    """Small per-seed anatomical variation (mm), drawn first so it does not depend on size."""
    j, u = rng.normal(size=6), rng.random(2)
    return dict(
        dome_r=-25 + 6 * j[0], dome_l=-40 + 6 * j[1], apex=160 + 6 * j[2], heart_x=4 * j[3],
        heart_y=4 * j[4], kidney=8 * j[5], disc=27 * u[0], rib=26 * u[1],
    )  # fmt: skip


def ct_volume(row: Mapping, size: int, seed: int) -> tuple[np.ndarray, dict[str, float]]:
    """The chest-CT phantom of one table row.

    Returns `hu` [D, H, W] = [size]³ float32 Hounsfield units (spacing FOV_MM / size mm) and
    `truth`: float measurements from the label map (ml, mm) and the row-derived parameters.
    """
    size, rng = check_size(size), np.random.default_rng(seed)
    jit = _jitter(rng)  # every draw before the voxel noise has a fixed shape: see the docstring
    vessel_fields = [_smooth_noise(rng, VESSEL_GRID, 1.0) for _ in range(2)]
    bowel_field = _smooth_noise(rng, BOWEL_GRID, 1.0)
    p, sp = anatomy(row), FOV_MM / size
    c = ((np.arange(size) + 0.5) * sp - FOV_MM / 2).astype(np.float32)
    lab = np.zeros((size,) * 3, np.uint8)
    g = _layers(lab, c, p, jit)
    above = c[:, None, None] > _dome(c, p["scale"], jit)[None]  # [D, H, W]: the chest
    lab[:, g["cav"]] = L["mediastinum"]
    _abdomen(lab, c, g["cav"][None] & ~above, p, jit, bowel_field)
    chest = above & g["cav"][None]
    _lungs(lab, c, g, chest, p, jit, vessel_fields)
    _mediastinum(lab, c, g, chest, p, jit)
    _skeleton(lab, c, g, p, jit)
    hu = _hu_lut(p)[lab]
    hu += rng.standard_normal(lab.shape, dtype=np.float32) * np.float32(NOISE_HU)
    np.clip(hu, -1024.0, 3071.0, out=hu)
    return hu, _truth(lab, c, sp, p)


def _truth(lab, c, sp, p) -> dict[str, float]:
    """Label-map volumes (ml), heart and liver centroids along x (mm) and the row's parameters."""
    ml = np.bincount(lab.ravel(), minlength=len(LABELS)) * (sp**3 / 1000.0)
    v = {name: float(ml[i]) for name, i in L.items()}
    out = {f"{k}_ml": v[k] for k in ("subcutaneous_fat", "visceral_fat", "pericardial_fat")}
    out["fat_ml"] = sum(out.values())
    out.update(lung_ml=v["lung"] + v["vessel"], vessel_ml=v["vessel"], heart_ml=v["heart"])
    out.update(liver_ml=v["liver"], body_ml=float(ml.sum() - ml[L["air"]]))
    for name in ("heart", "liver"):  # centroid on the patient's right axis: < 0 is the left
        cols = (lab == L[name]).sum(axis=(0, 1))
        out[f"{name}_x_mm"] = float((cols * c).sum() / max(cols.sum(), 1))
    keys = ("subcutaneous_fat_mm", "pericardial_fat_mm", "visceral_fat_fraction", "lung_hu")
    out.update({k: float(p[k]) for k in (*keys, "vertebra_hu", "liver_hu")}, spacing_mm=sp)
    return out


def image_seed(seed: int, index: int) -> int:
    """Patient `index`'s image seed, derived from the cohort seed (independent streams)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def write_cohort(
    out_dir: str | os.PathLike, n: int, size: int, seed: int, progress: bool = True
) -> pd.DataFrame:
    """Write `n` phantoms as `<patient_id>.nii.gz` (int16 HU), `table.csv` and `truth.csv`.

    Returns the clinical table. Every file appears atomically.
    """
    size, out, table = check_size(size), Path(out_dir), clinical_table(n, seed)
    sp, rows = FOV_MM / size, []
    affine = diagonal_affine((sp, sp, sp), (size,) * 3)
    records = tqdm(table.to_dict("records"), desc="ct phantoms", unit="vol", disable=not progress)
    for i, row in enumerate(records):
        hu, truth = ct_volume(row, size, image_seed(seed, i))
        pid = row["patient_id"]
        save_nifti(out / f"{pid}.nii.gz", Volume(hu=hu, affine=affine, source=f"phantom:ct:{pid}"))
        rows.append({"patient_id": pid, **truth})
    write_text(out / "table.csv", table.to_csv(index=False))
    write_text(out / "truth.csv", pd.DataFrame(rows).to_csv(index=False))
    return table
