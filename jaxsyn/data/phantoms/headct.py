"""Procedural axial head-CT slices with the five intracranial haemorrhage types and known truth.

Labels (`labels(n, seed)`, one row per slice; `image_id` then the five types as int 0/1, the
RSNA intracranial-haemorrhage label set). A slice has any haemorrhage with p 0.45; given that,
each type is present with p epidural 0.10, subdural 0.40, subarachnoid 0.35,
intraparenchymal 0.35, intraventricular 0.20, independently, and a slice whose draw came out
empty gets its most likely type (subdural) - so co-occurring types make unequal label
combinations, as in the real data.

Image (`head_slice(row, size, seed)`): `size` x `size` uint8 in a brain window (level 40 HU,
width 80 HU: 0 HU and below black, 80 HU and above white), rows anterior -> posterior, columns the
patient's right -> left (radiological display). Anatomy in Hounsfield units, normalised
coordinates u, v in [-1, 1]:
  air        -1000 outside the head.
  scalp      +30 HU, 3 % of the head's half-axes.
  skull      +1000 HU, an elliptic ring (half-axes 0.78-0.86 x 0.90-0.96, 4-6 % thick).
  brain      grey matter +40 HU with a white-matter core +28 HU, smooth texture (+-3 HU).
  sulci      CSF +5 HU in thin folds under the inner table; the interhemispheric fissure.
  ventricles two lateral ventricles (CSF +5 HU), a butterfly of tilted ellipses near the centre.
Haemorrhages (acute blood +60 to +80 HU), each where a radiologist looks for it:
  epidural          a biconvex lens against the inner table of one side (does not cross sutures:
                    spans 25-45 degrees of the circumference), up to 8-14 % of the width thick.
  subdural          a crescent along the inner table over 60-120 degrees, 3-6 % thick.
  subarachnoid      blood filling sulci of one hemisphere and the interhemispheric fissure.
  intraparenchymal  a round or oval clot (radius 6-14 % of the head) in the parenchyma, with a thin
                    dark oedema rim (+20 HU).
  intraventricular  blood layering in the dependent (posterior) part of the lateral ventricles.
Each type draws from its own random stream, so adding one leaves the rest of the slice unchanged.
`truth` records the geometry (side, arc, thickness, centre, radius).
`write_cohort(out, n, size, seed)` writes `<image_id>.png`, `labels.csv` and `truth.csv`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import ndimage

from jaxsyn.data.phantoms import images2d
from jaxsyn.errors import ConfigError

TYPES = ("epidural", "subdural", "subarachnoid", "intraparenchymal", "intraventricular")
P_ANY = 0.45
P_TYPE = (0.10, 0.40, 0.35, 0.35, 0.20)
WINDOW = (40.0, 80.0)  # brain window: level, width (HU)


def labels(n: int, seed: int) -> pd.DataFrame:
    """The label table: image_id ("H00000", ...) and the five haemorrhage types as int 0/1."""
    if n < 1:
        raise ConfigError(f"n is {n}; expected >= 1")
    rng = np.random.default_rng(seed)
    bleed = rng.random(n) < P_ANY
    types = (rng.random((n, len(TYPES))) < np.asarray(P_TYPE)) & bleed[:, None]
    empty = bleed & ~types.any(1)
    types[empty, TYPES.index("subdural")] = True
    table = {"image_id": [f"H{i:05d}" for i in range(n)]}
    table.update({t: types[:, j].astype(np.int64) for j, t in enumerate(TYPES)})
    return pd.DataFrame(table)


def _angle_in(theta, centre, half):
    """Mask of angles within `half` of `centre` (radians, wrapping)."""
    return np.abs((theta - centre + np.pi) % (2 * np.pi) - np.pi) < half


def head_slice(row: Mapping, size: int, seed: int) -> tuple[np.ndarray, dict]:
    """(uint8 [size, size] brain-window image, truth dict) for a label row (types as 0/1)."""
    size = images2d.check_size(size)
    rng = np.random.default_rng(seed)
    has = {t: bool(int(row.get(t, 0))) for t in TYPES}
    v, u = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    px = 2.0 / size

    a, b = rng.uniform(0.78, 0.86), rng.uniform(0.90, 0.96)  # skull outer half-axes
    thick = rng.uniform(0.04, 0.06)
    texture = images2d.smooth_noise(rng, size, 0.02)
    folds = images2d.smooth_noise(rng, size, 0.015)
    noise = rng.normal(0, 2.0, (size, size))
    streams = {t: np.random.default_rng([seed, k + 1]) for k, t in enumerate(TYPES)}

    r = np.sqrt((u / a) ** 2 + (v / b) ** 2)  # 1 at the outer table
    theta = np.arctan2(v, u)
    inner = 1 - thick  # the inner table, in units of r
    hu = np.full((size, size), -1000.0)
    hu[r < 1.03] = 30.0  # scalp
    hu[r < 1.0] = 1000.0  # skull
    brain = r < inner
    depth = (inner - r) / inner  # 0 at the inner table, 1 at the centre
    hu[brain] = np.where(depth[brain] > 0.35, 28.0, 40.0) + 3.0 * texture[brain]
    sulci = brain & (depth < 0.18) & (np.abs(folds) < 0.12)
    fissure = brain & (np.abs(u) < 0.012 + px) & (np.abs(v) > 0.25)
    hu[sulci | fissure] = 5.0
    ventricles = np.zeros_like(brain)
    for sign in (-1, 1):
        cu, cv = sign * 0.13, 0.02
        c, s = np.cos(-sign * 0.35), np.sin(-sign * 0.35)  # frontal horns close, posterior apart
        du, dv = u - cu, v - cv
        ventricles |= ((c * du + s * dv) / 0.07) ** 2 + ((-s * du + c * dv) / 0.30) ** 2 < 1
    hu[ventricles & brain] = 5.0
    truth = {"skull_a": float(a), "skull_b": float(b)}

    def blood(g):
        return g.uniform(60.0, 80.0)

    if has["subdural"]:
        g = streams["subdural"]
        side, half = g.choice([-1, 1]), np.deg2rad(g.uniform(30, 60))
        centre = np.arctan2(g.uniform(-0.5, 0.5), side)  # over one convexity
        width = g.uniform(0.03, 0.06)
        crescent = brain & _angle_in(theta, centre, half) & (r > inner - width / b)
        hu[crescent] = blood(g)
        truth.update(subdural_angle=float(centre), subdural_thickness=float(width))
    if has["epidural"]:
        g = streams["epidural"]
        side, half = g.choice([-1, 1]), np.deg2rad(g.uniform(12, 22))
        centre = np.arctan2(g.uniform(-0.6, 0.6), side)
        peak = g.uniform(0.08, 0.14)
        offset = np.abs((theta - centre + np.pi) % (2 * np.pi) - np.pi) / half
        lens = brain & (offset < 1) & (r > inner - peak * np.sqrt(np.clip(1 - offset**2, 0, 1)) / b)
        hu[lens] = blood(g)
        truth.update(epidural_angle=float(centre), epidural_thickness=float(peak))
    if has["subarachnoid"]:
        g = streams["subarachnoid"]
        side = g.choice([-1, 1])
        hu[(sulci & (u * side > 0)) | fissure] = blood(g) - 5.0
        truth.update(subarachnoid_side=int(side))
    if has["intraventricular"]:
        g = streams["intraventricular"]
        level = g.uniform(0.0, 0.2)  # blood below this row in the ventricles (posterior)
        hu[ventricles & brain & (v > level)] = blood(g)
        truth.update(intraventricular_level=float(level))
    if has["intraparenchymal"]:
        g = streams["intraparenchymal"]
        for _ in range(100):
            cu, cv = g.uniform(-0.5, 0.5) * a, g.uniform(-0.6, 0.6) * b
            radius = g.uniform(0.06, 0.14)
            rr = np.sqrt((cu / a) ** 2 + (cv / b) ** 2)
            if rr + radius / min(a, b) < inner - 0.08:
                break
        d = np.sqrt((u - cu) ** 2 + ((v - cv) / 1.2) ** 2)
        hu[brain & (d < radius + 0.02)] = 20.0  # oedema rim
        hu[brain & (d < radius)] = blood(g)
        truth.update(ich_u=float(cu), ich_v=float(cv), ich_radius=float(radius))

    hu = ndimage.gaussian_filter(hu, max(0.5, size / 512)) + noise
    level, width = WINDOW
    image = np.clip((hu - (level - width / 2)) / width, 0, 1)
    return (image * 255).round().astype(np.uint8), truth


STREAM = 3  # this kind's per-image seed stream (images2d.image_seed)


def image_seed(seed: int, index: int) -> int:
    """Image `index`'s seed, derived from the cohort seed (independent streams)."""
    return images2d.image_seed(seed, index, STREAM)


def write_cohort(
    out_dir: str | os.PathLike, n: int, size: int, seed: int, progress: bool = True
) -> pd.DataFrame:
    """Write `n` slices as `<image_id>.png`, `labels.csv` and `truth.csv`; returns labels."""
    return images2d.write_cohort(out_dir, labels(n, seed), head_slice, size=size, seed=seed,
                                 stream=STREAM, desc="head CT", progress=progress)  # fmt: skip
