"""Tabular fidelity metrics, checked number by number against sdmetrics (MIT) on real patients.

Real data: scikit-learn's diabetes table (442 patients, unscaled). The "synthetic" tables are
perturbed copies, so every score is well inside (0, 1) and every code path runs: noise on numeric
columns, a shuffled column, flipped categories, missing values in numeric, categorical and datetime
columns, a category only the synthetic table has, category / bool / nullable-integer dtypes and a
constant column.
"""

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sdmetrics.column_pairs import ContingencySimilarity, CorrelationSimilarity
from sdmetrics.errors import ConstantInputError
from sdmetrics.reports import QualityReport as UnifiedQualityReport
from sdmetrics.single_column import KSComplement, TVComplement
from sklearn.datasets import load_diabetes

from jaxsyn.errors import ConfigError, DataError
from jaxsyn.eval import tabular

with warnings.catch_warnings():  # the single-table module warns on import that it is deprecated
    warnings.simplefilter("ignore", FutureWarning)
    from sdmetrics.reports.single_table import QualityReport
    from sdmetrics.reports.single_table._properties import ColumnPairTrends

# sdmetrics' contingency metric groups a category-dtype column with pandas' deprecated default.
pytestmark = pytest.mark.filterwarnings("ignore:The default of observed=False:FutureWarning")
TOL = 1e-9
SDTYPE = {
    "categorical": "categorical",
    "binary": "boolean",
    "integer": "numerical",
    "float": "numerical",
    "datetime": "datetime",
}
THRESHOLDS = [(0.5, 0.3), (0.0, 0.0), (0.2, 0.1)]  # sdmetrics' defaults, all pairs, looser
ALL_PAIRS = {"correlation_threshold": 0, "association_threshold": 0}


def metadata(kinds):
    return {"columns": {c: {"sdtype": SDTYPE[k]} for c, k in kinds.items()}}


@pytest.fixture(scope="module")
def diabetes():
    real = load_diabetes(as_frame=True, scaled=False).frame
    real["sex"] = real["sex"].astype(int)  # 1 / 2
    rng = np.random.default_rng(0)
    syn = real.copy()
    for c in ["age", "bmi", "bp", "s1", "s2", "s3", "s5", "s6", "target"]:
        syn[c] = syn[c] + rng.normal(0.0, 0.3 * syn[c].std(), len(syn))
    syn["s4"] = rng.permutation(syn["s4"].to_numpy())
    flip = rng.random(len(syn)) < 0.2
    syn.loc[flip, "sex"] = 3 - syn.loc[flip, "sex"]
    kinds = {c: "float" for c in real.columns} | {"sex": "binary"}
    return real, syn, kinds


