"""pGAN's per-test-case views (issue 17.6): the test AUC's bootstrap interval over test cases,
confusion matrices and the pairwise attack's cut-off curves, by hand and in a TSTR result."""

import numpy as np
import pytest

from jaxsyn.errors import DataError
from jaxsyn.eval import attacks, casewise, stats, utility
from tests.eval.test_utility import clinical  # noqa: F401 (fixture)


def scored(n, seed, classes=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    p = rng.dirichlet(np.ones(classes), n)
    p[np.arange(n), y] += 0.4
    return y, p


def test_auc_interval_resamples_the_test_cases():
    y, p = scored(200, 0)
    ci = casewise.auc_interval(y, p, "multiclass", n_resamples=500)
    assert ci.estimate == pytest.approx(utility.mean_auroc(y, p, "multiclass"), rel=1e-12)
    assert ci.low < ci.estimate < ci.high and ci.method == "BCa" and ci.n_resamples == 500
    # the all-resamples statistic equals mean_auroc on each resample (counts, tie groups)
    idx = np.random.default_rng(1).integers(0, 200, (3, 200))
    onehot = (y[:, None] == np.arange(3)).astype(np.int64)
    got = casewise._resampled_auc(onehot, np.round(p, 1))(idx.astype(float))  # rounded: ties
    want = [utility.mean_auroc(y[i], np.round(p, 1)[i], "multiclass") for i in idx]
    assert got == pytest.approx(want, rel=1e-12)
    # the test set's sampling error: 4x the cases, about half the width
    wide = ci.high - ci.low
    y4, p4 = scored(800, 2)
    narrow = casewise.auc_interval(y4, p4, "multiclass", n_resamples=500)
    assert 1.5 < wide / (narrow.high - narrow.low) < 2.7
    yl = (np.random.default_rng(3).random((60, 2)) < 0.5).astype(int)
    ci = casewise.auc_interval(yl, yl + 0.1 * np.random.default_rng(4).random((60, 2)),
                               "multilabel", n_resamples=200)  # fmt: skip
    assert ci.estimate == 1.0  # a perfect scorer: every resample is 1 too
    assert casewise.auc_interval(y[:9], p[:9], "multiclass") is None  # < BCA_MIN_VALUES
    with pytest.raises(DataError, match="both positives and negatives"):
        casewise.auc_interval(np.zeros((20, 1), int), np.ones((20, 1)), "multilabel")
    assert stats.BCA_MIN_VALUES == 10


def test_confusion_matrices_by_hand():
    y = np.array([0, 0, 1, 2, 2, 2])
    p = np.eye(3)[[0, 1, 1, 2, 0, 2]]
    assert casewise.confusion_matrix(y, p, "multiclass").tolist() == [
        [1, 1, 0], [0, 1, 0], [1, 0, 2]]  # fmt: skip
    yl = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    pl = np.array([[0.9, 0.2], [0.4, 0.5], [0.5, 0.1], [0.1, 0.7]])
    got = casewise.confusion_matrix(yl, pl, "multilabel")
    assert got.tolist() == [[[1, 1], [1, 1]], [[2, 0], [0, 2]]]  # [[TN, FP], [FN, TP]]


def test_cutoff_curves_by_hand():
    ranking = attacks._ranking(
        "-d", np.array([0.9, 0.1, 0.8, 0.2, 0.7, 0.3]), member=np.array([1, 0, 1, 0, 0, 0], bool),
        groups=np.array(["train", "holdout", "train", "test", "holdout", "test"]),
        top_k=2, seed=0)  # fmt: skip
    groups = ["train", "holdout", "train", "test", "holdout", "test"]
    curves = attacks.cutoff_curves(ranking, groups)  # order: 0, 2, 4, 5, 3, 1
    assert curves["cut_off"] == [1, 2, 3, 4, 5, 6]
    assert curves["train"] == pytest.approx([1, 1, 2 / 3, 2 / 4, 2 / 5, 2 / 6])
    assert curves["holdout"] == pytest.approx([0, 0, 1 / 3, 1 / 4, 1 / 5, 2 / 6])
    assert curves["test"] == pytest.approx([0, 0, 0, 1 / 4, 2 / 5, 2 / 6])
    assert attacks.cutoff_table(curves, (2, 50)) == {
        "2": {"train": 1.0, "holdout": 0.0, "test": 0.0},
        "6": {"train": pytest.approx(1 / 3), "holdout": pytest.approx(1 / 3),
              "test": pytest.approx(1 / 3)}}  # fmt: skip


def test_tstr_table_gives_intervals_and_confusion_matrices(clinical):  # noqa: F811
    train, test = clinical
    result = utility.tstr_table(train, train, test, "disease_stage", seeds=(0, 1), max_iter=5,
                                n_threads=1)  # fmt: skip
    cases = result.asdict()["test_cases"]
    for name in ("real", "syn"):
        matrix = np.asarray(cases["confusion"][name])
        assert matrix.shape == (4, 4) and matrix.sum() == 2 * len(test)  # 2 seeds
        assert (
            matrix.sum(1).tolist() == (2 * test.disease_stage.value_counts().sort_index()).tolist()
        )
        for auc, ci in zip(
            getattr(result, f"auc_{name}"), cases["auc_interval"][name], strict=True
        ):
            assert ci["estimate"] == pytest.approx(auc) and ci["low"] <= auc <= ci["high"]
