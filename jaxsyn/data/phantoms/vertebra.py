"""Procedural 9-slice vertebral units (axial CT) whose shape depends on the spine region.

The pGAN study (Sun et al. 2021) generates 9-channel vertebral units labelled cervical, thoracic or
lumbar; this phantom gives units with known truth in that layout.

Labels (`labels(n, seed)`): `image_id`, `region` (cervical / thoracic / lumbar, drawn with the
real prior 0.25 / 0.55 / 0.20 of the pGAN data) and its one-hot columns `cervical`, `thoracic`,
`lumbar` (int 0/1).

Unit (`vertebral_unit(row, size, seed)`): uint8 [size, size, 9], nine axial slices from the upper
endplate (channel 0) to the lower one (channel 8), bone window: air 0, soft tissue ~65,
cancellous bone ~150, cortical bone 255. Rows anterior -> posterior. Per region (body half-axes
in units of the image half-width, before a per-unit scale of 0.9-1.1):
  cervical  small wide oval body (0.22 x 0.15); large triangular canal; short bifid spinous
            process; transverse processes pierced by the transverse foramina.
  thoracic  heart-shaped body (0.26 x 0.24); small round canal; long spinous process; transverse
            processes with the heads of the ribs beside them.
  lumbar    large kidney-shaped body (0.36 x 0.26); triangular canal; short thick spinous process;
            long thin transverse processes.
Through the unit: the outermost slices cut the intervertebral discs (soft tissue, no bone), the
body is waisted towards the middle, and the posterior arch (pedicles, laminae, processes) appears
in the middle slices. A small rotation, the scale and noise vary per unit; `truth` records them.

`write_cohort(out, n, size, seed)` writes `<image_id>.npy` (the unit), `<image_id>.png` (a 3 x 3
mosaic preview), `labels.csv` and `truth.csv` - the multi-channel layout DESIGN.md gives.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import ndimage

from jaxsyn.data.phantoms import images2d
from jaxsyn.errors import ConfigError

REGIONS = ("cervical", "thoracic", "lumbar")
PRIOR = (0.25, 0.55, 0.20)  # pGAN: the regions' share of vertebral units
SLICES = 9
# body half-axes (u, v), canal half-axes, spinous length, transverse length, by region
SHAPES = {
    "cervical": dict(body=(0.22, 0.15), canal=(0.17, 0.12), spinous=0.22, transverse=0.30),
    "thoracic": dict(body=(0.26, 0.24), canal=(0.10, 0.10), spinous=0.45, transverse=0.38),
    "lumbar": dict(body=(0.36, 0.26), canal=(0.15, 0.11), spinous=0.30, transverse=0.55),
}
SOFT, CANCELLOUS, CORTICAL, CANAL = 0.25, 0.6, 1.0, 0.18


def labels(n: int, seed: int) -> pd.DataFrame:
    if n < 1:
        raise ConfigError(f"n is {n}; expected >= 1")
    rng = np.random.default_rng(seed)
    region = rng.choice(len(REGIONS), n, p=PRIOR)
    table = {"image_id": [f"V{i:05d}" for i in range(n)], "region": np.array(REGIONS)[region]}
    table.update({r: (region == k).astype(np.int64) for k, r in enumerate(REGIONS)})
    return pd.DataFrame(table)


def _bar(u, v, start, end, half_width):
    """Mask of points within half_width of the segment start -> end."""
    (u0, v0), (u1, v1) = start, end
    du, dv = u1 - u0, v1 - v0
    t = np.clip(((u - u0) * du + (v - v0) * dv) / (du * du + dv * dv), 0, 1)
    return (u - u0 - t * du) ** 2 + (v - v0 - t * dv) ** 2 < half_width**2


def _slice(u, v, region: str, z: float, rng_bits: dict) -> np.ndarray:
    """Attenuation [S, S] in [0, 1] of one axial slice at height z in [-1, 1]."""
    shape = SHAPES[region]
    img = np.zeros(u.shape)
    img[(u / 0.95) ** 2 + ((v - 0.1) / 0.85) ** 2 < 1] = SOFT  # paraspinal soft tissue
    bu, bv = shape["body"]
    waist = 1 - 0.12 * (1 - z**2)
    cv = -0.3  # body centre (anterior)
    ru, rv = (u / (bu * waist)) ** 2, ((v - cv) / (bv * waist)) ** 2
    if region == "thoracic":  # heart shape: a notch at the posterior midline
        rv = rv + 0.6 * np.exp(-((u / 0.08) ** 2)) * (v > cv)
    if region == "lumbar":  # kidney: a shallow posterior concavity
        rv = rv + 0.35 * np.exp(-((u / 0.15) ** 2)) * (v > cv)
    body = ru + rv < 1
    if abs(z) > 0.8:  # the intervertebral disc
        img[body] = 0.35
        return img
    img[body] = CANCELLOUS + 0.05 * rng_bits["trabecular"][body]
    img[body & (ru + rv > 0.8)] = CORTICAL
    if abs(z) < 0.6:  # posterior arch
        ku, kv = shape["canal"]
        cc = cv + bv + kv + 0.02
        canal_r = (u / ku) ** 2 + ((v - cc) / kv) ** 2
        if region != "thoracic":  # triangular: wider anteriorly
            canal_r = (u / (ku * (1.2 - 0.6 * (v - cc + kv) / (2 * kv)))) ** 2 + (
                (v - cc) / kv
            ) ** 2
        arch = (canal_r < 2.2) & (canal_r >= 1) & (v > cv + 0.5 * bv)
        img[arch] = CORTICAL
        img[canal_r < 1] = CANAL
        back = cc + kv * 1.4
        length = shape["spinous"]
        if region == "cervical":  # bifid
            for s in (-1, 1):
                img[_bar(u, v, (0, back), (s * 0.08, back + length), 0.035)] = CORTICAL
        else:
            img[_bar(u, v, (0, back), (0, back + length), 0.03 + 0.02 * (region == "lumbar"))] = (
                CORTICAL
            )
        for s in (-1, 1):
            root = (s * ku * 1.2, cc)
            tip = (s * (ku * 1.2 + shape["transverse"]), cc - 0.05)
            width = 0.05 if region == "cervical" else 0.035 if region == "thoracic" else 0.025
            img[_bar(u, v, root, tip, width)] = CORTICAL
            if region == "cervical":  # transverse foramen
                fu = s * (ku * 1.2 + 0.5 * shape["transverse"])
                img[(u - fu) ** 2 + (v - cc + 0.05) ** 2 < 0.03**2] = SOFT
            if region == "thoracic":  # rib head beside the transverse process
                img[((u - tip[0]) / 0.07) ** 2 + ((v - tip[1] + 0.1) / 0.05) ** 2 < 1] = CORTICAL
    return img


def vertebral_unit(row: Mapping, size: int, seed: int) -> tuple[np.ndarray, dict]:
    """(uint8 [size, size, 9] unit, truth) for a label row with a `region`."""
    size = images2d.check_size(size)
    region = str(row.get("region"))
    if region not in REGIONS:
        raise ConfigError(f"region is {region!r}; expected one of {REGIONS}")
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.9, 1.1)
    angle = rng.uniform(-0.12, 0.12)
    v, u = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    c, s = np.cos(angle), np.sin(angle)
    ur, vr = (c * u + s * v) / scale, (-s * u + c * v) / scale
    bits = {"trabecular": rng.standard_normal((size, size))}
    bits["trabecular"] = ndimage.gaussian_filter(bits["trabecular"], max(0.7, size / 128))
    bits["trabecular"] /= bits["trabecular"].std() + 1e-12
    unit = np.stack([_slice(ur, vr, region, z, bits) for z in np.linspace(-1, 1, SLICES)], -1)
    unit = ndimage.gaussian_filter(unit, (max(0.5, size / 256),) * 2 + (0,))
    unit = np.clip(unit + rng.normal(0, 0.015, unit.shape), 0, 1)
    truth = {"region": region, "scale": float(scale), "angle": float(angle)}
    return (unit * 255).round().astype(np.uint8), truth


def mosaic(unit: np.ndarray) -> np.ndarray:
    """[S, S, 9] -> [3S, 3S]: the slices in reading order (a preview)."""
    return images2d.mosaic(unit)


STREAM = 4  # this kind's per-image seed stream (images2d.image_seed)


def image_seed(seed: int, index: int) -> int:
    """Image `index`'s seed, derived from the cohort seed (independent streams)."""
    return images2d.image_seed(seed, index, STREAM)


def write_cohort(
    out_dir: str | os.PathLike, n: int, size: int, seed: int, progress: bool = True
) -> pd.DataFrame:
    """Write `n` units as `<image_id>.npy` + `<image_id>.png` previews, `labels.csv`, `truth.csv`."""
    return images2d.write_cohort(out_dir, labels(n, seed), vertebral_unit, size=size, seed=seed,
                                 stream=STREAM, desc="vertebrae", progress=progress)  # fmt: skip
