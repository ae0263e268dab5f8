"""The chest-radiograph phantom: label story, determinism, and each finding where it belongs."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from jaxsyn.cli import main
from jaxsyn.data.phantoms import cxr
from jaxsyn.errors import ConfigError

NONE = dict.fromkeys(cxr.FINDINGS, 0)
SIZE = 128


def render(seed=3, **findings):
    return cxr.radiograph({**NONE, **findings}, SIZE, seed)


def test_labels_follow_the_story():
    t = cxr.labels(20000, seed=0)
    assert list(t.columns) == ["image_id", *cxr.FINDINGS] and t["image_id"].is_unique
    assert all(t[f].dtype == np.int64 and set(t[f]) <= {0, 1} for f in cxr.FINDINGS)
    assert abs(t["enlarged_heart"].mean() - 0.30) < 0.015
    by_heart = t.groupby("enlarged_heart")["pleural_effusion"].mean()
    assert abs(by_heart[0] - 0.168) < 0.02 and abs(by_heart[1] - 0.401) < 0.03
    for f, p in (("nodule", 0.12), ("pneumothorax", 0.10), ("consolidation", 0.18)):
        assert abs(t[f].mean() - p) < 0.015, f
    assert t.groupby("pneumothorax")["support_device"].mean().diff().iloc[-1] > 0.15
    pd.testing.assert_frame_equal(cxr.labels(50, seed=1), cxr.labels(50, seed=1))


def test_image_dtype_size_and_determinism():
    a, truth = render()
    b, _ = render()
    assert a.shape == (SIZE, SIZE) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, render(seed=4)[0])
    assert a[: SIZE // 20, : SIZE // 20].mean() < 40  # air outside the body is dark
    assert 0.38 < truth["ctr"] < 0.52


def test_enlarged_heart_raises_the_cardiothoracic_ratio():
    ctrs = [render(seed=s, enlarged_heart=1)[1]["ctr"] for s in range(20)]
    normal = [render(seed=s)[1]["ctr"] for s in range(20)]
    assert min(ctrs) > 0.5 > max(normal)
    big, small = render(enlarged_heart=1)[0], render()[0]
    assert (big > 110).sum() > (small > 110).sum()  # more of the field is heart-dense


def test_findings_change_their_region_only():
    base = render()[0].astype(float)
    _, t = render(nodule=1)
    img = render(nodule=1)[0].astype(float)
    iu, iv = ((np.array([t["nodule_u"], t["nodule_v"]]) + 1) / 2 * SIZE).astype(int)
    assert img[iv, iu] - base[iv, iu] > 40  # a bright spot at its recorded centre
    far = np.ones_like(base, bool)
    far[max(iv - 20, 0) : iv + 20, max(iu - 20, 0) : iu + 20] = False
    assert np.abs(img - base)[far].mean() < 1.5

    effusion, t = render(pleural_effusion=1)
    lower = slice(SIZE // 2, int(SIZE * 0.8))
    assert effusion[lower].astype(float).mean() > base[lower].mean() + 2  # fluid at the bases

    ptx, t = render(pneumothorax=1)
    halves = (slice(0, SIZE // 2), slice(SIZE // 2, SIZE))
    side, other = halves if t["pneumothorax_side"] == "right" else halves[::-1]
    darker = (ptx.astype(float) - base)[:, side] < -8  # air without markings at the rim
    assert (
        darker.sum() > 100 and darker.sum() > 3 * ((ptx.astype(float) - base) < -8)[:, other].sum()
    )

    device = render(support_device=1)[0]
    assert (device > 215).sum() > (base > 215).sum() + 20  # radiopaque tubes


def test_bad_sizes_and_counts():
    with pytest.raises(ConfigError, match="size is 8"):
        cxr.radiograph(NONE, 8, 0)
    with pytest.raises(ConfigError, match="n is 0"):
        cxr.labels(0, 0)


def test_cli_writes_pngs_and_labels(tmp_path):
    out = tmp_path / "cxr"
    assert main(["phantom", "cxr", "--n", "3", "--size", "64", "--out", str(out)]) == 0
    labels = pd.read_csv(out / "labels.csv")
    assert list(labels["image_id"]) == ["X00000", "X00001", "X00002"]
    pd.testing.assert_frame_equal(labels, cxr.labels(3, seed=0))
    image = np.asarray(Image.open(out / "X00001.png"))
    assert image.shape == (64, 64) and image.dtype == np.uint8
    assert len(pd.read_csv(out / "truth.csv")) == 3