@pytest.fixture(scope="module")
def mixed():
    """Discrete and numeric columns of many dtypes, missing values, an unseen category, a constant."""
    d = load_diabetes(as_frame=True, scaled=False).frame
    rng = np.random.default_rng(1)
    bmi_class = pd.cut(d.bmi, [0, 18.5, 25, 30, 100], labels=["under", "normal", "over", "obese"])
    real = pd.DataFrame(
        {
            "age": d.age,
            "sex": d.sex.map({1.0: "F", 2.0: "M"}),
            "bmi_class": bmi_class.astype(str),
            "bp": d.bp,
            "s4": d.s4.round().astype(int),
            "s5": d.s5,
            "target": d.target,
            "visit": pd.Timestamp("2020-01-01") + pd.to_timedelta(d.target * 3, unit="D"),
        }
    )
    real.loc[rng.random(len(real)) < 0.1, "bp"] = np.nan
    real.loc[rng.random(len(real)) < 0.1, "bmi_class"] = None
    real.loc[rng.random(len(real)) < 0.05, "visit"] = pd.NaT
    syn = real.sample(frac=1.0, replace=True, random_state=3).reset_index(drop=True)
    syn["age"] = syn.age + rng.normal(0.0, 5.0, len(syn))
    syn.loc[rng.random(len(syn)) < 0.2, "bp"] = np.nan
    syn.loc[rng.random(len(syn)) < 0.05, "sex"] = "unknown"  # never seen in the real table
    syn.loc[rng.random(len(syn)) < 0.1, "s5"] = np.nan
    syn["target"] = rng.permutation(syn.target.to_numpy())
    for t in (real, syn):
        t["bmi_cat"] = pd.Categorical(t.bmi_class, categories=["obese", "over", "normal", "under"])
        t["older"] = t.age > 50  # bool
        t["s4_nullable"] = pd.array(t.s4, dtype="Int64")
        t["const"] = 1.0  # correlation undefined: NaN scores, never counted
    syn["bmi_cat"] = syn.bmi_cat.cat.add_categories("unused")
    syn.loc[rng.random(len(syn)) < 0.1, "s4_nullable"] = pd.NA
    kinds = {
        "age": "float",
        "sex": "binary",
        "bmi_class": "categorical",
        "bp": "float",
        "s4": "integer",
        "s5": "float",
        "target": "float",
        "visit": "datetime",
        "bmi_cat": "categorical",
        "older": "binary",
        "s4_nullable": "integer",
        "const": "float",
    }
    return real, syn, kinds


@pytest.fixture(params=["diabetes", "mixed"])
def tables(request):
    return request.getfixturevalue(request.param)


def sdmetrics_report(real, syn, kinds, thresholds, unified=False, subsample=50_000):
    report = UnifiedQualityReport() if unified else QualityReport()
    report.real_correlation_threshold, report.real_association_threshold = thresholds
    report.num_rows_subsample = subsample
    if unified:
        report.generate({"t": real}, {"t": syn}, {"tables": {"t": metadata(kinds)}}, verbose=False)
    else:
        report.generate(real, syn, metadata(kinds), verbose=False)
    return report


def assert_close(ours, theirs, tol=TOL):
    """Equal to `tol`, NaN exactly where the other is NaN."""
    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    assert np.array_equal(np.isnan(ours), np.isnan(theirs)), (ours, theirs)
    both = ~np.isnan(ours)
    assert np.all(np.abs(ours[both] - theirs[both]) < tol), (ours, theirs)


@pytest.mark.peers
def test_column_shapes_match_sdmetrics_metrics(tables):
    real, syn, kinds = tables
    shapes = tabular.column_shapes(real, syn, kinds)
    assert list(shapes.columns) == ["column", "metric", "score"]
    assert list(shapes["column"]) == list(real.columns)
    for row in shapes.itertuples():
        metric = KSComplement if kinds[row.column] in tabular.NUMERIC else TVComplement
        assert row.metric == metric.__name__
        assert abs(row.score - metric.compute(real[row.column], syn[row.column])) < TOL


def labelled(data, bins, pair):
    """The pair's columns, a numeric one replaced by its histogram-bin labels."""
    return pd.DataFrame({c: bins[c] if c in bins else data[c] for c in pair})


@pytest.mark.peers
def test_pair_scores_match_sdmetrics_metrics(tables):
    real, syn, kinds = tables
    pairs = tabular.column_pair_trends(real, syn, kinds, **ALL_PAIRS)
    # The report bins each numeric column on the histogram edges of its own table before calling
    # ContingencySimilarity (not the metric's own `continuous_column_names` binning, which uses
    # the real edges for both); use its private preprocessing to feed the metric the same labels.
    prop = ColumnPairTrends()
    real_num, real_bins = prop._get_processed_data(real, metadata(kinds))
    syn_num, syn_bins = prop._get_processed_data(syn, metadata(kinds))
    assert len(pairs) == len(list(itertools.combinations(real.columns, 2)))
    for row in pairs.itertuples():
        a, b = row.column_1, row.column_2
        if kinds[a] in tabular.NUMERIC and kinds[b] in tabular.NUMERIC:
            assert row.metric == "CorrelationSimilarity"
            try:
                theirs = CorrelationSimilarity.compute(real_num[[a, b]], syn_num[[a, b]])
            except ConstantInputError:  # the report records NaN
                theirs = np.nan
        else:
            assert row.metric == "ContingencySimilarity"
            theirs = ContingencySimilarity.compute(
                labelled(real, real_bins, (a, b)), labelled(syn, syn_bins, (a, b))
            )
        assert_close(row.score, theirs)


