"""The head-CT slice phantom: label story, determinism, each haemorrhage where it belongs."""

import numpy as np
import pandas as pd
from PIL import Image

from jaxsyn.cli import main
from jaxsyn.data.phantoms import headct

NONE = dict.fromkeys(headct.TYPES, 0)
SIZE = 128


def render(seed=3, **types):
    return headct.head_slice({**NONE, **types}, SIZE, seed)


def test_labels_follow_the_story():
    t = headct.labels(20000, seed=0)
    assert list(t.columns) == ["image_id", *headct.TYPES]
    any_bleed = t[list(headct.TYPES)].any(axis=1)
    assert abs(any_bleed.mean() - headct.P_ANY) < 0.015
    bleeding = t[any_bleed]
    for name, p in zip(headct.TYPES, headct.P_TYPE, strict=True):
        if name != "subdural":  # subdural also fills the empty draws
            assert abs(bleeding[name].mean() - p) < 0.02, name
    assert bleeding["subdural"].mean() > headct.P_TYPE[1]
    combos = bleeding[list(headct.TYPES)].astype(str).agg("".join, axis=1).nunique()
    assert combos > 10  # co-occurring types: many label combinations


def test_deterministic_window_and_skull():
    a, truth = render()
    np.testing.assert_array_equal(a, render()[0])
    assert a.dtype == np.uint8 and a.shape == (SIZE, SIZE)
    assert a[0, 0] == 0 and a[SIZE // 2, 2] in (0, 255)  # air, or skull at the edge
    assert (a == 255).mean() > 0.05  # the skull ring saturates the brain window


def test_each_type_is_hyperdense_where_it_belongs():
    base = render()[0].astype(float)
    for name in headct.TYPES:
        img, truth = render(**{name: 1})
        brighter = (img.astype(float) - base) > 40  # blood (60-80 HU) over brain (28-40 HU)
        assert brighter.sum() > 20, name
        rows, cols = np.nonzero(brighter)
        if name == "intraparenchymal":
            iu = int((truth["ich_u"] + 1) / 2 * SIZE)
            iv = int((truth["ich_v"] + 1) / 2 * SIZE)
            assert abs(cols.mean() - iu) < 4 and abs(rows.mean() - iv) < 4
        if name == "intraventricular":
            assert rows.mean() > SIZE / 2  # dependent, posterior layering
        if name in ("epidural", "subdural"):  # against the inner table: far from the centre
            assert np.hypot(rows - SIZE / 2, cols - SIZE / 2).min() > 0.3 * SIZE


def test_cli_writes_pngs_and_labels(tmp_path):
    out = tmp_path / "head"
    assert main(["phantom", "headct", "--n", "3", "--size", "64", "--out", str(out)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "labels.csv"), headct.labels(3, seed=0))
    assert np.asarray(Image.open(out / "H00002.png")).shape == (64, 64)
