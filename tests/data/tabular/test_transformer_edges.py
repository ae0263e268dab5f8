"""Tables with no numeric or no discrete columns round-trip through the transformer, its file
included (the ctgan drop-in met both: a saved transformer of only discrete columns lost its
mixture arrays' [0, K] shape, and decoding a table without discrete columns took an argmax of
nothing)."""

import numpy as np
import pandas as pd

from jaxsyn.data.tabular import TableTransformer, infer_schema


def test_only_discrete_columns_save_and_load(tmp_path):
    df = pd.DataFrame({"c": np.random.default_rng(0).choice(["a", "b", "c"], 50)})
    fitted = TableTransformer.fit(df, progress=False)
    loaded = TableTransformer.load(fitted.save(tmp_path / "t.json"))
    assert loaded.layout == fitted.layout and loaded.mixture.means.shape == (0, 10)
    data = fitted.transform(df, 0, progress=False)
    pd.testing.assert_frame_equal(loaded.inverse_transform(data, progress=False), df)


def test_only_numeric_columns_decode():
    x = np.random.default_rng(1).normal(size=40).round(3)
    df = pd.DataFrame({"x": x})
    fitted = TableTransformer.fit(df, infer_schema(df), progress=False)
    back = fitted.inverse_transform(fitted.transform(df, 0, progress=False), progress=False)
    np.testing.assert_allclose(back["x"], x, atol=2e-3)
