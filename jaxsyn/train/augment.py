"""On-device augmentations of single-channel images in [-1, 1]: DUIIT's three augmentation
baselines (simple, AutoAugment, random erasing), each `f(key, image [S, S, C]) -> image`.

Every function draws from its own key, so a batch augmented with one key per example (see
`jaxsyn.train.parallel.example_keys`) is the same however it is split over devices.

- `simple`: the "commonly used traditional" augmentations DUIIT lists (crop, flip, translation,
  rotation, intensity jitter), as one affine resampling (bilinear, background -1) then a
  brightness and contrast jitter; ranges in SIMPLE.
- `autoaugment`: AutoAugment's ImageNet policy (Cubuk et al. 2019, appendix table 9: 25
  sub-policies of two operations, each with a probability and a magnitude bin 0-9), as
  torchvision's AutoAugmentPolicy.IMAGENET maps bins to magnitudes. Adapted to one channel:
  Color (saturation) is the identity on grey images; the others act on the grey values in
  [0, 1] (Posterize, Solarize, AutoContrast, Equalize, Contrast, Sharpness, Invert) or
  geometrically (Rotate, ShearX; background black).
- `random_erasing`: Zhong et al. 2020's defaults: with p = 0.5 a rectangle of area in
  [0.02, 0.4] of the image and aspect ratio in [0.3, 1/0.3] is filled with uniform noise
  (tried up to 10 times until it fits, as the reference tries up to 100).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# simple: ranges of the random draws (uniform in [-r, r] unless said)
SIMPLE = dict(
    rotate_deg=15.0,  # rotation
    translate=0.1,  # shift, a share of the side
    zoom=0.15,  # random crop: a square of side 1/(1 + u), u in [0, zoom], resized to the image
    flip=0.5,  # horizontal flip probability
    brightness=0.1,  # additive, in [-1, 1] units
    contrast=0.1,  # factor 1 +- contrast about the image mean
)
ERASING = dict(p=0.5, area=(0.02, 0.4), aspect=0.3, tries=10)  # Zhong et al. 2020, section 3.1


def warp(image: jax.Array, matrix: jax.Array, offset: jax.Array, fill: float) -> jax.Array:
    """image [S, S, C] resampled bilinearly at matrix @ (p - c) + c + offset for each output
    pixel p (row, column); c the centre; outside the image `fill`."""
    s = image.shape[0]
    centre = (s - 1) / 2.0
    rows, cols = jnp.meshgrid(jnp.arange(s, dtype=jnp.float32), jnp.arange(s, dtype=jnp.float32),
                              indexing="ij")  # fmt: skip
    p = jnp.stack([rows.ravel() - centre, cols.ravel() - centre])
    q = matrix @ p + centre + offset[:, None]

    def channel(x):
        out = jax.scipy.ndimage.map_coordinates(x, [q[0], q[1]], order=1, mode="constant",
                                                cval=fill)  # fmt: skip
        return out.reshape(s, s)

    return jax.vmap(channel, in_axes=-1, out_axes=-1)(image)


def rotation(degrees) -> jax.Array:
    t = jnp.deg2rad(degrees)
    return jnp.array([[jnp.cos(t), -jnp.sin(t)], [jnp.sin(t), jnp.cos(t)]])


def simple(key: jax.Array, image: jax.Array) -> jax.Array:
    """Crop, flip, translation, rotation and intensity jitter of one image [S, S, C] in [-1, 1]."""
    k = jax.random.split(key, 6)
    u = lambda i, r: jax.random.uniform(k[i], (), minval=-r, maxval=r)  # noqa: E731
    s = image.shape[0]
    zoom = 1.0 + jax.random.uniform(k[0], (), maxval=SIMPLE["zoom"])
    flip = jnp.where(jax.random.bernoulli(k[1], SIMPLE["flip"]), -1.0, 1.0)
    matrix = rotation(u(2, SIMPLE["rotate_deg"])) @ jnp.diag(jnp.array([1.0, flip])) / zoom
    shift = jax.random.uniform(k[3], (2,), minval=-1, maxval=1) * SIMPLE["translate"] * s
    out = warp(image, matrix, shift, -1.0)
    mean = out.mean()
    out = mean + (1.0 + u(4, SIMPLE["contrast"])) * (out - mean) + u(5, SIMPLE["brightness"])
    return jnp.clip(out, -1.0, 1.0)


# --- AutoAugment ----------------------------------------------------------------------------

OPS = ("Posterize", "Rotate", "Solarize", "AutoContrast", "Equalize", "Color", "Contrast",
       "Sharpness", "ShearX", "Invert")  # fmt: skip
# Cubuk et al. 2019, table 9 (ImageNet): (op, probability, magnitude bin) pairs.
IMAGENET_POLICY = (
    (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 0)),
    (("Equalize", 0.8, 0), ("Equalize", 0.6, 0)),
    (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
    (("Equalize", 0.4, 0), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, 0), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, 0)),
    (("Posterize", 0.8, 5), ("Equalize", 1.0, 0)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, 0), ("Posterize", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, 0)),
    (("Equalize", 0.0, 0), ("Equalize", 0.8, 0)),
    (("Invert", 0.6, 0), ("Equalize", 1.0, 0)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, 0)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, 0)),
    (("Color", 0.4, 0), ("Equalize", 0.6, 0)),
    (("Equalize", 0.4, 0), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 0)),
    (("Invert", 0.6, 0), ("Equalize", 1.0, 0)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, 0), ("Equalize", 0.6, 0)),
)
# magnitude bin (0-9) -> value, as torchvision's _augmentation_space(num_bins=10)
BINS = np.arange(10)
MAGNITUDES = {
    "ShearX": np.linspace(0.0, 0.3, 10),
    "Rotate": np.linspace(0.0, 30.0, 10),
    "Color": np.linspace(0.0, 0.9, 10),
    "Contrast": np.linspace(0.0, 0.9, 10),
    "Sharpness": np.linspace(0.0, 0.9, 10),
    "Posterize": 8 - np.round(BINS / ((10 - 1) / 4)),  # bits kept
    "Solarize": np.linspace(1.0, 0.0, 10),  # threshold on [0, 1]
}
SIGNED = ("ShearX", "Rotate", "Color", "Contrast", "Sharpness")  # random sign, p = 0.5


def _policy_arrays():
    ops = np.array([[OPS.index(o) for o, _, _ in sub] for sub in IMAGENET_POLICY], np.int32)
    probs = np.array([[p for _, p, _ in sub] for sub in IMAGENET_POLICY], np.float32)
    mags = np.array([[MAGNITUDES.get(o, np.zeros(10))[m] for o, _, m in sub]
                     for sub in IMAGENET_POLICY], np.float32)  # fmt: skip
    signed = np.array([[o in SIGNED for o, _, _ in sub] for sub in IMAGENET_POLICY])
    return ops, probs, mags, signed


def _equalize(x):
    """Histogram equalisation of [S, S, C] in [0, 1] over 256 levels, per channel."""
    v = jnp.clip(jnp.round(x * 255), 0, 255).astype(jnp.int32)

    def channel(c):
        hist = jnp.zeros(256, jnp.float32).at[c.ravel()].add(1.0)
        cdf = jnp.cumsum(hist)
        lowest = cdf[jnp.argmax(hist > 0)]
        return (cdf[c] - lowest) / jnp.maximum(c.size - lowest, 1.0)

    return jax.vmap(channel, in_axes=-1, out_axes=-1)(v)


def _sharpen(x, factor):
    kernel = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13.0
    smooth = jax.vmap(lambda c: jax.scipy.signal.convolve2d(c, kernel, mode="same"), -1, -1)(x)
    inner = jnp.zeros(x.shape[:2], bool).at[1:-1, 1:-1].set(True)[..., None]
    smooth = jnp.where(inner, smooth, x)  # PIL keeps the border pixels
    return smooth + factor * (x - smooth)


def _apply_op(index, x, magnitude):
    """Operation `index` of OPS on x [S, S, C] in [0, 1] with its (signed) magnitude."""
    branches = [
        lambda x, m: jnp.floor(x * 255 / 2 ** (8 - m)) * 2 ** (8 - m) / 255,  # Posterize
        lambda x, m: warp(x, rotation(m), jnp.zeros(2), 0.0),  # Rotate
        lambda x, m: jnp.where(x >= m, 1.0 - x, x),  # Solarize
        lambda x, m: (x - x.min()) / jnp.maximum(x.max() - x.min(), 1e-6),  # AutoContrast
        lambda x, m: _equalize(x),  # Equalize
        lambda x, m: x,  # Color: saturation does nothing to a grey image
        lambda x, m: x.mean() + (1.0 + m) * (x - x.mean()),  # Contrast
        lambda x, m: _sharpen(x, 1.0 + m),  # Sharpness
        lambda x, m: warp(x, jnp.array([[1.0, 0.0], [m, 1.0]]), jnp.zeros(2), 0.0),  # ShearX
        lambda x, m: 1.0 - x,  # Invert
    ]
    # every operation, then the chosen one: what lax.switch becomes under vmap anyway, and
    # lax.switch inside vmap under shard_map trips JAX 0.10's varying-axes checks
    outs = jnp.stack([branch(x, magnitude) for branch in branches])
    return jnp.clip(outs[index], 0.0, 1.0)


def autoaugment(key: jax.Array, image: jax.Array) -> jax.Array:
    """One sub-policy of AutoAugment's ImageNet policy, drawn uniformly, on [S, S, C] in [-1, 1]."""
    ops, probs, mags, signed = (jnp.asarray(a) for a in _policy_arrays())
    k_sub, *k_ops = jax.random.split(key, 5)
    sub = jax.random.randint(k_sub, (), 0, len(IMAGENET_POLICY))
    x = (image + 1.0) / 2.0
    for j in range(2):
        apply = jax.random.uniform(k_ops[2 * j]) < probs[sub, j]
        sign = jnp.where(signed[sub, j] & jax.random.bernoulli(k_ops[2 * j + 1]), -1.0, 1.0)
        changed = _apply_op(ops[sub, j], x, sign * mags[sub, j])
        x = jnp.where(apply, changed, x)
    return x * 2.0 - 1.0


