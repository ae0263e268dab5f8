"""Privacy metrics: exact neighbours, pGAN's attacks on leaky and on safe generators, DCR.

The sanity generators: "copies" returns (noised) copies of the training samples, so its attacks
must find the members (AUC > 0.9); "independent" samples the same distribution afresh, so its
attacks must be chance (AUC 0.5 +- 0.1 with 600 candidates: the AUC's standard error is 0.025).
"""

import json
import sys
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from jaxsyn.errors import ConfigError, DataError
from jaxsyn.eval import privacy

F = 16  # features of the toy samples


def brute_force(q, r, metric):
    """Every distance in float64 numpy, the obvious way."""
    q, r = q.astype(np.float64), r.astype(np.float64)
    if metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        r = r / np.linalg.norm(r, axis=1, keepdims=True)
        return 1.0 - q @ r.T
    return np.sqrt(((q[:, None, :] - r[None, :, :]) ** 2).sum(-1))


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_nearest_neighbours_equal_brute_force(metric):
    rng = np.random.default_rng(0)
    r = rng.normal(3.0, 1.0, (53, 7)).astype(np.float32)  # off-centre: cancellation is real
    r[20] = r[5]  # a duplicate: the tie goes to the lower index
    q = np.concatenate([rng.normal(3.0, 1.0, (35, 7)), r[[5, 40]]]).astype(np.float32)
    d, i = privacy.nearest_neighbours(q, r, metric=metric, k=4, batch=16)  # ragged tiles
    full = brute_force(q, r, metric)
    want_i = np.argsort(full, axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(i, want_i)
    np.testing.assert_allclose(d, np.take_along_axis(full, want_i, 1), rtol=1e-12, atol=1e-12)
    assert d.dtype == np.float64 and i.shape == (37, 4)
    assert d[35, 0] == 0.0 and i[35, :2].tolist() == [5, 20]  # a copy: exactly 0, lower index first
    assert d[36, 0] == 0.0 and i[36, 0] == 40


def test_nearest_neighbours_flatten_images_and_do_not_depend_on_batch():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (30, 4, 4, 3), dtype=np.uint8)
    queries = rng.integers(0, 256, (9, 4, 4, 3), dtype=np.uint8)
    d, i = privacy.nearest_neighbours(queries, images, k=2)
    d2, i2 = privacy.nearest_neighbours(
        queries.reshape(9, -1), images.reshape(30, -1), batch=4, k=2
    )
    np.testing.assert_array_equal(i, i2)
    np.testing.assert_array_equal(d, d2)
    np.testing.assert_allclose(
        d, np.sort(brute_force(queries.reshape(9, -1), images.reshape(30, -1), "l2"), 1)[:, :2]
    )


def test_auc_and_roc_equal_sklearn():
    rng = np.random.default_rng(2)
    member = rng.random(200) < 0.4
    scores = np.round(rng.normal(member * 0.5, 1.0), 1)  # rounded: many ties
    groups = np.where(member, "train", np.where(rng.random(200) < 0.5, "holdout", "test"))
    r = privacy._ranking("s", scores, member=member, groups=groups, top_k=50, seed=0)
    assert r.auc == pytest.approx(roc_auc_score(member, scores), abs=1e-12)
    for g in ("holdout", "test"):
        keep = member | (groups == g)
        assert r.auc_by_group[g] == pytest.approx(roc_auc_score(member[keep], scores[keep]))
    fpr, tpr, _ = roc_curve(member, scores, drop_intermediate=False)
    np.testing.assert_allclose(r.roc_fpr, fpr)
    np.testing.assert_allclose(r.roc_tpr, tpr)
    # the ranking: scores non-increasing; top tables count the first 50 and 200 // 3 of it
    assert np.all(np.diff(scores[r.order]) <= 0)
    assert r.top_k_hits == member[r.order[:50]].sum() == r.top_k_by_group["train"]
    assert r.top_third == 66 and sum(r.top_third_by_group.values()) == 66


def toy_sets(seed, n_train=300, n_other=300):
    """Training set, holdout (same source) and test (another source: shifted) Gaussian samples."""
    rng = np.random.default_rng(seed)
    train = rng.normal(0.0, 1.0, (n_train, F))
    holdout = rng.normal(0.0, 1.0, (n_other, F))
    test = rng.normal(0.3, 1.0, (n_other, F))
    return rng, train, holdout, test


