"""What the 2D phantoms (chest radiographs, head-CT slices, vertebral units) share: the size
check, smooth noise, per-image seeds and the cohort writer in the layout the image loader reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage
from tqdm.auto import tqdm

from jaxsyn.errors import ConfigError
from jaxsyn.files import atomic_path, write_text

SIZES = (16, 2048)  # smallest and largest image side accepted


def check_size(size) -> int:
    if not isinstance(size, int | np.integer) or not SIZES[0] <= size <= SIZES[1]:
        raise ConfigError(f"size is {size!r}; expected an integer in [{SIZES[0]}, {SIZES[1]}]")
    return int(size)


def smooth_noise(rng, size: int, sigma_frac: float) -> np.ndarray:
    """Zero-mean, unit-std smooth noise at `size`, correlation length sigma_frac of the image."""
    n = max(8, min(size, 64))
    field = ndimage.gaussian_filter(rng.standard_normal((n, n)), sigma_frac * n, mode="wrap")
    field = ndimage.zoom(field, size / n, order=1)[:size, :size]
    return (field - field.mean()) / (field.std() + 1e-12)


def image_seed(seed: int, index: int, stream: int) -> int:
    """Image `index`'s seed from the cohort seed; `stream` keeps the phantom kinds apart."""
    return int(np.random.SeedSequence([seed, index, stream]).generate_state(1)[0])


def mosaic(image: np.ndarray) -> np.ndarray:
    """[H, W, C] -> [rows H, cols W], the channels in reading order on a near-square grid
    (9 -> 3 x 3); [H, W] is returned as it is. A preview of multi-channel examples."""
    if image.ndim == 2:
        return image
    h, w, c = image.shape
    cols = int(np.ceil(np.sqrt(c)))
    rows = int(np.ceil(c / cols))
    tiles = np.zeros((rows * h, cols * w), image.dtype)
    for k in range(c):
        r, q = divmod(k, cols)
        tiles[r * h : (r + 1) * h, q * w : (q + 1) * w] = image[..., k]
    return tiles


def write_cohort(
    out_dir: str | os.PathLike,
    table: pd.DataFrame,
    render: Callable[[Mapping, int, int], tuple[np.ndarray, dict]],
    *,
    size: int,
    seed: int,
    stream: int,
    desc: str,
    progress: bool = True,
) -> pd.DataFrame:
    """`render(row, size, image_seed)` -> (uint8 image, truth) for every label row; writes
    `<image_id>.png` (a single-channel image) or `<image_id>.npy` plus a PNG mosaic preview
    (several channels), `labels.csv` and `truth.csv`. Every file appears atomically."""
    size, out, rows = check_size(size), Path(out_dir), []
    records = tqdm(table.to_dict("records"), desc=desc, unit="img", disable=not progress)
    for i, row in enumerate(records):
        image, truth = render(row, size, image_seed(seed, i, stream))
        name = row["image_id"]
        if image.ndim == 3:
            with atomic_path(out / f"{name}.npy", suffix=".npy") as tmp:
                np.save(tmp, image)
        with atomic_path(out / f"{name}.png", suffix=".png") as tmp:
            Image.fromarray(mosaic(image)).save(tmp, format="PNG")
        rows.append({"image_id": name, **truth})
    write_text(out / "labels.csv", table.to_csv(index=False))
    write_text(out / "truth.csv", pd.DataFrame(rows).to_csv(index=False))
    return table