@pytest.mark.peers
@pytest.mark.parametrize("thresholds", THRESHOLDS)
def test_quality_matches_sdmetrics_report(tables, thresholds):
    real, syn, kinds = tables
    report = sdmetrics_report(real, syn, kinds, thresholds)
    ours = tabular.quality(
        real, syn, kinds, correlation_threshold=thresholds[0], association_threshold=thresholds[1]
    )
    shapes_score, trends_score = report.get_properties()["Score"]
    assert abs(ours["column_shapes"] - shapes_score) < TOL
    assert abs(ours["column_pair_trends"] - trends_score) < TOL
    assert abs(ours["overall"] - report.get_score()) < TOL
    if thresholds == (0.0, 0.0):
        assert ours["column_pair_trends_all_pairs"] == ours["column_pair_trends"]

    # Pair by pair: which pairs count, their scores and the real association deciding it.
    details = report.get_details("Column Pair Trends")
    pairs = tabular.column_pair_trends(
        real, syn, kinds, correlation_threshold=thresholds[0], association_threshold=thresholds[1]
    )
    assert list(pairs["column_1"]) == list(details["Column 1"])
    assert list(pairs["column_2"]) == list(details["Column 2"])
    assert list(pairs["metric"]) == list(details["Metric"])
    # sdmetrics marks a pair whose metric raised (a constant column) neither True nor False, and
    # does not count it; ours says whether the real data meet the threshold, and the pair's NaN
    # score keeps it out of the mean all the same.
    errored = details["Meets Threshold?"].isna().to_numpy()
    assert pairs["score"][errored].isna().all()
    counted = details["Meets Threshold?"].fillna(False).to_numpy(dtype=bool)
    assert np.array_equal(pairs["meets_threshold"][~errored], counted[~errored])
    assert ours["pairs_counted"] == int((counted & details["Score"].notna()).sum())
    assert_close(pairs["score"][counted], details["Score"][counted])
    assert_close(pairs["real_correlation"], details["Real Correlation"])
    if thresholds[1] > 0:  # sdmetrics computes Cramér's V only when a threshold asks for it
        assert_close(pairs["real_association"], details["Real Association"])

    if thresholds == THRESHOLDS[0]:  # the non-deprecated sdmetrics.reports.QualityReport too
        unified = sdmetrics_report(real, syn, kinds, thresholds, unified=True)
        assert abs(ours["overall"] - unified.get_score()) < TOL


def test_default_thresholds_are_sdmetrics_defaults(diabetes):
    real, syn, kinds = diabetes
    defaults = QualityReport()
    assert defaults.real_correlation_threshold == tabular.CORRELATION_THRESHOLD
    assert defaults.real_association_threshold == tabular.ASSOCIATION_THRESHOLD
    default = tabular.quality(real, syn, kinds)
    report = QualityReport()
    report.generate(real, syn, metadata(kinds), verbose=False)
    assert abs(default["overall"] - report.get_score()) < TOL
    # Few diabetes pairs are strongly related: the thresholded score counts only those.
    assert 0 < default["pairs_counted"] < default["pairs_total"] == 55
    every = tabular.quality(real, syn, kinds, correlation_threshold=None, association_threshold=0)
    assert every["column_pair_trends"] == default["column_pair_trends_all_pairs"]
    assert every["overall"] == default["overall_all_pairs"]
    assert every["pairs_counted"] == 55


