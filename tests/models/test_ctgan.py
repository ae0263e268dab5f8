"""CTGAN networks: reference sizes, activations, hard conditions, the conditional loss, PacGAN."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsyn.errors import ConfigError
from jaxsyn.models import ctgan as m

# A row: numeric scalar + 3 modes, a discrete column of 2, a scalar + 2 modes, a discrete of 3.
SPANS = ((0, 1, "scalar"), (1, 3, "onehot"), (4, 2, "onehot"), (6, 1, "scalar"),
         (7, 2, "onehot"), (9, 3, "onehot"))  # fmt: skip
DISCRETE = (2, 5)


def config(**kw):
    return m.CTGANConfig(spans=SPANS, discrete=DISCRETE, **kw)


def test_reference_parameter_count():
    # The reference's generator on sklearn's diabetes table: data_dim 48 (ours), cond_dim 2,
    # 164,496 parameters (../shared/reference/ctgan.md section 3).
    spans = ((0, 2, "onehot"), *((2 + i, 1, "scalar") for i in range(46)))
    c = m.CTGANConfig(spans=spans, discrete=(0,))
    params = m.init(jax.random.key(0), c)
    assert (c.data_dim, c.cond_dim) == (48, 2)
    assert m.param_count(params["g"]) == 164_496
    # D: Linear(10 * 50, 256), Linear(256, 256), Linear(256, 1)
    assert m.param_count(params["d"]) == 500 * 256 + 256 + 256 * 256 + 256 + 257


def test_pytorch_default_init_bounds():
    params = m.init(jax.random.key(1), config())
    first = params["g"]["TorchDense_0"]["Dense_0"]["kernel"]
    bound = 1 / np.sqrt(first.shape[0])
    assert np.abs(first).max() <= bound and np.abs(first).max() > 0.9 * bound
    assert np.abs(params["g"]["TorchDense_0"]["Dense_0"]["bias"]).max() <= bound


def test_activate_tanh_scalars_and_softmax_spans():
    c = config(hard_conditions=False)
    logits = jax.random.normal(jax.random.key(0), (16, c.data_dim)) * 3
    keys = jax.random.split(jax.random.key(1), 16)
    out = np.asarray(m.activate(logits, jnp.zeros((16, c.cond_dim)), keys, c))
    np.testing.assert_allclose(out[:, [0, 6]], np.tanh(np.asarray(logits)[:, [0, 6]]), rtol=1e-6)
    for start, width, kind in SPANS:
        if kind == "onehot":
            np.testing.assert_allclose(out[:, start : start + width].sum(1), 1, rtol=1e-5)
    # Gumbel-softmax with tau 0.2 from the same key equals the formula
    g = jax.vmap(lambda k: jax.random.gumbel(k, (c.data_dim,)))(keys)
    y = (np.asarray(logits) + np.asarray(g))[:, 1:4] / 0.2
    expected = np.exp(y - y.max(1, keepdims=True))
    np.testing.assert_allclose(out[:, 1:4], expected / expected.sum(1, keepdims=True), rtol=1e-5)


def test_hard_conditions_fix_named_columns_only():
    c = config()
    n = 32
    cond = np.zeros((n, c.cond_dim), np.float32)
    cond[:16, 1] = 1  # first discrete column, category 1
    cond[16:, 2 + 2] = 1  # second discrete column, category 2 ...
    cond[24:, 0] = 1  # ... and for the last 8 rows the first column too (two columns named)
    logits = jax.random.normal(jax.random.key(0), (n, c.data_dim)) * 5
    out = np.asarray(m.activate(logits, cond, jax.random.split(jax.random.key(2), n), c))
    np.testing.assert_array_equal(out[:16, 4:6], [[0, 1]] * 16)
    np.testing.assert_array_equal(out[16:, 9:12], [[0, 0, 1]] * 16)
    np.testing.assert_array_equal(out[24:, 4:6], [[1, 0]] * 8)
    assert not np.isin(out[:16, 9:12], [0.0, 1.0]).all()  # unnamed spans stay soft
    assert np.isfinite(out).all()
    soft = np.asarray(m.activate(logits, cond, jax.random.split(jax.random.key(2), n),
                                 config(hard_conditions=False)))  # fmt: skip
    assert not np.array_equal(soft[:16, 4:6], out[:16, 4:6])


def test_cond_loss_is_cross_entropy_of_named_columns():
    c = config()
    logits = jax.random.normal(jax.random.key(3), (4, c.data_dim))
    cond = np.zeros((4, c.cond_dim), np.float32)
    cond[0, 0] = 1
    cond[1, 3] = 1
    cond[2, [1, 4]] = 1  # two columns: the losses add
    got = np.asarray(m.cond_loss(logits, cond, c))
    lg = np.asarray(logits, np.float64)

    def ce(span, k):
        z = lg[:, span]
        return np.log(np.exp(z).sum(1)) - z[:, k]

    a, b = slice(4, 6), slice(9, 12)
    expected = [ce(a, 0)[0], ce(b, 1)[1], ce(a, 1)[2] + ce(b, 2)[2], 0.0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    grad = jax.grad(lambda x: m.cond_loss(x, cond, c).sum())(logits)
    assert np.abs(np.asarray(grad)[:, [0, 1, 2, 3, 6, 7, 8]]).max() == 0  # only named spans


def test_discriminator_packs_pac_rows_and_dropout_is_per_group():
    c = config(pac=4)
    params = m.init(jax.random.key(0), c)["d"]
    x = jax.random.normal(jax.random.key(1), (8, c.data_dim))
    cond = jnp.zeros((8, c.cond_dim))
    keys = jax.random.split(jax.random.key(2), 2)
    full = m.apply_discriminator(params, x, cond, c, keys)
    assert full.shape == (2,)
    halves = [m.apply_discriminator(params, x[i:i + 4], cond[i:i + 4], c, keys[j:j + 1])
              for j, i in enumerate((0, 4))]  # fmt: skip
    np.testing.assert_allclose(np.concatenate(halves), full, rtol=1e-6)  # groups independent
    swapped = m.apply_discriminator(params, x[jnp.array([1, 0, 2, 3, 4, 5, 6, 7])], cond, c, keys)
    assert swapped[0] != full[0] and swapped[1] == full[1]  # order inside a pack matters
    assert not np.allclose(m.apply_discriminator(params, x, cond, c, None), full)  # dropout on
    with pytest.raises(ConfigError, match="multiple of pac 4"):
        m.apply_discriminator(params, x[:6], cond[:6], c, keys)


def test_generate_shapes_and_conditions():
    c = config()
    params = m.init(jax.random.key(0), c)["g"]
    cond = np.zeros((10, c.cond_dim), np.float32)
    cond[:, 2 + 1] = 1
    rows = np.asarray(m.generate(params, jax.random.key(4), jnp.asarray(cond), c))
    assert rows.shape == (10, c.data_dim)
    np.testing.assert_array_equal(rows[:, 9:12].argmax(1), 1)
    again = np.asarray(m.generate(params, jax.random.key(4), jnp.asarray(cond), c))
    np.testing.assert_array_equal(rows, again)


@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(spans=((0, 1, "scalar"), (2, 2, "onehot")), discrete=()), "start 1"),
        (dict(spans=((0, 2, "scalar"),), discrete=()), "width 1"),
        (dict(spans=((0, 1, "scalar"),), discrete=(0,)), "one-hot span"),
        (dict(spans=SPANS, discrete=DISCRETE, tau=0), "tau"),
    ],
)
def test_config_errors(kw, words):
    with pytest.raises(ConfigError, match=words):
        m.CTGANConfig(**kw)


def test_sample_rows_draws_what_generate_decodes_to():
    # argmax of the Gumbel-softmax ~ Categorical(softmax(logits)): sample_rows draws that by
    # inverse CDF. Same generator, same z: category frequencies agree, scalars are identical.
    c = config()
    params = m.init(jax.random.key(0), c)["g"]
    stats = m.init_stats(c)
    n = 20000
    cond = np.zeros((n, c.cond_dim), np.float32)
    cond[: n // 2, 1] = 1  # half the rows name the first discrete column
    key = jax.random.key(5)
    rows = np.asarray(m.sample_rows(params, key, jnp.asarray(cond), c, stats))
    z = jax.random.normal(jax.random.split(key)[0], (n, c.embedding_dim))
    logits = m.apply_generator(params, z, jnp.asarray(cond), c, stats=stats)
    soft = np.asarray(m.activate(logits, jnp.asarray(cond), jax.random.split(key, n), c))
    np.testing.assert_allclose(rows[:, [0, 6]], soft[:, [0, 6]], rtol=1e-6)
    for start, width, kind in SPANS:
        if kind != "onehot":
            continue
        got = rows[:, start : start + width]
        np.testing.assert_array_equal(got.sum(1), 1)  # exact one-hots
        a = np.bincount(got.argmax(1), minlength=width) / n
        b = np.bincount(soft[:, start : start + width].argmax(1), minlength=width) / n
        np.testing.assert_allclose(a, b, atol=0.02)
    np.testing.assert_array_equal(rows[: n // 2, 4:6], [[0, 1]] * (n // 2))  # hard condition


@pytest.mark.parametrize("hard", [True, False], ids=["hard", "soft"])
def test_draw_rows_in_both_condition_modes(hard):
    """Rows are drawn whether conditions are hard (the named slot exactly) or soft (the reference:
    the condition only conditions): every span one exact one-hot, scalars tanh, and the draw
    follows softmax(logits). Soft mode used to crash (issue 16, item 2)."""
    c = config(hard_conditions=hard)
    n = 4000
    logits = jnp.tile(jnp.linspace(-1.0, 1.0, c.data_dim), (n, 1))
    cond = jnp.zeros((n, c.cond_dim)).at[:, 1].set(1.0)  # the first discrete column, category 1
    rows = np.asarray(m.draw_rows(logits, cond, jax.random.key(0), c))
    np.testing.assert_allclose(rows[:, [0, 6]], np.tanh(np.asarray(logits)[:, [0, 6]]), rtol=1e-6)
    for start, width, kind in SPANS:
        if kind == "onehot":
            block = rows[:, start : start + width]
            assert set(np.unique(block)) <= {0.0, 1.0} and (block.sum(1) == 1).all()
    named = rows[:, 4:6].argmax(1)
    if hard:
        assert (named == 1).all()
    else:  # drawn with softmax(logits[4:6]) probabilities, the condition notwithstanding
        p = np.exp(np.asarray(logits[0, 4:6]))
        p /= p.sum()
        assert abs((named == 1).mean() - p[1]) < 4 * np.sqrt(p[1] * p[0] / n)
