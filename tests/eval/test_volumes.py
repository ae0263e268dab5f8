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
