"""The volume API for HU arrays (2.5D planes, 3D grids, features), labels of volume folders, and
the cosine nearest-neighbour pairs of the report against brute force."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist

from jaxsyn.errors import ConfigError, DataError
from jaxsyn.eval import classifiers, features, sections, volumes
from jaxsyn.eval.classifiers3d import ResNet3DConfig
from jaxsyn.eval.report import Report


def phantoms(n: int, seed: int, size: int = 16) -> np.ndarray:
    """HU volumes [n, S, S, S]: air, a soft-tissue ball, noise; label-free."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:size, :size, :size] - (size - 1) / 2
    ball = (z**2 + y**2 + x**2) < (size / 3) ** 2
    return np.where(ball, 40.0, -1000.0) + rng.normal(0, 30, (n, size, size, size))


def test_planes_grid_and_2p5d_features():
    hu = phantoms(3, 0)
    planes = volumes.volume_planes(hu)
    assert planes.shape == (3, 3, 16, 16, 1) and planes.dtype == np.float32
    assert volumes.volume_planes(hu[..., None], size=8).shape == (3, 3, 8, 8, 1)
    grid = volumes.volume_grid(np.full((1, 16, 16, 16), 600.0), size=8)
    assert grid.shape == (1, 8, 8, 8, 1) and np.all(grid == 1.0)  # the window's top
    assert volumes.volume_grid(np.full((1, 4, 4, 4), -2000.0), size=8).max() == 0.0
    f = volumes.volume_features(hu, "pixels", batch=2)  # two batches, one padded
    want = np.mean([features.pixels(planes[:, k]) for k in range(3)], axis=0)
    np.testing.assert_allclose(f, want, rtol=1e-6)
    assert f.shape == (3, 1024)
    with pytest.raises(DataError, match=r"\[N, D, H, W\]"):
        volumes.volume_features(hu[0], "pixels")
    with pytest.raises(ConfigError, match="classifier="):
        volumes.volume_features(hu, "3d-domain")


