"""MMCGAN's projection critic (issue 22 item 1; `MMCGANConfig.row_projection` > 0): the tabular
critic's score of a row x under class y is CTGAN's plus row_projection x <embed(y), phi(x)>
(Miyato & Koyama 2018), phi an MLP on the row with its named condition columns hidden."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsyn.checkpoint import added_fields, as_json, config_diff
from jaxsyn.data.tabular.transformer import Layout, Span
from jaxsyn.errors import ConfigError
from jaxsyn.models import ctgan
from jaxsyn.models import mmcgan as model
from jaxsyn.models.mmcgan import MMCGANConfig
from jaxsyn.train import ctgan as tab_train
from jaxsyn.train import mmcgan as mm_train

# an encoded row: a scalar, a 3-mode span, and a 4-category discrete column (the class)
LAYOUT = Layout(spans=(Span(0, 1, "scalar"), Span(1, 3, "onehot"), Span(4, 4, "onehot")),
                discrete=(2,))  # fmt: skip
OFF = MMCGANConfig.tiny().bind(LAYOUT)
ON = MMCGANConfig.tiny(row_projection=1.0).bind(LAYOUT)
B = 6  # rows; pac 1


def tab_d(config: MMCGANConfig) -> dict:
    """The shapes of the tabular discriminator's parameters (as `model.init` makes them)."""
    return jax.eval_shape(lambda k: model.init(k, config), jax.random.key(0))["params"]["tab_d"]


@pytest.fixture(scope="module")
def params():
    """(CTGAN's critic, the projection term's params, rows, conditions, labels)."""
    critic = ctgan.init(jax.random.key(0), ON.table)["d"]
    rows = jax.random.uniform(jax.random.key(1), (B, LAYOUT.dim))
    labels = jnp.array([0, 1, 2, 3, 1, 2], jnp.int32)
    cond = jax.nn.one_hot(labels, 4)
    rows = rows.at[:, 4:].set(cond)  # hard conditions: the class column is the condition
    proj = model.RowProjection(ON).init(jax.random.key(2), rows, labels)["params"]
    return critic, proj, rows, cond, labels


def test_off_by_default_and_the_tree_has_no_projection_key():
    assert not OFF.projection and not MMCGANConfig().projection  # default and old runs
    assert OFF.row_projection == 0.0 and MMCGANConfig.ADDED_FIELDS["row_projection"] == 0.0
    critic = jax.eval_shape(lambda k: ctgan.init(k, OFF.table), jax.random.key(0))["d"]
    assert tab_d(OFF).keys() == critic.keys()  # CTGAN's critic alone, as before the field
    both = dataclasses.replace(ON, lambda_row_class=0.1)
    assert tab_d(both).keys() == {*critic, model.ROW_PROJECTION, model.ROW_CLASSIFIER}
    assert model.critic_params(tab_d(both)).keys() == critic.keys()
    embed = tab_d(both)[model.ROW_PROJECTION]["embed"]
    assert embed.shape == (4, OFF.table.discriminator_dim[-1])  # [classes, phi's features]
    no_class = dataclasses.replace(OFF.image, num_classes=0)
    assert not MMCGANConfig.tiny(image=no_class, row_projection=1.0).projection


def test_without_the_projection_the_critic_is_ctgans(params):
    """Off, `critic_score` is CTGAN's discriminator; on with a zero embedding, `d_loss` through
    it gives CTGAN's loss, penalty and critic gradient bit for bit (the hook adds exactly 0)."""
    critic, proj, rows, cond, labels = params
    x = jnp.concatenate([rows, cond], -1)
    keys = jax.random.split(jax.random.key(4), B)
    plain = ctgan.apply_discriminator(critic, rows, cond, OFF.table, keys)
    np.testing.assert_array_equal(model.critic_score(critic, x, labels, keys, OFF), plain)
    zero = {**critic, model.ROW_PROJECTION: {**proj, "embed": jnp.zeros_like(proj["embed"])}}
    fake = jax.random.uniform(jax.random.key(5), rows.shape).at[:, 4:].set(cond)
    group_keys = jax.random.split(jax.random.key(6), B)
    tab = mm_train.MMCGANTrainConfig.tiny(model=ON).tabular

    def ctgan_loss(c):
        return tab_train.d_loss(c, rows, cond, fake, cond, group_keys, tab)

    def projected_loss(dp):
        score = lambda p, xi, k: model.critic_score(p, xi, labels, k, ON)  # noqa: E731
        return tab_train.d_loss(dp, rows, cond, fake, cond, group_keys, tab, score)

    (l0, aux0), g0 = jax.value_and_grad(ctgan_loss, has_aux=True)(critic)
    (l1, aux1), g1 = jax.value_and_grad(projected_loss, has_aux=True)(zero)
    np.testing.assert_array_equal(l0, l1)
    jax.tree.map(np.testing.assert_array_equal, aux0, aux1)
    jax.tree.map(np.testing.assert_array_equal, g0, model.critic_params(g1))