def random_erasing(key: jax.Array, image: jax.Array) -> jax.Array:
    """Zhong et al. 2020 on [S, S, C] in [-1, 1] (defaults in ERASING)."""
    s = image.shape[0]
    k_apply, k_area, k_aspect, k_y, k_x, k_fill = jax.random.split(key, 6)
    n = ERASING["tries"]
    lo, hi = ERASING["area"]
    area = jax.random.uniform(k_area, (n,), minval=lo, maxval=hi) * s * s
    r1 = ERASING["aspect"]
    aspect = jax.random.uniform(k_aspect, (n,), minval=r1, maxval=1.0 / r1)
    h = jnp.round(jnp.sqrt(area * aspect)).astype(jnp.int32)
    w = jnp.round(jnp.sqrt(area / aspect)).astype(jnp.int32)
    fits = (h < s) & (w < s) & (h > 0) & (w > 0)
    first = jnp.argmax(fits)
    h, w = h[first], w[first]
    y = jax.random.randint(k_y, (), 0, jnp.maximum(s - h, 1))
    x = jax.random.randint(k_x, (), 0, jnp.maximum(s - w, 1))
    rows, cols = jnp.arange(s)[:, None], jnp.arange(s)[None, :]
    box = (rows >= y) & (rows < y + h) & (cols >= x) & (cols < x + w)
    erase = jax.random.bernoulli(k_apply, ERASING["p"]) & fits[first]
    noise = jax.random.uniform(k_fill, image.shape, minval=-1.0, maxval=1.0)
    return jnp.where(erase & box[..., None], noise, image)


AUGMENTATIONS = {"augment": simple, "autoaugment": autoaugment, "erasing": random_erasing}
