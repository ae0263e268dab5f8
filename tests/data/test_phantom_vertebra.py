"""Vertebral-unit phantom: region prior, 9 slices, region-specific shape, the .npy layout."""

import numpy as np
import pandas as pd

from jaxsyn.cli import main
from jaxsyn.data.images import load_images
from jaxsyn.data.phantoms import vertebra

SIZE = 64


def test_labels_follow_the_prior():
    t = vertebra.labels(20000, seed=0)
    assert list(t.columns) == ["image_id", "region", *vertebra.REGIONS]
    share = t["region"].value_counts(normalize=True)
    for region, p in zip(vertebra.REGIONS, vertebra.PRIOR, strict=True):
        assert abs(share[region] - p) < 0.015
        np.testing.assert_array_equal(t[region], (t["region"] == region).astype(int))


def bone(unit):
    return (unit > 200).sum(axis=(0, 1))  # cortical pixels per slice


def test_unit_layout_and_region_shapes():
    units = {r: vertebra.vertebral_unit({"region": r}, SIZE, 3)[0] for r in vertebra.REGIONS}
    for unit in units.values():
        assert unit.shape == (SIZE, SIZE, 9) and unit.dtype == np.uint8
        b = bone(unit)
        assert b[0] == 0 and b[8] == 0  # discs at the ends
        assert b[4] > 2 * b[1]  # the arch and processes appear mid-unit
    body = {r: (u[..., 4] > 120).sum() for r, u in units.items()}
    assert body["lumbar"] > body["thoracic"] > body["cervical"]  # bone-dense area grows caudally
    wide = {r: np.ptp(np.nonzero((u[..., 4] > 200).any(0))[0]) for r, u in units.items()}
    assert wide["lumbar"] > wide["cervical"]  # long lumbar transverse processes
    again = vertebra.vertebral_unit({"region": "lumbar"}, SIZE, 3)[0]
    np.testing.assert_array_equal(again, units["lumbar"])


def test_cli_and_loader(tmp_path):
    out = tmp_path / "v"
    assert main(["phantom", "vertebra", "--n", "4", "--size", "32", "--out", str(out)]) == 0
    images, table = load_images(out, progress=False)
    assert images.shape == (4, 32, 32, 9)  # the .npy units, not their PNG previews
    pd.testing.assert_frame_equal(table, vertebra.labels(4, seed=0))
    unit = np.load(out / "V00001.npy")
    np.testing.assert_allclose(images[1], unit / 255, rtol=1e-6)