def test_thresholds_are_strict(diabetes):
    real, syn, kinds = diabetes
    pairs = tabular.column_pair_trends(real, syn, kinds, **ALL_PAIRS)
    assert pairs["meets_threshold"].all()
    s1_s2 = (pairs["column_1"] == "s1") & (pairs["column_2"] == "s2")
    rho = abs(float(pairs.loc[s1_s2, "real_correlation"].iloc[0]))  # the strongest, about 0.9
    no_contingency = {"association_threshold": 1.0}  # Cramér's V > 1 never holds
    at = tabular.column_pair_trends(real, syn, kinds, correlation_threshold=rho, **no_contingency)
    assert not at["meets_threshold"].any()  # |rho| > threshold, not >=
    below = tabular.column_pair_trends(
        real, syn, kinds, correlation_threshold=rho - 1e-6, **no_contingency
    )
    assert below["meets_threshold"].to_numpy().nonzero()[0].tolist() == [s1_s2.argmax()]


@pytest.mark.peers
def test_large_table_subsamples_contingency_pairs_deterministically(diabetes):
    real, _, kinds = diabetes
    columns = ["age", "sex", "bmi", "s5", "target"]  # 10 pairs, 4 of them contingency pairs
    real, kinds = real[columns], {c: kinds[c] for c in columns}
    big = real.sample(60_000, replace=True, random_state=0).reset_index(drop=True)
    big["bmi"] += np.random.default_rng(0).normal(0.0, 1.0, len(big))
    syn = big.sample(55_000, replace=True, random_state=1).reset_index(drop=True)
    syn["age"] += np.random.default_rng(1).normal(0.0, 3.0, len(syn))
    thresholds = (0.0, 0.0)  # count every pair, so the subsampled contingency pairs matter
    full = tabular.quality(big, syn, kinds, **ALL_PAIRS, max_rows=None)
    # sdmetrics' subsample is unseeded: compare exactly with subsampling off on both sides.
    report = sdmetrics_report(big, syn, kinds, thresholds, subsample=None)
    assert abs(full["overall"] - report.get_score()) < TOL
    sampled = tabular.quality(big, syn, kinds, **ALL_PAIRS)
    assert sampled == tabular.quality(big, syn, kinds, **ALL_PAIRS)  # seeded
    assert sampled["column_shapes"] == full["column_shapes"]  # only pairs are subsampled
    assert sampled["column_pair_trends"] != full["column_pair_trends"]
    assert abs(sampled["column_pair_trends"] - full["column_pair_trends"]) < 0.01
    report = sdmetrics_report(big, syn, kinds, thresholds)  # its own random 50,000 rows
    assert abs(sampled["overall"] - report.get_score()) < 0.01
    same = tabular.quality(big, big, kinds, **ALL_PAIRS)  # same rows kept: exactly 1
    assert same["overall"] == same["column_pair_trends"] == 1.0


def test_identical_tables_score_one(tables):
    real, _, kinds = tables
    q = tabular.quality(real, real.copy(), kinds, **ALL_PAIRS)
    assert q["column_shapes"] == q["column_pair_trends"] == q["overall"] == 1.0
    assert q["overall_all_pairs"] == 1.0
    shapes = tabular.column_shapes(real, real, kinds)
    assert (shapes["score"] == 1.0).all()
    pairs = tabular.column_pair_trends(real, real, kinds)
    undefined = (pairs["column_2"] == "const") & (pairs["metric"] == "CorrelationSimilarity")
    assert (pairs["score"][~undefined] == 1.0).all()
    assert pairs["score"][undefined].isna().all()
    m_real, m_syn = tabular.correlation_matrices(real, real, kinds)
    pd.testing.assert_frame_equal(m_real, m_syn)


