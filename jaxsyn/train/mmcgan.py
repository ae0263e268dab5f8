"""Training MMCGAN: HA-GAN's image heads and CTGAN's tabular head on one shared generator.

    jaxsyn train mmcgan --data STORE|phantom:ct:N --out runs/mm --epochs 200 --condition-columns bmi_class

One step on a batch of patient records (a volume and its patient's clinical row):
  tabular D   WGAN-GP: D_tab(real row ⊕ c) vs D_tab(G_tab(B(G^A(z, c)), z) ⊕ c)   every step
              [D_tab + row_projection x <embed(y), phi(row)> everywhere, penalty included,
              `row_projection` > 0]
              [+ CE of the auxiliary row classifier on real rows, `lambda_row_class` > 0]
  image D     HA-GAN's D step on G^L/G^H of the same hypercubes           every `image_d_every`
  joint G     L_tab(G^A, B, G_tab) [+ L_img(G^A, G^L, G^H) when due]: one gradient for G^A, so
              (L_tab: critic + CTGAN's condition loss + lambda_row_class x the classifier's CE)
              every head's gradient reaches the shared generator (paper §2.1)
  E^H, E^G    HA-GAN's encoder steps; E^G also recovers the conditions   with the image heads
The image heads update every 5th step (paper §2.5, `image_every`). Whether their discriminator
follows the same schedule the paper does not say: `image_d_every` defaults to 5 as well, because
D^H/D^L only see fakes of the image heads, and training them four times for every head update
(at 4× G's learning rate, Table 1) would let them run far ahead of a generator that does not
move, while costing the 3D compute the schedule exists to save.
Optimisers are one Adam per component, at the paper's Table 1 rates except the tabular head's;
the encoders, absent from the table, take HA-GAN's (1e-4, betas (0, 0.999)). The tabular head's
rates are ours (issue 22): critic 2e-3, generator and bottleneck 1e-4, against Table 1's 2e-4
for all three. At Table 1's, rows centred by class, on the 48-phantom table (batch 8) the BMI
drifted over the run, every class together, by up to +-5 (class means at steps 400 / 800: 29.8 /
31.2 / 36.3 then 19.6 / 20.7 / 26.5; real 22.8 / 27.3 / 32.6); with a critic 20x as fast as the
generator (TTUR) the class means stay within 2 of the real ones (README "MMCGAN",
tests/train/test_mmcgan_rows.py).
The tabular discriminator's auxiliary row classifier, absent from the paper's table too, learns
at `lr_row_class` (2e-3): a supervised classifier of real rows, which at 2e-4 stayed near the
class prior for 400 steps (its CE 1.1-1.4) and at 2e-3 fits the 48 phantom rows by step 250.
The tabular critic and generator add CTGAN's coupled L2 decay (1e-6). Skipped components keep
their parameters and optimiser state bit for bit.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsyn.data.store import VolumeStore
from jaxsyn.errors import ConfigError
from jaxsyn.models import ctgan as tab_model
from jaxsyn.models import mmcgan as model
from jaxsyn.models.hagan import EncoderHigh, Generator, encode_high
from jaxsyn.models.mmcgan import MMCGANConfig
from jaxsyn.train import ctgan as tab_train
from jaxsyn.train import hagan as img_train
from jaxsyn.train import loop, parallel
from jaxsyn.train import state as state_lib
from jaxsyn.train.mmcgan_config import MMCGANTrainConfig  # noqa: F401 (re-exported)
from jaxsyn.train.mmcgan_data import (  # noqa: F401 (re-exported)
    TRANSFORMER_FILE,
    Records,
    dataset,
    fit_transformer,
    records,
)

COMPONENTS = ("shared", "image_g", "image_d", "eh", "eg", "bottleneck", "tab_g", "tab_d")


def optimizers(config: MMCGANTrainConfig) -> dict[str, optax.GradientTransformation]:
    """One Adam per component (Table 1's, the tabular head's ours); coupled L2 decay on the
    tabular G and D as CTGAN's."""

    def adam(lr, betas, decay=0.0):
        parts = [optax.add_decayed_weights(decay)] if decay else []
        return optax.chain(*parts, optax.scale_by_adam(*betas, eps=1e-8), optax.scale(-lr))

    c = config
    tab_d = adam(c.lr_tab_d, c.betas_tab_d, c.tab_decay)
    if c.model.row_classifier:  # the critic at lr_tab_d, its auxiliary classifier at its own
        row_class = adam(c.lr_row_class, c.betas_tab_d, c.tab_decay)
        labels = lambda p: {k: k == model.ROW_CLASSIFIER for k in p}  # noqa: E731
        tab_d = optax.multi_transform({False: tab_d, True: row_class}, labels)
    return {
        "shared": adam(c.lr_shared, c.betas_shared),
        "image_g": adam(c.lr_image_g, c.betas_image_g),
        "image_d": adam(c.lr_image_d, c.betas_image_d),
        "eh": adam(c.lr_encoders, c.betas_encoders),
        "eg": adam(c.lr_encoders, c.betas_encoders),
        "bottleneck": adam(c.lr_bottleneck, c.betas_bottleneck),
        "tab_g": adam(c.lr_tab_g, c.betas_tab_g, c.tab_decay),
        "tab_d": tab_d,
    }


