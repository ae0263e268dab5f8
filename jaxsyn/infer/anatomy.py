"""Does a CT look like the anatomy a model was trained on? A cheap intensity check for imputation.

A volume's profile is the share of its matter voxels (>= -950 HU: the air around and inside
the body, which fills most of a cube and would swamp every other share, is left out) in five
Hounsfield bands: lung and other low density (-950..-150), fat (-150..-50), soft tissue and
water (-50..300), bone (300..700) and dense bone or metal (>= 700). A chest CT, a head CT and an
abdominal CT differ clearly in it (lungs, fat, skull), whatever the model. A volume is "unlike
the training anatomy" when the total variation distance (half the L1 distance) of its profile to
the mean training profile exceeds the largest distance of any training volume to that mean by
more than MARGIN (ours: a tenth of the matter in other bands than any training volume strays).
It is a warning, not a refusal: imputation still runs. Training profiles come from the run's
store (level 2, the ÷4 volumes, nearest-neighbour: the same shares as level 0 up to sampling).
On the tiny test run a chest phantom of another seed is at 0.05-0.13 (threshold 0.27), a
water-filled skull at 0.42 (tests/test_cli_mmcgan.py).
"""

from __future__ import annotations

import numpy as np

from jaxsyn.errors import JaxsynError

AIR_HU = -950.0  # below: air, not profiled (emphysema's own index uses the same -950 HU)
BANDS_HU = (-150.0, -50.0, 300.0, 700.0)  # the inner edges of the five bands above AIR_HU
BAND_NAMES = ("lung_low_density", "fat", "soft_tissue", "bone", "dense")
MARGIN = 0.10
STORE_LEVEL = 2


def profile(hu: np.ndarray) -> np.ndarray:
    """[5] shares of the matter voxels (>= AIR_HU) of `hu` (any shape) in the BANDS_HU bands;
    they sum to 1 (all 0 for a volume of air)."""
    hu = np.asarray(hu).ravel()
    counts = np.bincount(np.digitize(hu[hu >= AIR_HU], BANDS_HU), minlength=len(BAND_NAMES))
    return counts / max(counts.sum(), 1)


def distance(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance of two profiles: the share of voxels in other bands."""
    return float(0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum())


def training_profiles(store_path) -> np.ndarray | None:
    """[N, 5] profiles of a training store's volumes, or None when the store is unreadable."""
    from jaxsyn.data.store import VolumeStore

    try:
        store = VolumeStore(store_path)
        levels = store.manifest["levels"]
        level = STORE_LEVEL if STORE_LEVEL in levels else min(levels)
        return np.stack([profile(store.read(i, level)) for i in range(len(store))])
    except (KeyError, TypeError, JaxsynError, OSError, ValueError):
        return None


def check(train: np.ndarray, profiles: np.ndarray) -> dict:
    """{"threshold", "distance": [M], "unlike": [M] bools, "training_mean"} for volumes'
    `profiles` [M, 5] against the training profiles [N, 5]."""
    mean = train.mean(0)
    threshold = max(distance(t, mean) for t in train) + MARGIN
    d = [distance(p, mean) for p in profiles]
    return {"threshold": threshold, "distance": d, "unlike": [x > threshold for x in d],
            "training_mean": dict(zip(BAND_NAMES, mean.tolist(), strict=True))}  # fmt: skip