@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_attacks_flag_a_generator_that_copies(noise):
    rng, train, holdout, test = toy_sets(3, n_train=100)
    synthetic = train[rng.integers(0, 100, 1000)] + rng.normal(0.0, noise, (1000, F))
    c, member, groups = privacy.make_candidates(train, holdout, test, n=300, seed=0)
    # The 0.1 % neighbourhood: at the 1 % pixel-space default every candidate has q S = 10 random
    # neighbours on average, as many as a member's copies here, and the counts blur (AUC ~0.82).
    out = privacy.membership_attacks(c, member, synthetic, groups=groups, quantile=0.001)
    pair, dist = out["pairwise"], out["distribution"]
    assert pair.by_min.auc > 0.9 and pair.by_ratio.auc > 0.9
    assert dist.by_count.auc > 0.9
    assert pair.by_min.top_k_hits == 50 and pair.by_min.top_third_hits == 100
    assert dist.by_count.top_k_hits == 50
    assert dist.by_count.top_k_by_group == {"train": 50, "holdout": 0, "test": 0}
    if noise == 0.0:  # exact copies: distance 0 to the copied sample, which `nearest` names
        assert np.all(np.array(pair.min_distance)[member] == 0.0)
        found = synthetic[np.array(pair.nearest)[member]]
        np.testing.assert_array_equal(found, c[member])
    # 0.1 % of 300 x 1000 distances: the threshold is the 300th smallest (index 300)
    t = np.sort(brute_force(c, synthetic, "l2").ravel())[300]
    assert dist.threshold == pytest.approx(t, rel=1e-5)  # float32 distances
    assert set(pair.by_min.auc_by_group) == {"holdout", "test"}


def test_attacks_do_not_flag_an_independent_generator():
    rng, train, holdout, test = toy_sets(4)
    synthetic = rng.normal(0.0, 1.0, (600, F))  # never saw train
    c, member, groups = privacy.make_candidates(train, holdout, n=600, seed=1)
    out = privacy.membership_attacks(c, member, synthetic, groups=groups, batch=128)
    for ranking in (out["pairwise"].by_min, out["pairwise"].by_median, out["pairwise"].by_ratio):
        assert abs(ranking.auc - 0.5) < 0.1, ranking.score
    assert abs(out["distribution"].by_count.auc - 0.5) < 0.1
    assert 10 <= out["pairwise"].by_min.top_k_hits <= 40  # 25 expected of 50


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_attack_results_match_brute_force_and_serialise(metric):
    rng, train, holdout, test = toy_sets(5)
    synthetic = rng.normal(0.0, 1.0, (70, F))
    c, member, groups = privacy.make_candidates(train, holdout, test, n=60, seed=2)
    full = brute_force(c, synthetic, metric)
    kw = {"metric": metric, "quantile": 0.05}
    one = privacy.membership_attacks(c, member, synthetic, batch=7, **kw)
    other = privacy.membership_attacks(c, member, synthetic, batch=1000, **kw)
    pair, dist = one["pairwise"], one["distribution"]
    np.testing.assert_allclose(pair.min_distance, full.min(1), rtol=1e-12)
    np.testing.assert_array_equal(pair.nearest, full.argmin(1))
    np.testing.assert_allclose(pair.median_distance, np.median(full, 1), rtol=1e-5)
    t = np.sort(full.ravel())[int(0.05 * full.size)]
    assert dist.threshold == pytest.approx(t, rel=1e-5)
    # counts: every pair below t, none above (float32 distances: 1e-5 either side is undecided)
    assert np.all((full < t * (1 - 1e-5)).sum(1) <= dist.counts)
    assert np.all(dist.counts <= (full <= t * (1 + 1e-5)).sum(1))
    assert one["distribution"].counts == other["distribution"].counts
    assert pair.by_ratio.order == other["pairwise"].by_ratio.order
    assert privacy.pairwise_attack(c, member, synthetic, metric=metric).by_min == pair.by_min
    assert privacy.distribution_attack(c, member, synthetic, **kw).counts == dist.counts
    text = json.dumps({"pairwise": asdict(pair), "distribution": asdict(dist)}, allow_nan=False)
    back = json.loads(text)
    assert back["pairwise"]["by_min"]["auc"] == pair.by_min.auc
    assert back["distribution"]["groups"][0] == "member"  # default labels


def test_make_candidates_takes_equal_parts():
    rng, train, holdout, test = toy_sets(6, n_train=400, n_other=400)
    c, member, groups = privacy.make_candidates(train, holdout, test)
    assert c.shape == (1000, F) and member.sum() == 334
    assert groups.count("holdout") == groups.count("test") == 333
    again = privacy.make_candidates(train, holdout, test)
    np.testing.assert_array_equal(c, again[0])
    with pytest.raises(DataError, match="holdout set has 200 rows, expected >= 333"):
        privacy.make_candidates(train, holdout[:200], test)


def test_dcr_of_copies_and_of_an_independent_sample():
    rng = np.random.default_rng(7)
    train, holdout = rng.normal(size=(500, 6)), rng.normal(size=(500, 6))
    copies = train[rng.integers(0, 500, 300)]
    dcr = privacy.distance_to_closest_record(train, copies, holdout)
    assert dcr.exact_copies == 300 and set(dcr.dcr) == {0.0}
    assert dcr.percentiles["p100"] == 0.0 and dcr.share_closer_to_train == 1.0
    assert dcr.holdout_percentiles["p0"] > 0.0 and dcr.expected_share == 0.5
    fresh = rng.normal(size=(1000, 6))
    dcr = privacy.distance_to_closest_record(train, fresh, holdout)
    assert abs(dcr.share_closer_to_train - 0.5) < 0.05 and dcr.exact_copies == 0
    assert dcr.percentiles["p5"] <= dcr.percentiles["p50"] <= dcr.percentiles["p95"]
    assert json.loads(json.dumps(asdict(dcr)))["n_holdout"] == 500
    without = privacy.distance_to_closest_record(train, fresh)
    assert without.share_closer_to_train is None and without.dcr == dcr.dcr