# --- the step ------------------------------------------------------------------------------------


def _image_fakes(config: MMCGANConfig, g_params, h, slab_index):
    """(low, slab) of the image heads from hypercubes h, per-example slab positions."""
    g = Generator(config.image)
    depth = config.image.size // 32
    h_slab = jax.vmap(lambda hi, s: jax.lax.dynamic_slice_in_dim(hi, s // 4, depth, axis=0))(
        h, slab_index
    )
    low = g.apply({"params": g_params}, h, method=Generator.low_res)
    return low, g.apply({"params": g_params}, h_slab, method=Generator.high_res)


def _tab_fake(params, stats, h, z, continuous, tab_cond, keys, config: MMCGANConfig):
    logits, stats = model.table_logits(
        params, h, z, continuous, tab_cond, config, stats=stats, update=True,
        axis_name=parallel.DATA,
    )  # fmt: skip
    return logits, tab_model.activate(logits, tab_cond, keys, config.table), stats


def _extra_rows(batch: dict, key: jax.Array, img, m: MMCGANConfig) -> dict:
    """The extra rows' arrays and their own noise, Gumbel and pac-group keys."""
    e = batch["extra_row"].shape[0]
    ex = parallel.example_keys(jax.random.fold_in(key, 1 << 21), e)

    def draw(i, shape_fn):
        return jax.vmap(lambda k: shape_fn(jax.random.fold_in(k, i)))(ex)

    labels, continuous = img_train.split_conditions(img, batch["extra_conditions"])
    group_keys = parallel.example_keys(jax.random.fold_in(key, 3 << 20), e // m.table.pac)
    d_groups, g_groups = tab_train.split_each(group_keys, 2)
    return {
        "row": batch["extra_row"],
        "tab_cond": batch["extra_tab_cond"],
        "labels": labels,
        "continuous": continuous,
        "cond": img_train.condition_vector(img, labels, continuous),
        "z_d": draw(0, lambda k: jax.random.normal(k, (img.latent_dim,))),
        "z_g": draw(1, lambda k: jax.random.normal(k, (img.latent_dim,))),
        "gumbel_d": draw(2, lambda k: k),
        "gumbel_g": draw(3, lambda k: k),
        "d_groups": d_groups,
        "g_groups": g_groups,
    }


def _by_groups(batch_part, extra_part, b: int, e: int):
    """(loss, aux) of the batch's rows and of the extra rows -> their mean over all pac groups
    (each part is a mean over its own groups; a group holds `pac` rows of one part)."""
    w = b / (b + e)
    mix = lambda u, v: w * u + (1 - w) * v  # noqa: E731
    return mix(batch_part[0], extra_part[0]), jax.tree.map(mix, batch_part[1], extra_part[1])


def train_step(state: state_lib.TrainState, batch: dict, key: jax.Array, *, config):
    """One MMCGAN iteration on this device's share of the batch (inside `data_parallel`)."""
    m, img = config.model, config.model.image
    opts = optimizers(config)
    key = jax.random.fold_in(key, state.step)
    b = batch["slab"].shape[0]
    ex = parallel.example_keys(key, b)

    def draw(i, shape_fn):
        return jax.vmap(lambda k: shape_fn(jax.random.fold_in(k, i)))(ex)

    z_d = draw(0, lambda k: jax.random.normal(k, (img.latent_dim,)))
    z_g = draw(1, lambda k: jax.random.normal(k, (img.latent_dim,)))
    gumbel_d, gumbel_g = draw(2, lambda k: k), draw(3, lambda k: k)
    groups = b // m.table.pac
    group_keys = parallel.example_keys(jax.random.fold_in(key, 1 << 20), groups)
    k_dgroups, k_ggroups = tab_train.split_each(group_keys, 2)

    labels, continuous = img_train.split_conditions(img, batch["conditions"])
    cond = img_train.condition_vector(img, labels, continuous)
    slab, low, idx = batch["slab"], batch["low"], batch["slab_index"]
    real_row, tab_cond = batch["row"], batch["tab_cond"]
    params, opt_state = dict(state.params), dict(state.opt_state)
    spectral, bstats = state.stats["spectral"], state.stats["batch_stats"]
    due_img = state_lib.is_due(state.step, config.image_every)
    due_d = state_lib.is_due(state.step, config.image_d_every)

    def update(name, grads, p=None, o=None):
        p, o = (params, opt_state) if p is None else (p, o)
        return state_lib.apply_gradients(p[name], o[name], grads, opts[name])

    # Extra rows (config.extra_rows): more patients for the tabular head alone, appended after
    # the batch's own; their noise and group keys come from their own index, so the split over
    # devices changes nothing.
    x = _extra_rows(batch, key, img, m) if "extra_row" in batch else None
    zc_d = jnp.concatenate([z_d, cond], 1)
    if x is not None:
        zc_d = jnp.concatenate([zc_d, jnp.concatenate([x["z_d"], x["cond"]], 1)], 0)
        continuous_all = jnp.concatenate([continuous, x["continuous"]], 0)
        tab_cond_all = jnp.concatenate([tab_cond, x["tab_cond"]], 0)
        real_all = jnp.concatenate([real_row, x["row"]], 0)
        labels_all = None if labels is None else jnp.concatenate([labels, x["labels"]], 0)
        gumbel_d = jnp.concatenate([gumbel_d, x["gumbel_d"]], 0)
        gumbel_g = jnp.concatenate([gumbel_g, x["gumbel_g"]], 0)
    else:
        continuous_all, tab_cond_all = continuous, tab_cond
        real_all, labels_all = real_row, labels

    def row_class_loss(tab_d, rows):
        """The auxiliary row classifier's mean CE on rows (the batch's, then the extra ones)."""
        logits = model.row_class_logits(tab_d, rows, tab_cond_all, m)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels_all).mean()

    # 1. Critics, on fakes of one G^A forward (a constant for them).
    h_all = jax.lax.stop_gradient(model.hypercube(params, zc_d, m))
    h_d = h_all[:b]
    _, fake_row, bstats = _tab_fake(
        params, bstats, h_all, zc_d[:, : img.latent_dim], continuous_all, tab_cond_all, gumbel_d, m
    )
    fake_row = jax.lax.stop_gradient(fake_row)

    def scorer(lab):
        """`tab_train.d_loss`'s critic for rows of class labels `lab`: with the projection term,
        MMCGAN's full critic on the whole tabular discriminator (real, fake and the penalty's
        interpolates); without, None (CTGAN's, on `critic_params`)."""
        if not m.projection:
            return None
        return lambda dp, x_in, keys: model.critic_score(dp, x_in, lab, keys, m)

    def tab_d_loss(dp):
        critic = dp if m.projection else model.critic_params(dp)
        loss, aux = tab_train.d_loss(
            critic, real_row, tab_cond, fake_row[:b], tab_cond, k_dgroups, config.tabular,
            scorer(labels),
        )  # fmt: skip
        if x is not None:
            loss_x, aux_x = tab_train.d_loss(
                critic, x["row"], x["tab_cond"], fake_row[b:], x["tab_cond"], x["d_groups"],
                config.tabular, scorer(x["labels"]),
            )  # fmt: skip
            loss, aux = _by_groups((loss, aux), (loss_x, aux_x), b, x["row"].shape[0])
        if m.row_classifier:  # AC-GAN: the classifier learns on real rows only, as HA-GAN's D
            aux = {**aux, "row_class_real": row_class_loss(dp, real_all)}
            loss = loss + aux["row_class_real"]
        return loss, aux

    (tab_dl, tab_d_aux), grads = parallel.mean_value_and_grad(tab_d_loss, has_aux=True)(
        params["tab_d"]
    )
    params["tab_d"], opt_state["tab_d"] = update("tab_d", grads)

    def image_d_update(d_params, d_opt, spectral):
        f_low, f_slab = jax.lax.stop_gradient(
            _image_fakes(m, model.generator_params(params), h_d, idx)
        )

        def loss(dp):
            (lr, cr, rr), sp = img_train._discriminate(img, dp, spectral, slab, low, idx)
            (lf, _, _), sp = img_train._discriminate(img, dp, sp, f_slab, f_low, idx)
            adv = img_train._bce(lr, 1.0) + img_train._bce(lf, 0.0)
            return adv + img_train._aux_loss(img, cr, rr, labels, continuous), sp

        (dl, sp), grads = parallel.mean_value_and_grad(loss, has_aux=True)(d_params)
        d_params, d_opt = state_lib.apply_gradients(d_params, d_opt, grads, opts["image_d"])
        return (d_params, d_opt, sp), {"image_d_loss": dl}

    (params["image_d"], opt_state["image_d"], spectral), d_metrics = state_lib.scheduled(
        due_d, image_d_update, params["image_d"], opt_state["image_d"], spectral
    )

    # 2. The joint generator step: the tabular loss always, the image loss when due, through
    # one hypercube, so G^A's gradient is the sum of both heads'.
    zc_g = jnp.concatenate([z_g, cond], 1)
    if x is not None:
        zc_g = jnp.concatenate([zc_g, jnp.concatenate([x["z_g"], x["cond"]], 1)], 0)

    def g_loss(g, stats, spectral):
        p = {**params, **g}
        h_all = model.hypercube(p, zc_g, m)
        h = h_all[:b]
        logits, fake, stats = _tab_fake(
            p, stats, h_all, zc_g[:, : img.latent_dim], continuous_all, tab_cond_all, gumbel_g, m
        )

        def d_tab(rows, cond, lab, keys):  # the critic of tab_d_loss (projection included)
            if m.projection:
                x_in = jnp.concatenate([rows, cond], -1)
                return model.critic_score(params["tab_d"], x_in, lab, keys, m)
            critic = model.critic_params(params["tab_d"])
            return tab_model.apply_discriminator(critic, rows, cond, m.table, keys)

        adversarial = -jnp.mean(d_tab(fake[:b], tab_cond, labels, k_ggroups))
        if x is not None:
            adv_x = -jnp.mean(d_tab(fake[b:], x["tab_cond"], x["labels"], x["g_groups"]))
            adversarial, _ = _by_groups((adversarial, {}), (adv_x, {}), b, x["row"].shape[0])
        ce = jnp.mean(tab_model.cond_loss(logits, tab_cond_all, m.table))
        tab = adversarial + ce
        extra = {}
        if m.row_classifier:  # fake rows must look like their class beyond the class column
            extra["row_class_fake"] = row_class_loss(params["tab_d"], fake)
            tab = tab + m.lambda_row_class * extra["row_class_fake"]

        def image_loss(h, spectral):
            f_low, f_slab = _image_fakes(m, model.generator_params(p), h, idx)
            (lf, cf, rf), sp = img_train._discriminate(
                img, params["image_d"], spectral, f_slab, f_low, idx
            )
            aux = img_train._aux_loss(img, cf, rf, labels, continuous)
            return img_train._bce(lf, 1.0) + img.lambda_class * aux, sp

        def no_image(h, spectral):  # a per-device loss like image_loss's, of 0
            return jax.lax.pcast(jnp.zeros((), jnp.float32), parallel.DATA, to="varying"), spectral

        image, spectral = jax.lax.cond(due_img, image_loss, no_image, h, spectral)
        return tab + image, (stats, spectral, tab, ce, extra, image)

    trained = ("shared", "image_g", "bottleneck", "tab_g")
    (g_total, (bstats, spectral, tab_gl, ce, g_extra, img_gl)), grads = (
        parallel.mean_value_and_grad(g_loss, has_aux=True)(
            {k: params[k] for k in trained}, bstats, spectral
        )
    )
    for name in ("shared", "bottleneck", "tab_g"):
        params[name], opt_state[name] = update(name, grads[name])

    def image_g_update(p, o):
        p, o = state_lib.apply_gradients(p, o, grads["image_g"], opts["image_g"])
        return (p, o), {}

    (params["image_g"], opt_state["image_g"]), _ = state_lib.scheduled(
        due_img, image_g_update, params["image_g"], opt_state["image_g"]
    )

    # 3. Encoders, with the image heads: E^H inverts G^H on real slabs; E^G recovers [z; c].
    def encoder_update(eh, eh_opt, eg, eg_opt):
        g_params = model.generator_params(params)
        gen = Generator(img)

        def eh_loss(ehp):
            h = EncoderHigh(img).apply({"params": ehp}, slab)
            rec = gen.apply({"params": g_params}, h, method=Generator.high_res)
            return jnp.abs(rec - slab).mean()

        eh_l1, g_eh = parallel.mean_value_and_grad(eh_loss)(eh)
        eh, eh_opt = state_lib.apply_gradients(eh, eh_opt, g_eh, opts["eh"])
        h_real = jax.lax.stop_gradient(encode_high({"params": eh}, batch["volume"], img))

        def eg_loss(egp):
            out = model.encode_hypercube({"eg": egp}, h_real, m)
            h = model.hypercube(params, model.encoded_zc(out, m), m)
            r_low, r_slab = _image_fakes(m, g_params, h, idx)
            l1 = (jnp.abs(r_slab - slab).mean() + jnp.abs(r_low - low).mean()) / 2
            _, logits, cont = model.split_encoding(out, m)
            return l1 + img_train._aux_loss(img, logits, cont, labels, continuous), l1

        (eg_total, eg_l1), g_eg = parallel.mean_value_and_grad(eg_loss, has_aux=True)(eg)
        eg, eg_opt = state_lib.apply_gradients(eg, eg_opt, g_eg, opts["eg"])
        metrics = {
            "eh_l1": eh_l1,
            "eg_loss": eg_total,
            "eg_l1": jax.lax.pmean(eg_l1, parallel.DATA),
        }
        return (eh, eh_opt, eg, eg_opt), metrics

    (params["eh"], opt_state["eh"], params["eg"], opt_state["eg"]), e_metrics = state_lib.scheduled(
        due_img, encoder_update, params["eh"], opt_state["eh"], params["eg"], opt_state["eg"]
    )

    nan = jnp.float32(jnp.nan)
    metrics = {
        "tab_d_loss": tab_dl,
        "g_loss": g_total,
        **d_metrics,
        **e_metrics,
        **jax.lax.pmean(
            {**tab_d_aux, **g_extra, "tab_g_loss": tab_gl, "cond_loss": ce}, parallel.DATA
        ),
        "image_g_loss": jnp.where(due_img, jax.lax.pmean(img_gl, parallel.DATA), nan),
    }
    new = state.replace(
        params=params,
        opt_state=opt_state,
        stats={"spectral": spectral, "batch_stats": bstats},
        step=state.step + 1,
    )
    return new, metrics


# --- building blocks of a run --------------------------------------------------------------------


def init_state(config: MMCGANTrainConfig) -> state_lib.TrainState:
    init_key, run_key = jax.random.split(jax.random.key(config.seed))
    v = model.init(init_key, config.model)
    stats = {"spectral": v["spectral"], "batch_stats": v["batch_stats"]}
    return state_lib.create(v["params"], optimizers(config), run_key, stats=stats)


def make_step(config: MMCGANTrainConfig, mesh):
    per_device = config.batch_size // mesh.size if config.batch_size % mesh.size == 0 else 0
    if not per_device or per_device % config.model.table.pac:
        raise ConfigError(
            f"MMCGANTrainConfig.batch_size is {config.batch_size}; expected a multiple of "
            f"{mesh.size} devices x pac {config.model.table.pac}"
        )
    if config.extra_rows % (mesh.size * config.model.table.pac):
        raise ConfigError(
            f"MMCGANTrainConfig.extra_rows is {config.extra_rows}; expected a multiple of "
            f"{mesh.size} devices x pac {config.model.table.pac}"
        )
    return parallel.cached_step(train_step, config, mesh)


def run_info(config: MMCGANTrainConfig, store: VolumeStore, per_epoch: int) -> dict:
    """config.json: the config, what writing HU volumes needs, and the real cohort's condition
    distribution in aggregate (class counts; continuous means and deviations), from which
    generation draws the conditions it is not given."""
    values = store.conditions(config.condition_columns)
    counts = []
    if config.class_column:
        labels = values[:, 0].astype(int)
        counts = np.bincount(labels, minlength=config.model.image.num_classes).tolist()
    cont = values[:, 1:] if config.class_column else values
    return {
        **img_train.run_info(config, store),
        "family": "mmcgan",
        "steps_per_epoch": per_epoch,
        "class_counts": counts,
        "continuous_mean": cont.mean(0).tolist() if len(cont) else [],
        "continuous_std": cont.std(0).tolist() if len(cont) else [],
    }


def steps_for(epochs: int, n_records: int, batch_size: int) -> tuple[int, int]:
    """(total steps, steps per epoch): an epoch is one pass over the volume records."""
    per_epoch = max(n_records // batch_size, 1)
    return epochs * per_epoch, per_epoch


def run(
    out_dir: str | os.PathLike,
    store: str | os.PathLike | VolumeStore,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    config: MMCGANTrainConfig | None = None,
    resume: bool = False,
    checkpoint_every: int = 500,
    keep: int = 3,
    log_every: int = 1,
    progress: bool = True,
    devices: Sequence[jax.Device] | None = None,
    hooks: Sequence[loop.Hook] = (),
) -> state_lib.TrainState:
    """Train MMCGAN on a volume store with a clinical table into `out_dir`: transformer.json,
    config.json, metrics.jsonl and checkpoints/. Give `epochs` (default 200, the paper's) or
    `steps`."""
    if epochs is not None and steps is not None:
        raise ConfigError("give epochs or steps, not both")
    parallel.initialize_distributed()
    config = config or MMCGANTrainConfig()
    out_dir = Path(out_dir)
    store = store if isinstance(store, VolumeStore) else VolumeStore(store)
    if not resume and (out_dir / TRANSFORMER_FILE).exists():
        raise ConfigError(
            f"{out_dir} already holds a run; expected a new folder (or --resume to continue it)"
        )
    mesh = parallel.make_mesh(devices)
    config = dataclasses.replace(
        config, batch_size=img_train.fitted_batch(config.batch_size, len(store), mesh.size)
    )
    transformer = fit_transformer(store, config, out_dir, progress)
    config = dataclasses.replace(config, model=config.model.bind(transformer.layout))
    recs = records(store, transformer, config, progress)
    total, per_epoch = steps_for(200 if epochs is None else epochs, len(store), config.batch_size)
    total = steps if steps is not None else total
    if jax.process_index() == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        transformer.save(out_dir / TRANSFORMER_FILE)
    return loop.run(
        out_dir,
        config=config,
        info=run_info(config, store, per_epoch),
        mesh=mesh,
        init=functools.partial(init_state, config),
        step_fn=make_step(config, mesh),
        data_iter=iter(dataset(store, config, recs)),
        settings=loop.LoopConfig(
            steps=total,
            checkpoint_every=checkpoint_every,
            keep=keep,
            log_every=log_every,
            progress=progress,
        ),
        resume=resume,
        hooks=hooks,
    )


__all__: Sequence[str] = (
    "COMPONENTS",
    "MMCGANTrainConfig",
    "Records",
    "init_state",
    "make_step",
    "optimizers",
    "records",
    "run",
    "train_step",
)
