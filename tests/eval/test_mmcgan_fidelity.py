"""MMCGAN's fidelity numbers behind ρ (jaxsyn.eval.mmcgan.fidelity): per-class tissue fractions,
within-class spread and pairwise distance, synthetic over real, on volumes made to known values."""

import numpy as np
import pytest

from jaxsyn.cli.mmcgan import fidelity_lines
from jaxsyn.eval.mmcgan import fidelity, fractions_table


def _volume(fat: float, soft: float, n: int = 1000, rng=None) -> np.ndarray:
    """A 'body' of n voxels: a `fat` share at -100 HU, a `soft` share at 40 HU, the rest bone."""
    v = np.full(n, 700.0)
    k_fat, k_soft = round(fat * n), round(soft * n)
    v[:k_fat], v[k_fat : k_fat + k_soft] = -100.0, 40.0
    return (rng.permutation(v) if rng is not None else v).reshape(10, 10, 10)


def test_ratios_spreads_and_distances_against_hand_values():
    rng = np.random.default_rng(0)
    real_fat = [0.10, 0.20, 0.30, 0.40, 0.50]
    real = [_volume(f, 0.4, rng=rng) for f in real_fat] + [_volume(0.3, 0.4)]  # class 2: one
    syn = [_volume(0.15, 0.2)] * 3 + [_volume(0.3, 0.2)] * 2  # class 1 collapsed to one image
    f_real = fractions_table(real, [1] * 5 + [2])
    f_syn = fractions_table(syn, [1, 1, 1, 2, 2])
    out = fidelity(f_real, f_syn, real, syn)
    c1 = out["by_class"]["1"]
    assert c1["n_real"] == 5 and c1["n_synthetic"] == 3
    assert c1["fat_ratio"] == pytest.approx(0.15 / 0.30)
    assert c1["soft_tissue_ratio"] == pytest.approx(0.2 / 0.4)
    assert c1["fat_sd_ratio"] == 0.0  # three copies of one volume
    assert c1["distance_ratio"] == 0.0
    # class 2: one real patient, so no spread is estimated
    c2 = out["by_class"]["2"]
    assert c2["fat_ratio"] == pytest.approx(1.0) and c2["fat_sd_ratio"] is None
    # a synthetic cohort as varied as the real one: ratios near 1 (distance by hand)
    syn2 = [_volume(f, 0.4, rng=np.random.default_rng(9 + i)) for i, f in enumerate(real_fat)]
    out2 = fidelity(f_real, fractions_table(syn2, [1] * 5), real, syn2)
    assert out2["by_class"]["1"]["fat_sd_ratio"] == pytest.approx(1.0)
    clip = lambda v: np.clip(v, -1024, 600)  # noqa: E731

    def mean_pairwise(vs):
        return np.mean(
            [np.abs(clip(a) - clip(b)).mean() for i, a in enumerate(vs) for b in vs[i + 1 :]]
        )

    want = mean_pairwise(syn2) / mean_pairwise(real[:5])
    assert out2["by_class"]["1"]["distance_ratio"] == pytest.approx(want)
    assert out2["missing"] == {"in_synthetic": [2], "in_real": []}
    text = fidelity_lines({"fidelity": out2, "tabular": {"quality": {"overall": 0.5}}}, "bmi_class")
    assert "classes with no synthetic patient: [2]" in text and "0.500" in text
