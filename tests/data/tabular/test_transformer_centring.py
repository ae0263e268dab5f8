"""`TransformerConfig.centre_by`: numeric columns encoded relative to a class's (shrunk) mean and
decoded relative to the decoded class's, as MMCGAN's tabular head uses it (issue 22)."""

import json

import numpy as np
import pandas as pd
import pytest

from jaxsyn.data.tabular import TableTransformer, TransformerConfig, infer_schema
from jaxsyn.errors import ConfigError


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    cls = rng.choice(["lean", "mid", "high"], 60, p=[0.2, 0.3, 0.5])
    cls[0] = "lone"  # a class of one patient
    base = pd.Series(cls).map({"lean": 18.0, "mid": 27.0, "high": 33.0, "lone": 15.0})
    bmi = (base + rng.normal(0, 1.0, 60)).round(2)
    age = rng.integers(20, 80, 60).astype(float)
    age[[3, 7]] = np.nan  # missing values keep their indicator
    return pd.DataFrame({"cls": cls, "bmi": bmi, "age": age})


@pytest.fixture(scope="module")
def centred(table) -> TableTransformer:
    schema = infer_schema(table, kinds={"cls": "categorical"}, detect_id=False)
    return TableTransformer.fit(table, schema, config=TransformerConfig(centre_by="cls"),
                                progress=False)  # fmt: skip


def test_offsets_are_the_shrunk_class_means(table, centred):
    prior = centred.config.centre_prior
    cats = list(centred.schema["cls"].categories)
    for i, name in enumerate(["bmi", "age"]):
        col = table[name]
        g = col.mean()  # pandas skips the missing ages, as the fit does
        stats = col.groupby(table["cls"]).agg(["sum", "count"]).reindex(cats)
        want = (stats["sum"] + prior * g) / (stats["count"] + prior) - g
        np.testing.assert_allclose(centred.class_offsets[i], want.to_numpy(), rtol=1e-9)
    # a class of one patient is centred a third of the way from the mean to that patient
    lone, row, g = cats.index("lone"), table["bmi"][0], table["bmi"].mean()
    assert centred.class_offsets[0, lone] == pytest.approx((row - g) / 3)
    assert abs(g + centred.class_offsets[0, lone] - row) > 5


def test_round_trip_and_decoding_follows_the_class(table, centred):
    data = centred.transform(table, 0, progress=False)
    back = centred.inverse_transform(data, progress=False)
    np.testing.assert_allclose(back["bmi"], table["bmi"], atol=0.011)
    np.testing.assert_array_equal(back["age"].isna(), table["age"].isna())
    # the same encoded residual decoded under another class moves by the offsets' difference
    cats = list(centred.schema["cls"].categories)
    span = centred.layout.spans[centred.layout.discrete[0]]
    rows = data[table["cls"].to_numpy() == "mid"][:5].copy()
    mid = centred.inverse_transform(rows, progress=False)["bmi"].to_numpy()
    rows[:, span.start : span.start + span.width] = np.eye(span.width)[cats.index("high")]
    high = centred.inverse_transform(rows, progress=False)["bmi"].to_numpy()
    shift = (
        centred.class_offsets[0, cats.index("high")] - centred.class_offsets[0, cats.index("mid")]
    )
    assert shift > 4
    np.testing.assert_allclose(high - mid, np.minimum(mid + shift, table["bmi"].max()) - mid,
                               atol=0.011)  # fmt: skip


def test_saved_offsets_load_and_old_files_load_without(table, centred, tmp_path):
    loaded = TableTransformer.load(centred.save(tmp_path / "t.json"))
    np.testing.assert_allclose(loaded.class_offsets, centred.class_offsets)
    assert loaded.config.centre_by == "cls"
    d = json.loads((tmp_path / "t.json").read_text())  # a file written before centring existed
    del d["class_offsets"], d["config"]["centre_by"], d["config"]["centre_prior"]
    (tmp_path / "old.json").write_text(json.dumps(d))
    old = TableTransformer.load(tmp_path / "old.json")
    assert old.class_offsets is None and old.config.centre_by is None


def test_centre_by_must_name_a_discrete_column(table):
    with pytest.raises(ConfigError, match=r"centre_by is 'bmi'; expected one of .*\['cls'\]"):
        TableTransformer.fit(table, infer_schema(table, kinds={"cls": "categorical"},
                             detect_id=False), config=TransformerConfig(centre_by="bmi"),
                             progress=False)  # fmt: skip
    with pytest.raises(ConfigError, match="centre_prior is -1"):
        TransformerConfig(centre_prior=-1)
