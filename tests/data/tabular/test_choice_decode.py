"""Decoding from each span's drawn entry (`choice_parts`, what the sampler runs on the device)
gives what decoding the one-hot rows gives (`decode_parts`, `inverse_transform`): the same modes,
missing flags and categories, scalars within an ulp of tanh; on a table with a missing indicator
and pruned mixture modes, and on tables with only one kind of column."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from jaxsyn.data.tabular import TableTransformer, choice_parts, decode_parts, infer_schema
from jaxsyn.models.ctgan import CTGANConfig, draw_choices, rows_from_choices


def _tables():
    rng = np.random.default_rng(0)
    n = 300
    bmi = np.where(rng.random(n) < 0.5, rng.normal(22, 1, n), rng.normal(31, 2, n)).round(1)
    bmi[rng.random(n) < 0.1] = np.nan  # a missing indicator span
    mixed = pd.DataFrame({
        "age": rng.integers(20, 90, n),
        "site": rng.choice(["a", "b", "c", "d"], n),
        "bmi": bmi,
        "smoker": rng.choice([0, 1], n),
    })  # fmt: skip
    return {
        "mixed": mixed,
        "numeric": mixed[["age", "bmi"]],
        "discrete": mixed[["site", "smoker"]],
    }


@pytest.mark.parametrize("name", ["mixed", "numeric", "discrete"])
def test_choice_parts_equal_decoding_the_rows(name):
    df = _tables()[name]
    t = TableTransformer.fit(df, infer_schema(df, detect_id=False), progress=False)
    if name == "mixed":  # a mode pruned between kept ones: the j-th valid mode is not mode j
        assert any((~v[: v.nonzero()[0].max()]).any() for v in t.valid), t.valid
    config = CTGANConfig.from_layout(t.layout)
    n = 500
    logits = jax.random.normal(jax.random.key(1), (n, config.data_dim)) * 3
    cond = jnp.zeros((n, config.cond_dim))
    choice = draw_choices(logits, cond, jax.random.key(2), config)
    rows = rows_from_choices(logits, choice, config)
    ix = t.decode_index
    want = decode_parts(np.asarray(rows), ix)
    on_device = jax.jit(lambda lg, ch, i: choice_parts(lg, ch, i, jnp))(logits, choice, ix)
    on_host = choice_parts(np.asarray(logits), np.asarray(choice), ix)
    for got in (on_device, on_host):  # modes, missing flags, codes: exact; scalars: tanh to an
        np.testing.assert_allclose(np.asarray(got[0]), want[0], rtol=1e-6)  # ulp (fusion)
        for a, b in zip(got[1:], want[1:], strict=True):
            np.testing.assert_array_equal(np.asarray(a), b)
    frame = t.from_parts(*(np.asarray(a) for a in want))
    pd.testing.assert_frame_equal(frame, t.inverse_transform(np.asarray(rows), progress=False))
    if name != "discrete":  # every drawn mode is a kept one
        assert t.valid[np.arange(t.valid.shape[0]), want[1]].all()
    if name == "mixed":  # both states of the missing indicator were drawn and decoded
        assert 0 < frame["bmi"].isna().mean() < 1