def test_2p5d_fid_per_plane_over_the_centre_band():
    """Issue 17.6, MAISI's 2.5D FID: per plane, every volume's middle half of slices along that
    plane's axis are samples of one FID; the planes' mean beside them. Volumes [8, 10, 12] (z, y,
    x) so an axis mix-up changes the slice counts and values; hand-made against the same
    window and resize."""
    from jaxsyn.data.images import resize
    from jaxsyn.eval import fidelity

    rng = np.random.default_rng(0)
    real = [rng.normal(-200, 400, (8, 10, 12)) for _ in range(3)]
    synthetic = [rng.normal(-100, 300, (8, 10, 12)) for _ in range(2)]

    def extract(x):  # [K, 12, 12, 1] -> [K, 9]
        return x[:, ::4, ::4, 0].reshape(len(x), -1)

    got = volumes.fid_2p5d(iter(real), iter(synthetic), extract, size=12)

    def slices(hu, axis):  # the middle half: [n // 4, 3n // 4)
        window = np.clip((hu.astype(np.float32) + 1024) / 1624, 0, 1)
        n = hu.shape[axis]
        band = np.moveaxis(window, axis, 0)[n // 4 : 3 * n // 4]
        return np.stack([extract(resize(s[..., None], 12)[None])[0] for s in band])

    for plane, axis, count in (("xy", 0, 4), ("zx", 1, 5), ("yz", 2, 6)):
        r = np.concatenate([slices(v, axis) for v in real])
        s = np.concatenate([slices(v, axis) for v in synthetic])
        assert got["slices"][plane] == [3 * count, 2 * count]
        assert got[plane] == pytest.approx(fidelity.fid(r, s), rel=1e-9)
    assert got["mean"] == pytest.approx(np.mean([got[p] for p in ("xy", "yz", "zx")]))
    same = volumes.fid_2p5d(real, real, extract, size=12)
    assert max(same[p] for p in ("xy", "yz", "zx")) < 1e-9
    assert volumes.band_slices(real[0], 0, 12, band=1.0).shape == (8, 12, 12, 1)
    with pytest.raises(ConfigError, match=r"band: got 0, expected a fraction"):
        volumes.band_slices(real[0], 0, 12, band=0)


def test_3d_domain_features_from_a_trained_classifier():
    hu = phantoms(4, 1)
    labels = np.array([[0], [1], [0], [1]], np.float32)
    clf = volumes.train_volume_classifier(hu, labels, model="resnet3d-tiny", size=8, epochs=1)
    assert isinstance(clf[1], ResNet3DConfig)
    f = volumes.volume_features(hu, "3d-domain", classifier=clf, size=8, batch=3)
    assert f.shape == (4, 8) and f.dtype == np.float32
    want = classifiers.embed(*clf, volumes.volume_grid(hu, 8))
    np.testing.assert_array_equal(f, want)  # batching does not change the features
    again = volumes.train_volume_classifier(hu, labels, model="resnet3d-tiny", size=8, epochs=1)
    np.testing.assert_array_equal(volumes.volume_features(hu, "3d-domain", classifier=again,
                                                          size=8), f)  # fmt: skip
    with pytest.raises(ConfigError, match="2D classifier"):
        volumes.train_volume_classifier(hu, labels, model="resnet-tiny")


def test_volume_labels_by_id(tmp_path):
    pd.DataFrame({"patient_id": ["P2", "P1", "P0"], "y": [1, 0, 1]}).to_csv(
        tmp_path / "table.csv", index=False
    )
    got = volumes.volume_labels(tmp_path, ["P0", "P1", "P2"], ["y"])
    assert got["y"].tolist() == [1, 0, 1]
    with pytest.raises(DataError, match="every volume's id"):
        volumes.volume_labels(tmp_path, ["P0", "P9"], ["y"])
    with pytest.raises(DataError, match=r"no column\(s\) \['z'\]"):
        volumes.volume_labels(tmp_path, ["P0"], ["z"])


def test_cosine_nearest_pairs_match_brute_force(tmp_path):
    rng = np.random.default_rng(0)
    f_real, f_syn = rng.normal(size=(40, 6)), rng.normal(size=(12, 6))
    f_syn[3] = 2.5 * f_real[17]  # a scaled copy: cosine distance 0
    images = rng.uniform(size=(40, 8, 8, 1))
    report = Report(tmp_path)
    sections.nearest_pairs(report, "nn", images[:12], images, f_syn, f_real, metric="cosine")
    report.write()
    got = json.loads((tmp_path / "report.json").read_text())["privacy"]["nn"]
    brute = cdist(f_syn[: sections.GRID], f_real, "cosine")
    assert got["train_index"] == brute.argmin(1).tolist() and got["train_index"][3] == 17
    np.testing.assert_allclose(got["distance"], brute.min(1), rtol=1e-12, atol=1e-12)
    assert got["settings"]["metric"] == "cosine"
    assert (tmp_path / "figures" / "privacy_nn.png").is_file()


def test_kind_of_volume_folders(tmp_path):
    from jaxsyn.eval.evaluate import kind_of

    (tmp_path / "P0.nii.gz").touch()
    (tmp_path / "labels.csv").write_text("id,y\nP0,1\n")
    assert kind_of(tmp_path) == "volumes"  # labels.csv beside volumes: labels, not images
    pd.DataFrame({"patient_id": ["P0"], "y": [0]}).to_parquet(tmp_path / "synthetic.parquet")
    assert kind_of(tmp_path) == "table"  # MMCGAN's output: volumes and their table ...
    assert kind_of(tmp_path, "volumes") == "volumes"  # ... read as --real's kind
    (tmp_path / "labels.csv").unlink()
    assert volumes.volume_labels(tmp_path, ["P0"], ["y"])["y"].tolist() == [0]
