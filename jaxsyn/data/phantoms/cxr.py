"""Procedural frontal (PA) chest radiographs with six binary findings and known truth.

The generative story below is the ground truth that tests and experiments check against
(sigmoid(t) = 1 / (1 + e^-t); every draw comes from `np.random.default_rng`).

Labels (`labels(n, seed)`, one row per image; `image_id` then the findings, int 0/1; the
prevalences are CheXpert-like in order of magnitude, the two dependencies make label
combinations unequally likely, as in real data):
  enlarged_heart    Bernoulli(0.30).
  pleural_effusion  sigmoid(-1.6 + 1.2 enlarged_heart)  (0.17 without, 0.40 with).
  nodule            Bernoulli(0.12).
  pneumothorax      Bernoulli(0.10).
  consolidation     Bernoulli(0.18).
  support_device    sigmoid(-1.4 + 1.0 pneumothorax + 0.6 consolidation).

Image (`radiograph(row, size, seed)`): `size` x `size` uint8, display convention (air dark,
bone bright), rows superior -> inferior, columns image-left = the patient's right (as a PA film is
read). Coordinates below are normalised, u (columns) and v (rows) in [-1, 1]. Attenuation map:
  body          soft tissue 0.42 inside a trunk ellipse (half-width 0.80-0.92, shoulders at v -0.9).
  lungs         two rounded fields (centres u = -/+0.38, v -0.08; half-axes 0.25-0.29 x 0.58),
                air 0.10 with smooth vessel markings denser towards the hila; their bases are the
                diaphragm domes (the right one higher, as the liver pushes it).
  mediastinum   a central band (half-width 0.11) of 0.52 and the spine (0.62, vertebral steps).
  heart         ellipse centred right of the midline in the image (the patient's left), half-height
                0.22, half-width from the cardiothoracic ratio: CTR ~ N(0.45, 0.025) clipped to
                [0.38, 0.49] normally, N(0.60, 0.03) clipped to [0.52, 0.70] with enlarged_heart
                (a CTR > 0.5 is the clinical criterion).
  ribs          10 posterior rib arcs per side over the thorax (+0.10), clavicles (+0.2).
Findings drawn where a reader looks for them:
  pleural_effusion  fluid (0.45) fills one lung base (or both, p 0.4) to 12-30 % of its height,
                    with a meniscus rising laterally: the costophrenic angle is blunted.
  nodule            a round opacity (+0.30), radius 2.5-5 % of the image, inside a lung field.
  pneumothorax      one lung's apical-lateral rim (18-35 % of its width) is air without markings
                    (0.04) behind a thin bright visceral-pleural line.
  consolidation     a patchy airspace opacity (+0.28, thresholded smooth noise) in one lobe.
  support_device    an endotracheal tube (two bright parallel walls down the trachea to above the
                    carina) and a central venous catheter from the right subclavian region.
Each finding draws from its own random stream, so adding one to a row leaves the rest of the image
unchanged. Exposure (gamma 0.85-1.15), a little blur and noise vary per image; `truth` records the geometry
(CTR, nodule centre and radius, effusion height and sides, pneumothorax side and depth).

`write_cohort(out, n, size, seed)` writes `<image_id>.png`, `labels.csv` and `truth.csv` (the
layout DESIGN.md gives for single-channel images).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import ndimage

from jaxsyn.data.phantoms import images2d
from jaxsyn.errors import ConfigError

FINDINGS = (
    "enlarged_heart",
    "pleural_effusion",
    "nodule",
    "pneumothorax",
    "consolidation",
    "support_device",
)


def _sigmoid(t):
    return 1.0 / (1.0 + np.exp(-t))


def labels(n: int, seed: int) -> pd.DataFrame:
    """The label table: image_id ("X00000", ...) and the six findings as int 0/1."""
    if n < 1:
        raise ConfigError(f"n is {n}; expected >= 1")
    rng = np.random.default_rng(seed)
    heart = rng.random(n) < 0.30
    effusion = rng.random(n) < _sigmoid(-1.6 + 1.2 * heart)
    nodule = rng.random(n) < 0.12
    ptx = rng.random(n) < 0.10
    consolidation = rng.random(n) < 0.18
    device = rng.random(n) < _sigmoid(-1.4 + 1.0 * ptx + 0.6 * consolidation)
    values = (heart, effusion, nodule, ptx, consolidation, device)
    table = {"image_id": [f"X{i:05d}" for i in range(n)]}
    table.update({name: v.astype(np.int64) for name, v in zip(FINDINGS, values, strict=True)})
    return pd.DataFrame(table)


def _ellipse(u, v, cu, cv, au, av):
    return ((u - cu) / au) ** 2 + ((v - cv) / av) ** 2


def radiograph(row: Mapping, size: int, seed: int) -> tuple[np.ndarray, dict]:
    """(uint8 [size, size] image, truth dict) for a label row (the findings as 0/1)."""
    size = images2d.check_size(size)
    rng = np.random.default_rng(seed)
    has = {f: bool(int(row.get(f, 0))) for f in FINDINGS}
    v, u = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    px = 2.0 / size  # one pixel in normalised units

    # Anatomy draws, in a fixed order so a seed means the same patient at every size.
    trunk_w = rng.uniform(0.80, 0.92)
    lung_w = rng.uniform(0.25, 0.29)
    lung_h = rng.uniform(0.54, 0.62)
    lung_v = rng.uniform(-0.12, -0.04)
    ctr = rng.normal(0.60, 0.03) if has["enlarged_heart"] else rng.normal(0.45, 0.025)
    ctr = np.clip(ctr, 0.52, 0.70) if has["enlarged_heart"] else np.clip(ctr, 0.38, 0.49)
    gamma = rng.uniform(0.85, 1.15)
    rib_phase = rng.uniform(0, 1)
    markings = images2d.smooth_noise(rng, size, 0.03)
    patches = images2d.smooth_noise(rng, size, 0.06)
    noise = rng.normal(0, 0.012, (size, size))
    # Each finding draws from its own stream: adding one leaves the rest of the image as it was.
    streams = {f: np.random.default_rng([seed, k + 1]) for k, f in enumerate(FINDINGS)}

    img = np.full((size, size), 0.05)
    body = (np.abs(u) / trunk_w) ** 4 + ((v - 0.15) / 1.15) ** 4 < 1.0
    img[body] = 0.42
    thorax_half = 0.38 + lung_w  # lateral lung edges: the thoracic width for the CTR
    lungs = {}
    for side, cu in (("right", -0.38), ("left", 0.38)):  # patient's right on the image left
        shape = _ellipse(u, v, cu, lung_v, lung_w, lung_h)
        medial = np.abs(u) > 0.11  # the mediastinum
        dome = lung_v + lung_h * 0.85 - 0.12 * np.clip(1 - ((u - cu) / lung_w) ** 2, 0, 1)
        lungs[side] = (shape < 1.0) & medial & (v < dome - 0.04 * (side == "right"))
    air = lungs["right"] | lungs["left"]
    hilum = np.exp(-(((np.abs(u) - 0.2) / 0.15) ** 2 + ((v - lung_v) / 0.25) ** 2))
    img[air] = 0.10 + (0.035 + 0.05 * hilum[air]) * np.clip(markings[air], -1.5, 2.5)
    spine = np.abs(u) < 0.07
    img[body & (np.abs(u) < 0.11)] = 0.52
    img[body & spine] = 0.62 + 0.04 * (np.sin(v[body & spine] * 40) > 0.6)

    heart_hw = ctr * thorax_half  # half of the heart's width = CTR x half the thoracic width
    heart_cu = 0.05 + 0.3 * heart_hw
    heart = _ellipse(u, v, heart_cu, lung_v + 0.32, heart_hw, 0.22) < 1.0
    img[heart] = np.maximum(img[heart], 0.5)

    truth = {"ctr": float(ctr), "heart_halfwidth": float(heart_hw), "gamma": float(gamma)}
    if has["pleural_effusion"]:
        rng = streams["pleural_effusion"]
        sides = ["right", "left"] if rng.random() < 0.4 else [rng.choice(["right", "left"])]
        height = rng.uniform(0.12, 0.30) * 2 * lung_h
        base = lung_v + lung_h
        for side in sides:
            cu = -0.38 if side == "right" else 0.38
            meniscus = 0.6 * height * ((u - cu) / lung_w) ** 2 * (u * cu > 0)
            fluid = lungs[side] & (v > base - height - meniscus)
            img[fluid] = 0.45
        truth.update(effusion_sides="+".join(sides), effusion_height=float(height))
    if has["pneumothorax"]:
        rng = streams["pneumothorax"]
        side = str(rng.choice(["right", "left"]))
        cu = -0.38 if side == "right" else 0.38
        depth = rng.uniform(0.18, 0.35)
        shrunk = _ellipse(u, v, cu + np.sign(-cu) * depth * lung_w, lung_v + depth * 0.4 * lung_h,
                          lung_w * (1 - depth), lung_h * (1 - 0.5 * depth))  # fmt: skip
        rim = lungs[side] & (shrunk >= 1.0)
        img[rim] = 0.04
        line = lungs[side] & (np.abs(shrunk - 1.0) < 2.5 * px / (lung_w * (1 - depth)))
        img[line] = 0.35
        truth.update(pneumothorax_side=side, pneumothorax_depth=float(depth))
    if has["consolidation"]:
        rng = streams["consolidation"]
        side = str(rng.choice(["right", "left"]))
        cu = -0.38 if side == "right" else 0.38
        cv = lung_v + rng.uniform(-0.1, 0.4) * lung_h
        lobe = _ellipse(u, v, cu, cv, 0.75 * lung_w, 0.4 * lung_h) < 1.0
        patch = lungs[side] & lobe & (patches > -0.6)
        img[patch] += 0.28
        truth.update(consolidation_side=side, consolidation_v=float(cv))
    if has["nodule"]:
        rng = streams["nodule"]
        side = str(rng.choice(["right", "left"]))
        cu = -0.38 if side == "right" else 0.38
        for _ in range(100):  # a centre inside the lung field
            nu = cu + rng.uniform(-0.7, 0.7) * lung_w
            nv = lung_v + rng.uniform(-0.7, 0.5) * lung_h
            iu, iv = int((nu + 1) / px), int((nv + 1) / px)
            if lungs[side][min(iv, size - 1), min(iu, size - 1)]:
                break
        radius = rng.uniform(0.05, 0.10)  # 2.5-5 % of the image side (2 units)
        d = np.sqrt((u - nu) ** 2 + (v - nv) ** 2)
        img += 0.30 * np.clip((radius - d) / (1.5 * px) + 0.5, 0, 1)
        truth.update(nodule_u=float(nu), nodule_v=float(nv), nodule_radius=float(radius))

    # Bones over everything: posterior ribs and clavicles.
    for k in range(10):
        base_v = -0.62 + (k + 0.5 * rib_phase) * 0.12
        for sign in (-1, 1):
            arc = base_v + 0.25 * ((u * sign - 0.12) / 0.7) ** 2 - 0.1
            band = (np.abs(v - arc) < 0.018 + px) & (u * sign > 0.1) & (np.abs(u) < thorax_half)
            img[band & body & (v < lung_v + lung_h)] += 0.10
    for sign in (-1, 1):
        clavicle = np.abs(v - (-0.66 + 0.25 * (np.abs(u) - 0.15))) < 0.025 + px
        img[clavicle & (u * sign > 0.08) & (np.abs(u) < 0.7)] += 0.2

    if has["support_device"]:
        rng = streams["support_device"]
        tip = lung_v - rng.uniform(0.05, 0.15)  # above the carina
        tube = (v < tip) & (np.abs(np.abs(u - 0.0) - 0.02) < 0.5 * px + 0.004)
        img[tube] = 0.95
        t = np.linspace(0, 1, 200)  # central line: right subclavian -> SVC
        cu, cv = -0.45 + 0.38 * t, -0.62 + 0.45 * t**1.5
        iu = np.clip(((cu + 1) / px).astype(int), 0, size - 1)
        iv = np.clip(((cv + 1) / px).astype(int), 0, size - 1)
        line = np.zeros((size, size), bool)
        line[iv, iu] = True
        line = ndimage.binary_dilation(line, iterations=max(1, size // 256))
        img[line] = 0.9
        truth.update(ett_tip_v=float(tip))

    img = ndimage.gaussian_filter(img, max(0.5, size / 512))
    img = np.clip(img, 0, 1) ** gamma + noise
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8), truth


STREAM = 2  # this kind's per-image seed stream (images2d.image_seed)


def image_seed(seed: int, index: int) -> int:
    """Image `index`'s seed, derived from the cohort seed (independent streams)."""
    return images2d.image_seed(seed, index, STREAM)


def write_cohort(
    out_dir: str | os.PathLike, n: int, size: int, seed: int, progress: bool = True
) -> pd.DataFrame:
    """Write `n` radiographs as `<image_id>.png`, `labels.csv` and `truth.csv`; returns labels."""
    return images2d.write_cohort(out_dir, labels(n, seed), radiograph, size=size, seed=seed,
                                 stream=STREAM, desc="cxr phantoms", progress=progress)  # fmt: skip