def test_encode_table_standardises_one_hots_and_handles_missing_values():
    train = pd.DataFrame(
        {
            "age": [40.0, 50.0, np.nan, 70.0],
            "sex": ["F", "M", "F", None],
            "smoker": [True, False, False, True],
        }
    )
    synthetic = pd.DataFrame(
        {"age": [55.0, np.nan], "sex": ["X", "M"], "smoker": [False, True]}  # X: unseen
    )
    x = privacy.encode_table(train)
    # age (z, missing), sex (F, M, missing), smoker (True, False, missing)
    assert x.shape == (4, 8)
    z = (np.array([40.0, 50.0, 70.0]) - 160.0 / 3) / np.array([40.0, 50.0, 70.0]).std()
    np.testing.assert_allclose(x[[0, 1, 3], 0], z)
    np.testing.assert_array_equal(x[:, 1], [0, 0, 1, 0])
    np.testing.assert_array_equal(x[2, :2], [0.0, 1.0])  # missing: the mean, flagged
    np.testing.assert_array_equal(x[:, 2:5], [[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]])
    y = privacy.encode_table(synthetic, fit_on=train)
    assert y.shape == (2, 8)
    np.testing.assert_array_equal(y[0, 2:5], [0, 0, 0])  # an unseen category: all zeros
    np.testing.assert_array_equal(y[1, :2], [0.0, 1.0])
    dcr = privacy.distance_to_closest_record(x, y)
    assert len(dcr.dcr) == 2
    with pytest.raises(DataError, match="lacks column"):
        privacy.encode_table(synthetic.drop(columns="sex"), fit_on=train)


def test_errors_name_what_was_expected():
    a, b = np.ones((5, 4)), np.ones((6, 3))
    with pytest.raises(DataError, match="queries have 4 features per row, references 3"):
        privacy.nearest_neighbours(a, b)
    with pytest.raises(DataError, match=r"synthetic: got shape \(0, 4\), expected a non-empty"):
        privacy.pairwise_attack(a, np.arange(5) < 2, np.ones((0, 4)))
    with pytest.raises(DataError, match="real_train: got shape"):
        privacy.distance_to_closest_record(np.ones((0, 4)), a)
    with pytest.raises(DataError, match="is_member: 5 of 5 candidates are members"):
        privacy.pairwise_attack(a, np.ones(5, bool), a)
    with pytest.raises(DataError, match=r"expected bool of shape \(5,\)"):
        privacy.distribution_attack(a, np.ones(4, bool), a)
    with pytest.raises(DataError, match="NaN or infinite"):
        privacy.nearest_neighbours(np.full((2, 4), np.nan), a)
    with pytest.raises(DataError, match="row 1 is all zeros"):
        privacy.nearest_neighbours(a, np.eye(4)[[0, 3, 3]] * [[1], [0], [1]], metric="cosine")
    with pytest.raises(DataError, match="k = 9 neighbours requested, but references have 5"):
        privacy.nearest_neighbours(a, a, k=9)
    with pytest.raises(ConfigError, match="metric: got 'l1'"):
        privacy.nearest_neighbours(a, a, metric="l1")
    with pytest.raises(ConfigError, match="embed: got 'tsne'"):
        privacy.pairwise_attack(a, np.arange(5) < 2, a, embed="tsne")
    with pytest.raises(ConfigError, match=r"quantile: got 1.5, expected a number in \(0, 1\)"):
        privacy.distribution_attack(a, np.arange(5) < 2, a, quantile=1.5)


def test_umap_without_umap_learn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # makes `import umap` raise ImportError
    with pytest.raises(ConfigError, match="pip install umap-learn"):
        privacy.pairwise_attack(np.ones((5, 4)), np.arange(5) < 2, np.ones((6, 4)), embed="umap")


@pytest.mark.slow  # umap-learn's first fit in a process JIT-compiles for ~20 s
def test_attacks_in_umap_space_flag_copies():
    pytest.importorskip("umap")
    rng, train, holdout, test = toy_sets(8, n_train=60)
    synthetic = train[rng.integers(0, 60, 240)] + rng.normal(0.0, 0.01, (240, F))
    c, member, groups = privacy.make_candidates(train, holdout, test, n=150, seed=0)
    out = privacy.membership_attacks(c, member, synthetic, groups=groups, embed="umap")
    pair, dist = out["pairwise"], out["distribution"]
    assert pair.space == dist.space == "umap" and dist.quantile == 0.001
    assert pair.by_min.auc > 0.75  # copies stay close in UMAP, though less so than in input space
