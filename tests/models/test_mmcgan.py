"""MMCGAN networks (jaxsyn.models.mmcgan): components, shapes, and that a condition reaches both
modalities through the shared generator."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsyn.data.tabular.transformer import Layout, Span
from jaxsyn.errors import ConfigError
from jaxsyn.models import ctgan, hagan
from jaxsyn.models import mmcgan as model
from jaxsyn.models.mmcgan import MMCGANConfig

# an encoded row: a scalar, a 3-mode span, and a 4-category discrete column (the class)
LAYOUT = Layout(spans=(Span(0, 1, "scalar"), Span(1, 3, "onehot"), Span(4, 4, "onehot")),
                discrete=(2,))  # fmt: skip
CONFIG = MMCGANConfig.tiny().bind(LAYOUT)


@pytest.fixture(scope="module")
def variables():
    return model.init(jax.random.key(0), CONFIG)  # compiled once (model.init is jitted)


def test_components_and_shapes(variables):
    p = variables["params"]
    assert set(p) == {"shared", "image_g", "image_d", "eh", "eg", "bottleneck", "tab_g", "tab_d"}
    assert model.ROW_CLASSIFIER not in p["tab_d"]  # off by default (its test below)
    # shared + heads is exactly HA-GAN's generator
    g = jax.eval_shape(lambda k: hagan.init(k, CONFIG.image), jax.random.key(0))["g"]["params"]
    assert set(model.generator_params(p)) == set(g)
    assert set(p["shared"]) == {k for k in g if k == "fc" or k.startswith("trunk_")}
    cube = CONFIG.image.size // 4
    zc = jnp.zeros((2, CONFIG.image.latent_dim + CONFIG.cond_dim))
    h = model.hypercube(p, zc, CONFIG)
    assert h.shape == (2, cube, cube, cube, CONFIG.image.hypercube_channels)
    v = model.Bottleneck(CONFIG).apply({"params": p["bottleneck"]}, h)
    assert v.shape == (2, CONFIG.bottleneck_dim)
    # [v; z's first row_noise entries]: no continuous conditions
    assert CONFIG.table.embedding_dim == CONFIG.bottleneck_dim + CONFIG.row_noise
    logits = model.table_logits(p, h, zc, jnp.zeros((2, 0)), jnp.zeros((2, 4)), CONFIG,
                                stats=variables["batch_stats"])  # fmt: skip
    assert logits.shape == (2, LAYOUT.dim)
    s = CONFIG.image.size
    out = model.encode(p, jnp.zeros((2, s, s, s, 1)), CONFIG)
    assert out.shape == (2, CONFIG.image.latent_dim + CONFIG.cond_dim)
    z, cls, cont = model.split_encoding(out, CONFIG)
    assert (z.shape, cls.shape, cont.shape) == ((2, 16), (2, 4), (2, 0))


def test_encode_takes_e_h_slab_by_slab_as_training_does(variables):
    """MMCGAN's E^G input (its training step and `encode`, so imputation) is HA-GAN's
    `encode_high`: the 8 depth slabs encoded one by one, concatenated."""
    p, s = variables["params"], CONFIG.image.size
    volume = np.random.default_rng(0).uniform(-1, 1, (1, s, s, s, 1)).astype(np.float32)
    d = s // 8
    eh = hagan.EncoderHigh(CONFIG.image)
    h = jnp.concatenate(
        [eh.apply({"params": p["eh"]}, volume[:, k * d : (k + 1) * d]) for k in range(8)], axis=1
    )
    np.testing.assert_allclose(
        model.encode(p, volume, CONFIG), model.encode_hypercube(p, h, CONFIG), rtol=1e-5, atol=1e-5
    )


def test_a_condition_changes_the_image_and_the_row(variables):
    p = variables["params"]
    z = jax.random.normal(jax.random.key(1), (1, CONFIG.image.latent_dim))

    def both(label: int):
        zc = jnp.concatenate([z, jax.nn.one_hot(jnp.array([label]), 4)], axis=1)
        h = model.hypercube(p, zc, CONFIG)
        g = hagan.Generator(CONFIG.image)
        image = g.apply({"params": model.generator_params(p)}, h, method=g.high_res)
        cond = jax.nn.one_hot(jnp.array([label]), 4)
        logits = model.table_logits(p, h, z, jnp.zeros((1, 0)), cond, CONFIG,
                                    stats=variables["batch_stats"])  # fmt: skip
        row = ctgan.draw_rows(logits, cond, jax.random.key(2), CONFIG.table)
        return np.asarray(image), np.asarray(logits), np.asarray(row)

    img0, log0, row0 = both(0)
    img3, log3, row3 = both(3)
    assert np.abs(img0 - img3).max() > 1e-4
    assert np.abs(log0[:, :4] - log3[:, :4]).max() > 1e-4  # the numeric column's logits too
    # hard conditions: the class column is exactly the condition
    np.testing.assert_array_equal(row0[0, 4:], [1, 0, 0, 0])
    np.testing.assert_array_equal(row3[0, 4:], [0, 0, 0, 1])


def test_table_noise_slot_holds_the_continuous_conditions():
    image = dataclasses.replace(CONFIG.image, num_continuous=2)
    cfg = MMCGANConfig.tiny(image=image)
    assert cfg.table.embedding_dim == cfg.bottleneck_dim + cfg.row_noise + 2
    assert model.encoder_config(cfg).latent_dim == image.latent_dim + 4 + 2


def test_bad_bottleneck_is_refused():
    with pytest.raises(ConfigError, match="divide into"):
        MMCGANConfig.tiny(bottleneck_channels=(6,))
    with pytest.raises(ConfigError, match="row_noise is 17; expected 0..16"):
        MMCGANConfig.tiny(row_noise=17)


def test_rows_vary_with_the_noise_of_one_class(variables):
    """The tabular head gets z (row_noise): patients of one class whose hypercubes hardly differ
    still get different rows (issue 22: with the bottleneck alone, one class's rows were one
    row); with row_noise=0 the head sees only the bottleneck, as before."""
    p, stats = variables["params"], variables["batch_stats"]
    z = jax.random.normal(jax.random.key(3), (4, CONFIG.image.latent_dim))
    cond = jnp.tile(jax.nn.one_hot(jnp.array([3]), 4), (4, 1))
    h = jnp.broadcast_to(model.hypercube(p, jnp.concatenate([z[:1], cond[:1]], 1), CONFIG),
                         (4,) + (CONFIG.image.size // 4,) * 3 + (CONFIG.image.hypercube_channels,))  # fmt: skip
    logits = model.table_logits(p, h, z, jnp.zeros((4, 0)), cond, CONFIG, stats=stats)
    assert np.abs(np.asarray(logits[1:] - logits[:1])).max() > 1e-3  # one hypercube, 4 rows
    off = dataclasses.replace(CONFIG, row_noise=0)
    p0 = {**p, "tab_g": ctgan.init(jax.random.key(0), off.table)["g"]}
    same = model.table_logits(
        p0, h, z, jnp.zeros((4, 0)), cond, off, stats=ctgan.init_stats(off.table)
    )
    np.testing.assert_allclose(same[1:], np.broadcast_to(same[:1], same[1:].shape), atol=1e-6)


def test_row_classifier_learns_the_class_from_the_row_not_its_class_column():
    """The tabular discriminator's auxiliary classifier (issue 22, `lambda_row_class` > 0): it
    sits beside CTGAN's critic in tab_d (the critic's draws unchanged by it), the class column a
    condition names is hidden from it, and its loss's gradient reaches a row through the other
    columns, so a generator trained on it must make a class-k row look like class k beyond its
    class column."""
    on = MMCGANConfig.tiny(lambda_row_class=0.1).bind(LAYOUT)
    assert on.row_classifier
    shapes = jax.eval_shape(lambda k: model.init(k, on), jax.random.key(0))["params"]["tab_d"]
    critic = jax.eval_shape(lambda k: ctgan.init(k, on.table), jax.random.key(0))["d"]
    assert shapes.keys() == {*critic, model.ROW_CLASSIFIER}
    assert model.critic_params(shapes).keys() == critic.keys()
    rows = jax.random.uniform(jax.random.key(4), (3, LAYOUT.dim))
    tab_d = {model.ROW_CLASSIFIER: model.RowClassifier(on).init(jax.random.key(5), rows)["params"]}
    named = jnp.tile(jax.nn.one_hot(jnp.array([2]), 4), (3, 1))
    free = jnp.zeros((3, 4))
    np.testing.assert_array_equal(model.hide_named(rows, named, on.table)[:, 4:], 0.0)
    np.testing.assert_array_equal(model.hide_named(rows, named, on.table)[:, :4], rows[:, :4])
    np.testing.assert_array_equal(model.hide_named(rows, free, on.table), rows)

    def loss(r, cond):
        logits = model.row_class_logits(tab_d, r, cond, on)
        assert logits.shape == (3, on.image.num_classes)
        return -jnp.sum(jax.nn.log_softmax(logits)[:, 2])

    g = np.asarray(jax.grad(loss)(rows, named))
    np.testing.assert_array_equal(g[:, 4:], 0.0)  # the named class column tells it nothing
    assert np.all(np.abs(g[:, :4]).max(axis=1) > 1e-4)  # the rest of each row does
    assert np.abs(np.asarray(jax.grad(loss)(rows, free))[:, 4:]).max() > 1e-4
    # a small step against that gradient (along the unnamed columns alone) lowers the loss by
    # about the step times the gradient's norm, as a first-order change does
    norm = float(np.linalg.norm(g))
    drop = loss(rows, named) - loss(rows - 0.01 * g / norm, named)
    np.testing.assert_allclose(drop, 0.01 * norm, rtol=0.2)


def test_row_classifier_is_off_by_default_for_old_runs_and_without_classes():
    assert not MMCGANConfig.tiny().row_classifier  # the default, and runs from before the field
    assert not MMCGANConfig().row_classifier
    no_class = dataclasses.replace(CONFIG.image, num_classes=0)
    assert not MMCGANConfig.tiny(image=no_class, lambda_row_class=0.1).row_classifier
    with pytest.raises(ConfigError, match="lambda_row_class is -1"):
        MMCGANConfig.tiny(lambda_row_class=-1.0)
