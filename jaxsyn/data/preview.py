"""Pictures people look at: orthogonal slices of volumes as PNG grids."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from jaxsyn.data.volume import Volume
from jaxsyn.data.volumes import resample
from jaxsyn.files import atomic_path


def orthogonal_slices(hu: np.ndarray, window: tuple[float, float] = (-1024.0, 600.0)) -> np.ndarray:
    """uint8 [S, 3S] of the central axial, coronal and sagittal slices of `hu` [D, H, W].

    Shown in radiological convention: anterior up in axial, superior up in coronal and sagittal,
    the patient's right on the viewer's left.
    """
    d, h, w = (n // 2 for n in hu.shape)
    axial = hu[d, ::-1, ::-1]  # rows anterior->posterior, columns patient right->left
    coronal = hu[::-1, h, ::-1]  # rows superior->inferior
    sagittal = hu[::-1, :, w]  # rows superior->inferior, columns posterior->anterior
    lo, hi = window
    tiles = [_fit(np.asarray(t, np.float32), max(hu.shape)) for t in (axial, coronal, sagittal)]
    grey = (np.clip((np.concatenate(tiles, axis=1) - lo) / (hi - lo), 0, 1) * 255).round()
    return grey.astype(np.uint8)


def volume_slices(volume: Volume, window: tuple[float, float] = (-1024.0, 600.0)) -> np.ndarray:
    """`orthogonal_slices` of a scan at its true proportions: uint8 [S, 3S] after resampling to
    isotropic voxels of its finest spacing (a 0.96 x 0.96 x 1.5 mm scan would otherwise show
    its coronal and sagittal planes squashed to two thirds of their height)."""
    if len(set(np.round(volume.spacing, 6))) > 1:
        volume = resample(volume, min(volume.spacing))
    return orthogonal_slices(volume.hu, window)


def batch_example_image(low: np.ndarray, slab: np.ndarray, window=(-1024.0, 600.0)) -> np.ndarray:
    """uint8 [S, 4S]: a training example as the discriminators see it.

    `low` [S/4]³ (upsampled ×4 by repetition, as nearest-neighbour) in orthogonal slices, then the
    central axial slice of the full-resolution `slab` [S/8, S, S].
    """
    up = np.kron(low, np.ones((4, 4, 4), low.dtype))
    axial = np.asarray(slab[slab.shape[0] // 2, ::-1, ::-1], np.float32)
    lo, hi = window
    grey = (np.clip((axial - lo) / (hi - lo), 0, 1) * 255).round().astype(np.uint8)
    return np.concatenate([orthogonal_slices(up, window), grey], axis=1)


def _fit(tile: np.ndarray, size: int) -> np.ndarray:
    out = np.full((size, size), tile.min(), np.float32)
    out[: tile.shape[0], : tile.shape[1]] = tile
    return out


def save_grid(
    path: str | os.PathLike,
    rows: list[np.ndarray],
    labels: list[str],
    scale: int = 1,
    columns: list[str] | None = None,
) -> Path:
    """Stack uint8 images (equal widths) vertically, each with a label, into one PNG; `columns`:
    titles of the equal-width panels every row is made of, in a band on top."""
    band = 12
    width = max(r.shape[1] for r in rows) * scale
    top = band if columns else 0
    canvas = Image.new("L", (width, top + sum(r.shape[0] * scale + band for r in rows)), 0)
    draw, y = ImageDraw.Draw(canvas), top
    for i, title in enumerate(columns or []):
        draw.text((2 + i * width // len(columns), 0), title, fill=255)
    for image, label in zip(rows, labels, strict=True):
        draw.text((2, y), label, fill=255)
        tile = Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale))
        canvas.paste(tile, (0, y + band))
        y += image.shape[0] * scale + band
    with atomic_path(path, suffix=".png") as tmp:
        canvas.save(tmp, format="PNG")
    return Path(path)