def test_inferred_kinds(mixed, diabetes):
    real, syn, kinds = mixed  # object -> categorical, datetime64 -> datetime, numbers -> numeric
    assert tabular.quality(real, syn) == tabular.quality(real, syn, kinds)
    real, syn, _ = diabetes  # sex is an int column: numeric unless kinds says otherwise
    shapes = tabular.column_shapes(real, syn).set_index("column")
    assert shapes.loc["sex", "metric"] == "KSComplement"
    assert shapes.loc["bmi", "metric"] == "KSComplement"
    flags = pd.DataFrame({"smoker": [True, False, True], "ecog": pd.Categorical(["0", "1", "0"])})
    assert set(tabular.column_shapes(flags, flags)["metric"]) == {"TVComplement"}


def test_correlation_matrices(mixed):
    real, syn, kinds = mixed
    m_real, m_syn = tabular.correlation_matrices(real, syn, kinds)
    names = list(real.columns)
    for m in (m_real, m_syn):
        assert list(m.index) == list(m.columns) == names
        assert np.allclose(m.to_numpy(), m.to_numpy().T, equal_nan=True)
        assert np.array_equal(np.diag(m.to_numpy()) == 1.0, m.columns != "const")
    numeric = [c for c in names if kinds[c] in tabular.NUMERIC]
    as_numbers = real[numeric].assign(visit=real.visit.astype("int64").where(real.visit.notna()))
    assert_close(m_real.loc[numeric, numeric], as_numbers.corr(), tol=1e-12)  # pairwise Pearson
    pairs = tabular.column_pair_trends(real, syn, kinds, max_rows=None)
    contingency = pairs[pairs["metric"] == "ContingencySimilarity"]
    cells = list(zip(contingency["column_1"], contingency["column_2"], strict=True))
    assert_close([m_real.loc[c] for c in cells], contingency["real_association"], tol=1e-12)
    v_syn = np.array([m_syn.loc[c] for c in cells])
    assert np.all((v_syn >= 0.0) & (v_syn <= 1.0) | np.isnan(v_syn))


def test_heatmaps_png(mixed, tmp_path):
    real, syn, kinds = mixed
    path = tabular.correlation_heatmaps(real, syn, tmp_path / "figs" / "heat.png", kinds, title="t")
    assert path == tmp_path / "figs" / "heat.png"
    assert [p.name for p in path.parent.iterdir()] == ["heat.png"]  # no temporary left behind
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert width > 2.5 * height  # three square panels side by side


def test_one_column_has_no_pairs(diabetes):
    real, syn, _ = diabetes
    q = tabular.quality(real[["bmi"]], syn[["bmi"]])
    assert q["pairs_total"] == q["pairs_counted"] == 0
    assert np.isnan(q["column_pair_trends"])
    assert q["overall"] == q["column_shapes"] == q["overall_all_pairs"]


def test_errors_name_the_problem(diabetes):
    real, syn, kinds = diabetes
    with pytest.raises(DataError, match=r"missing from synthetic \['s6'\]"):
        tabular.quality(real, syn.drop(columns="s6"), kinds)
    with pytest.raises(DataError, match=r"only in synthetic \['extra'\]"):
        tabular.column_shapes(real, syn.assign(extra=1.0), kinds)
    with pytest.raises(DataError, match="synthetic table is empty"):
        tabular.column_pair_trends(real, syn.iloc[:0], kinds)
    with pytest.raises(DataError, match="real table is empty"):
        tabular.correlation_matrices(real.iloc[:0], syn, kinds)
    with pytest.raises(DataError, match="column 'bmi' has no entry in kinds"):
        tabular.quality(real, syn, {k: v for k, v in kinds.items() if k != "bmi"})
    with pytest.raises(DataError, match="column 'bmi': kind 'continuous'"):
        tabular.quality(real, syn, kinds | {"bmi": "continuous"})
    text = real.assign(bmi=real.bmi.astype(str) + " kg/m2")
    with pytest.raises(DataError, match="column 'bmi' .*cannot read it as numbers"):
        tabular.column_shapes(text, text, kinds)
    with pytest.raises(ConfigError, match="correlation_threshold"):
        tabular.quality(real, syn, kinds, correlation_threshold=1.5)