def test_the_score_follows_the_class(params):
    """On, the same row scores differently under each class label (CTGAN's part is the same,
    the class column and condition held fixed): by row_projection x the term."""
    critic, proj, rows, cond, labels = params
    dp = {**critic, model.ROW_PROJECTION: proj}
    x = jnp.concatenate([rows, cond], -1)
    by_label = np.stack([
        np.asarray(model.critic_score(dp, x, jnp.full((B,), k, jnp.int32), None, ON))
        for k in range(4)
    ])  # fmt: skip
    assert np.all(np.ptp(by_label, axis=0) > 1e-3)  # every row's score moves with its label
    np.testing.assert_allclose(  # exactly row_projection x the term, beside CTGAN's score
        by_label - np.asarray(ctgan.apply_discriminator(critic, rows, cond, ON.table, None)),
        np.stack([np.asarray(model.RowProjection(ON).apply(
            {"params": proj}, model.hide_named(rows, cond, ON.table), jnp.full((B,), k))) for k in range(4)]),
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip


def test_the_penalty_sees_it_and_its_gradient_reaches_the_embedding(params):
    """The projection reaches the penalty's interpolates, and the critic loss's gradient
    reaches the embedding rows of the classes in the batch, and only those."""
    critic, proj, rows, cond, labels = params
    dp = {**critic, model.ROW_PROJECTION: proj}
    fake = jax.random.uniform(jax.random.key(5), rows.shape).at[:, 4:].set(cond)
    group_keys = jax.random.split(jax.random.key(6), B)
    tab = mm_train.MMCGANTrainConfig.tiny(model=ON).tabular
    score = lambda p, xi, k: model.critic_score(p, xi, labels, k, ON)  # noqa: E731

    def loss(dp):
        return tab_train.d_loss(dp, rows, cond, fake, cond, group_keys, tab, score)

    (_, aux), grads = jax.value_and_grad(loss, has_aux=True)(dp)
    _, aux_plain = tab_train.d_loss(critic, rows, cond, fake, cond, group_keys, tab)
    assert abs(float(aux["gp"] - aux_plain["gp"])) > 1e-6  # interpolates scored with it
    g_embed = np.asarray(grads[model.ROW_PROJECTION]["embed"])
    assert np.all(np.abs(g_embed).max(axis=1) > 1e-6)  # labels 0-3 all present: every class
    one = lambda dp: tab_train.d_loss(dp, rows[:2], cond[:2], fake[:2], cond[:2],  # noqa: E731
        group_keys[:2], tab, lambda p, xi, k: model.critic_score(p, xi, labels[:2], k, ON))[0]  # fmt: skip
    g_two = np.asarray(jax.grad(one)(dp)[model.ROW_PROJECTION]["embed"])
    assert np.abs(g_two[:2]).max() > 1e-6 and np.all(g_two[2:] == 0)  # classes 0, 1 only


def test_the_class_column_is_hidden_from_phi(params):
    critic, proj, rows, cond, labels = params
    dp = {**critic, model.ROW_PROJECTION: proj}

    def term(r):
        return jnp.sum(model.critic_score(dp, jnp.concatenate([r, cond], -1), labels, None, ON))

    def ctgan_part(r):
        return jnp.sum(ctgan.apply_discriminator(critic, r, cond, ON.table, None))

    g_class = np.asarray(jax.grad(term)(rows) - jax.grad(ctgan_part)(rows))
    np.testing.assert_array_equal(g_class[:, 4:], 0.0)  # the class column tells phi nothing
    assert np.all(np.abs(g_class[:, :4]).max(axis=1) > 1e-6)  # the rest of the row does


def test_projection_params_learn_with_the_critic(params):
    critic, proj, rows, _, _ = params
    for config in (ON, dataclasses.replace(ON, lambda_row_class=0.1)):
        # a critic rate unlike the row classifier's (2e-3), so the test tells them apart
        opts = mm_train.optimizers(mm_train.MMCGANTrainConfig.tiny(model=config, lr_tab_d=3e-4))
        dp = {**critic, model.ROW_PROJECTION: proj}
        if config.row_classifier:
            clf = model.RowClassifier(config).init(jax.random.key(7), rows)["params"]
            dp = {**dp, model.ROW_CLASSIFIER: clf}
        state = opts["tab_d"].init(dp)
        grads = jax.tree.map(jnp.ones_like, dp)
        updates, _ = opts["tab_d"].update(grads, state, dp)
        # Adam's first step is -lr x sign(grad) (+ the tiny coupled decay): the critic's rate
        step = np.asarray(updates[model.ROW_PROJECTION]["embed"])
        np.testing.assert_allclose(step, -3e-4, rtol=1e-3)


def test_negative_weight_is_refused():
    with pytest.raises(ConfigError, match=r"row_projection is -0.5; expected >= 0"):
        MMCGANConfig.tiny(row_projection=-0.5)


def test_a_run_saved_before_the_field_resumes():
    """A config saved without `row_projection` trains as 0 (ADDED_FIELDS): it resumes under the
    default, and is refused, saying how it trained, under a positive weight."""
    config = mm_train.MMCGANTrainConfig.tiny()
    absent = added_fields(config)
    assert absent["model.row_projection"] == 0.0
    now = as_json(config)
    old = json.loads(json.dumps(now))
    del old["model"]["row_projection"]
    assert config_diff(old, now, absent_means=absent) == []
    on = as_json(dataclasses.replace(config, model=dataclasses.replace(config.model, row_projection=1.0)))  # fmt: skip
    assert config_diff(old, on, absent_means=absent) == [
        ("model.row_projection", "<absent: trained as 0.0>", 1.0)
    ]
