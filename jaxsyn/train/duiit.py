"""Training DUIIT and its baselines: losses, the history pool, the steps, and `run`. The config
and each setting's defaults are in `jaxsyn.train.duiit_config` (re-exported here).

`jaxsyn train duiit --target phantom:head-ct:64 --source phantom:head-mri:256 --label age
--out runs/duiit --steps 2000 [--setting joint|pure|cyclegan|tl|mtl|dann|augment|autoaugment|erasing]`

Notation: A is a source modality (one translator per source k), B the target. For source k,
G_k: A -> B, F_k: B -> A, D_B^k judges G_k's outputs, D_A^k F_k's. Losses (CycleGAN, section 3
and 4.2 of DUIIT), x a target batch, y a source batch:
  L_trans = LSGAN(D_B(G(y)), 1) + LSGAN(D_A(F(x)), 1) + lam_cyc (|F(G(y)) - y| + |G(F(x)) - x|)
            [+ lam_cyc lam_idt (|G(x) - x| + |F(y) - y|)]
  D: 0.5 (LSGAN(D(real), 1) + LSGAN(D(pool(fake)), 0)), pool = the history of 50 fakes
  L_pred = MSE of the predictor on [x; G_1(y_1); ...; G_K(y_K)] with their labels (eq. 2)
joint: translators and predictor minimise L_trans + lam L_pred together (eq. 3): the predictor
sees the translated images through `scale_gradient(., lam)`, so the predictor's own update follows
L_pred and each G_k's follows L_trans + lam L_pred. D updates after G, on the fakes made before
G's update (CycleGAN's optimize_parameters). Baselines (the paper's section 4.3):
  pure         the predictor on target images only
  cyclegan     the translators alone for `first_phase` of the steps (the predictor stands still),
               then the predictor on real + translated images, translators frozen (all steps
               translator-only when trained without labels)
  tl           the predictor on the sources' images for `first_phase`, then fine-tuned on the
               target's (a new Adam state)
  mtl          one trunk, head 0 on the target weighted mtl_target_weight, head k on source k
               weighted mtl_source_weight; head 0 is the model
  dann         the predictor on target and source labels plus a domain classifier through
               gradient reversal, its factor ramped as DANN's 2 / (1 + exp(-10 p)) - 1
  augment, autoaugment, erasing   the predictor on target images and one augmented copy of each
               (`jaxsyn.train.augment`)
Labels are standardised with the target's mean and sd (`label_mean`, `label_scale`, saved).
Learning rates: constant, then linear decay to 0 over the second half of each phase.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

from jaxsyn.checkpoint import as_json
from jaxsyn.errors import ConfigError
from jaxsyn.models import cyclegan
from jaxsyn.models import duiit as model
from jaxsyn.train import augment, duiit_data, loop, parallel
from jaxsyn.train import state as state_lib
from jaxsyn.train.duiit_config import (  # noqa: F401 (re-exported)
    NEEDS_SOURCES,
    TWO_PHASES,
    DUIITTrainConfig,
    setting_defaults,
)

FAMILY = "duiit"
METRICS = ("g_ab", "g_ba", "d_a", "d_b", "cyc", "idt", "pred", "dom")


# --- schedules and optimisers ------------------------------------------------------------------


def linear_decay(base: float, total: int) -> optax.Schedule:
    """CycleGAN's policy: `base` for the first half of `total` updates, then linearly to 0 (the
    last update's lr is base / (total - half))."""
    half = total // 2
    span = max(total - half, 1)

    def schedule(count):
        return base * jnp.clip(1.0 - jnp.maximum(count - half, 0) / span, 0.0, 1.0)

    return schedule


def optimizers(config: DUIITTrainConfig) -> dict[str, optax.GradientTransformation]:
    """Adam per component: "gen" (every G and F), "disc" (every D), "p" (predictor), "pre" (tl's
    pretraining). Each decays over the updates of its phase."""
    m, steps = config.model, config.planned
    first = config.phase_steps if config.two_phases else steps
    second = steps - first if config.two_phases else steps
    opts = {}
    if m.has_translator:
        t = first if m.setting == "cyclegan" else steps
        opts["gen"] = optax.adam(linear_decay(config.g_lr, t), b1=config.b1)
        opts["disc"] = optax.adam(linear_decay(config.d_lr, t), b1=config.b1)
    if m.predict:
        decay = optax.add_decayed_weights(config.weight_decay)
        opts["p"] = optax.chain(decay, optax.adam(linear_decay(config.p_lr, second)))
        if m.setting == "tl":
            opts["pre"] = optax.chain(decay, optax.adam(linear_decay(config.p_lr, first)))
    return opts


# --- the history pool ---------------------------------------------------------------------------


def empty_pool(size: int, image_shape: Sequence[int]) -> dict:
    return {
        "images": jnp.zeros((size, *image_shape), jnp.float32),
        "count": jnp.zeros((), jnp.int32),
    }


def pool_query(pool: dict, images: jax.Array, key: jax.Array) -> tuple[dict, jax.Array]:
    """CycleGAN's ImagePool.query, functional: (new pool, images for D). Image by image, in order:
    while the pool is not full, store it and return it; then with probability 0.5 return a
    random stored image and store this one in its place, else return this one."""
    size = pool["images"].shape[0]
    if size == 0:
        return pool, images

    def one(carry, inputs):
        stored, count = carry
        image, k = inputs
        k_coin, k_index = jax.random.split(k)
        full = count >= size
        swap = full & (jax.random.uniform(k_coin) > 0.5)
        index = jnp.where(full, jax.random.randint(k_index, (), 0, size), count)
        old = stored[index]
        stored = stored.at[index].set(jnp.where(full & ~swap, old, image))
        return (stored, jnp.minimum(count + 1, size)), jnp.where(swap, old, image)

    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(images.shape[0]))
    (stored, count), out = jax.lax.scan(one, (pool["images"], pool["count"]), (images, keys))
    return {"images": stored, "count": count}, out


def _global_pool_query(pool, local, key):
    """The pool over the global batch (gathered, the same on every device), this device's rows."""
    n, devices = local.shape[0], jax.lax.psum(1, parallel.DATA)
    start = jax.lax.axis_index(parallel.DATA) * n
    # a psum of zeros with this device's rows in place: exact, and replicated by type (an
    # all_gather's result is typed as varying over the devices)
    placed = jnp.zeros((n * devices, *local.shape[1:]), local.dtype)
    whole = jax.lax.psum(
        jax.lax.dynamic_update_slice_in_dim(placed, local, start, 0), parallel.DATA
    )
    pool, out = pool_query(pool, whole, key)
    return pool, jax.lax.dynamic_slice_in_dim(out, start, n)


# --- losses -------------------------------------------------------------------------------------


def lsgan(scores: jax.Array, target: float) -> jax.Array:
    return jnp.mean((scores.astype(jnp.float32) - target) ** 2)


def l1(a, b) -> jax.Array:
    return jnp.mean(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32)))


def mse(pred, label) -> jax.Array:
    return jnp.mean((pred - label) ** 2)


def standardise(labels, config: DUIITTrainConfig):
    return (labels - config.model.label_mean) / config.model.label_scale


def sources(config: DUIITTrainConfig) -> list[str]:
    return [f"s{k}" for k in range(config.model.sources)]


def translator_loss(gen, disc, p, batch, config: DUIITTrainConfig, joint: bool):
    """(L_trans [+ L_pred], (metrics, fakes)) on this device's share. `fakes`: {"b"|"a": {k:
    images}} made before this update, for the discriminators' pools."""
    m = config.model
    tc, x = m.translator, batch["target"]["image"]
    g = lambda k, img: cyclegan.translate(gen["g"][k], img, tc)  # noqa: E731
    f = lambda k, img: cyclegan.translate(gen["f"][k], img, tc)  # noqa: E731
    parts = {name: 0.0 for name in ("g_ab", "g_ba", "cyc", "idt")}
    fakes, translated = {"b": {}, "a": {}}, []
    for k in sources(config):
        y = batch[k]["image"]
        fake_b, fake_a = g(k, y), f(k, x)
        parts["g_ab"] += lsgan(cyclegan.discriminate(disc["b"][k], fake_b, tc), 1.0)
        parts["g_ba"] += lsgan(cyclegan.discriminate(disc["a"][k], fake_a, tc), 1.0)
        parts["cyc"] += l1(f(k, fake_b), y) + l1(g(k, fake_a), x)
        if m.lam_idt > 0:
            parts["idt"] += l1(g(k, x), x) + l1(f(k, y), y)
        fakes["b"][k], fakes["a"][k] = fake_b, fake_a
        translated.append((model.scale_gradient(fake_b, m.lam), batch[k]["label"]))
    loss = parts["g_ab"] + parts["g_ba"] + m.lam_cyc * (parts["cyc"] + m.lam_idt * parts["idt"])
    metrics = {**parts, "pred": jnp.nan}
    if joint:
        images = jnp.concatenate([x] + [t for t, _ in translated])
        labels = jnp.concatenate([batch["target"]["label"]] + [y for _, y in translated])
        pred = mse(model.predict(p, images, m.predictor), standardise(labels, config))
        loss, metrics["pred"] = loss + pred, pred
    if m.lam_idt == 0:
        metrics["idt"] = jnp.nan
    return loss, (metrics, fakes)


def discriminator_loss(disc, batch, pooled, config: DUIITTrainConfig):
    """0.5 (LSGAN(D(real), 1) + LSGAN(D(pooled fake), 0)) for every D; (loss, metrics)."""
    tc, x = config.model.translator, batch["target"]["image"]
    d_b = d_a = 0.0
    for k in sources(config):
        d = lambda params, img: cyclegan.discriminate(params, img, tc)  # noqa: E731
        d_b += 0.5 * (lsgan(d(disc["b"][k], x), 1.0) + lsgan(d(disc["b"][k], pooled["b"][k]), 0.0))
        y = batch[k]["image"]
        d_a += 0.5 * (lsgan(d(disc["a"][k], y), 1.0) + lsgan(d(disc["a"][k], pooled["a"][k]), 0.0))
    return d_a + d_b, {"d_a": d_a, "d_b": d_b}


def predictor_loss(p, gen, batch, key, step, config: DUIITTrainConfig, phase: int):
    """(loss, metrics) of the predictor alone on this device's share, for every setting but
    joint; `phase` 1 or 2 for the two-phase settings (cyclegan: 2 only)."""
    m = config.model
    x, y_t = batch["target"]["image"], standardise(batch["target"]["label"], config)
    pc, names = m.predictor, sources(config)
    metrics = {"pred": jnp.nan, "dom": jnp.nan}
    if m.setting in ("pure", "tl") and (m.setting == "pure" or phase == 2):
        loss = mse(model.predict(p, x, pc), y_t)
    elif m.setting == "tl":  # phase 1: pretraining on the sources' images
        images = jnp.concatenate([batch[k]["image"] for k in names])
        labels = jnp.concatenate([standardise(batch[k]["label"], config) for k in names])
        loss = mse(model.predict(p, images, pc), labels)
    elif m.setting == "cyclegan":  # phase 2: translated images, translators frozen
        fakes = [cyclegan.translate(gen["g"][k], batch[k]["image"], m.translator) for k in names]
        images = jnp.concatenate([x] + [jax.lax.stop_gradient(f) for f in fakes])
        labels = jnp.concatenate([y_t] + [standardise(batch[k]["label"], config) for k in names])
        loss = mse(model.predict(p, images, pc), labels)
    elif m.setting == "mtl":
        loss = m.mtl_target_weight * mse(model.apply(p, x, pc)[1][:, 0], y_t)
        for head, k in enumerate(names, start=1):
            out = model.apply(p, batch[k]["image"], pc)[1][:, head]
            loss += m.mtl_source_weight * mse(out, standardise(batch[k]["label"], config))
    elif m.setting == "dann":
        images = jnp.concatenate([x] + [batch[k]["image"] for k in names])
        labels = jnp.concatenate([y_t] + [standardise(batch[k]["label"], config) for k in names])
        domains = jnp.concatenate([jnp.full(len(x), d, jnp.int32) for d in range(len(names) + 1)])
        _, out, logits = model.apply(p, images, pc, dann_factor(step, config))
        task = mse(out[:, 0], labels)
        metrics["dom"] = optax.softmax_cross_entropy_with_integer_labels(logits, domains).mean()
        loss = task + metrics["dom"]
        metrics["pred"] = task
        return loss, metrics
    else:  # augment, autoaugment, erasing: the target batch and one augmented copy
        fn = augment.AUGMENTATIONS[m.setting]
        copies = jax.vmap(fn)(parallel.example_keys(key, x.shape[0]), x)
        images = jnp.concatenate([x, copies])
        loss = mse(model.predict(p, images, pc), jnp.concatenate([y_t, y_t]))
    metrics["pred"] = loss
    return loss, metrics


def dann_factor(step, config: DUIITTrainConfig):
    """DANN's reversal factor at progress p = step / steps: dann_lambda (2 / (1 + e^(-10 p)) - 1)."""
    progress = step.astype(jnp.float32) / config.planned
    return config.model.dann_lambda * (2.0 / (1.0 + jnp.exp(-10.0 * progress)) - 1.0)


# --- the step -----------------------------------------------------------------------------------


def _pmean(tree):
    return jax.tree.map(lambda v: jax.lax.pmean(v, parallel.DATA), tree)


def _nan_metrics() -> dict:
    return {name: jnp.full((), jnp.nan, jnp.float32) for name in METRICS}


def translator_update(state, batch, key, config: DUIITTrainConfig, joint: bool):
    """G and F (and, joint, the predictor) on L_trans [+ lam L_pred], then every D on its pool."""
    opts, params, opt = optimizers(config), state.params, state.opt_state
    p = params.get("p")
    trainable = {"gen": params["gen"], **({"p": p} if joint else {})}

    def loss(tr):
        return translator_loss(tr["gen"], params["disc"], tr.get("p", p), batch, config, joint)

    (_, (metrics, fakes)), grads = parallel.mean_value_and_grad(loss, has_aux=True)(trainable)
    new_params, new_opt = dict(params), dict(opt)
    for name in trainable:
        new_params[name], new_opt[name] = state_lib.apply_gradients(
            trainable[name], opt[name], grads[name], opts[name]
        )
    pools, pooled = dict(state.stats["pool"]), {"a": {}, "b": {}}
    for side in ("b", "a"):
        pools[side] = dict(pools[side])
        for i, k in enumerate(sources(config)):
            pool_key = jax.random.fold_in(key, 2 * i + (side == "a"))
            pools[side][k], pooled[side][k] = _global_pool_query(
                pools[side][k], jax.lax.stop_gradient(fakes[side][k]), pool_key
            )
    (_, d_metrics), d_grads = parallel.mean_value_and_grad(discriminator_loss, has_aux=True)(
        params["disc"], batch, pooled, config
    )
    new_params["disc"], new_opt["disc"] = state_lib.apply_gradients(
        params["disc"], opt["disc"], d_grads, opts["disc"]
    )
    out = {**_nan_metrics(), **_pmean(metrics), **_pmean(d_metrics)}
    return new_params, new_opt, {**state.stats, "pool": pools}, out


def predictor_update(state, batch, key, config: DUIITTrainConfig, phase: int):
    """One predictor update (optimiser "pre" in tl's first phase, else "p")."""
    opts, params, opt = optimizers(config), state.params, state.opt_state
    name = "pre" if config.model.setting == "tl" and phase == 1 else "p"
    (_, metrics), grads = parallel.mean_value_and_grad(predictor_loss, has_aux=True)(
        params["p"], params.get("gen"), batch, key, state.step, config, phase
    )
    new_params, new_opt = dict(params), dict(opt)
    new_params["p"], new_opt[name] = state_lib.apply_gradients(
        params["p"], opt[name], grads, opts[name]
    )
    return new_params, new_opt, state.stats, {**_nan_metrics(), **_pmean(metrics)}


def train_step(
    state: state_lib.TrainState, batch: dict, key: jax.Array, *, config, phase: int | None = None
):
    """One step of `config.model.setting` on this device's share (inside `data_parallel`).

    The two-phase settings (cyclegan, tl) take the phase from the host (`phase`, what `make_step`
    compiles one step for each); `phase=None` chooses it on the device from `state.step` with a
    `lax.cond`, which XLA:CPU runs several times slower (tl, 64 px, batch 60, 30 steps with both
    compilations: 136 s with the cond, 40 s compiled per phase)."""
    m = config.model
    key = jax.random.fold_in(key, state.step)
    if m.setting == "joint":
        update = functools.partial(translator_update, config=config, joint=True)
    elif m.setting == "cyclegan" and not config.two_phases:
        update = functools.partial(translator_update, config=config, joint=False)
    elif config.two_phases:
        first = (
            functools.partial(translator_update, config=config, joint=False)
            if m.setting == "cyclegan"
            else functools.partial(predictor_update, config=config, phase=1)
        )
        second = functools.partial(predictor_update, config=config, phase=2)
        if phase is not None:
            update = first if phase == 1 else second
        else:

            def update(state, batch, key):
                return jax.lax.cond(
                    state.step < config.phase_steps, first, second, state, batch, key
                )
    else:
        update = functools.partial(predictor_update, config=config, phase=1)
    params, opt, stats, metrics = update(state, batch, key)
    new_state = state.replace(params=params, opt_state=opt, stats=stats, step=state.step + 1)
    return new_state, metrics


# --- building blocks of a run --------------------------------------------------------------------


def init_params(key: jax.Array, config: DUIITTrainConfig) -> dict:
    """{"gen": {"g", "f"}, "disc": {"b", "a"} (one per source, keyed s0, s1, ...), "p"}, as the
    setting has them."""
    m, params = config.model, {}
    k_t, k_p = jax.random.split(key)
    if m.has_translator:
        directions = {}
        for i, k in enumerate(sources(config)):
            ab = cyclegan.init(jax.random.fold_in(k_t, 2 * i), m.translator)  # G_k and D_B^k
            ba = cyclegan.init(jax.random.fold_in(k_t, 2 * i + 1), m.translator)  # F_k, D_A^k
            directions[k] = (ab, ba)
        params["gen"] = {"g": {k: v[0]["g"] for k, v in directions.items()},
                         "f": {k: v[1]["g"] for k, v in directions.items()}}  # fmt: skip
        params["disc"] = {"b": {k: v[0]["d"] for k, v in directions.items()},
                          "a": {k: v[1]["d"] for k, v in directions.items()}}  # fmt: skip
    if m.predict:
        params["p"] = model.init(k_p, m.predictor, m.size)
    return params


def init_state(config: DUIITTrainConfig) -> state_lib.TrainState:
    """The state before step 1, from `config.seed` alone."""
    m = config.model
    init_key, run_key = jax.random.split(jax.random.key(config.seed))
    params = init_params(init_key, config)
    opts = optimizers(config)
    opt_state = {name: opts[name].init(params["p" if name == "pre" else name]) for name in opts}
    stats = {}
    if m.has_translator:
        shape = (m.size, m.size, m.translator.channels)
        stats["pool"] = {side: {k: empty_pool(m.pool_size, shape) for k in sources(config)}
                         for side in ("b", "a")}  # fmt: skip
    return state_lib.TrainState(params=params, opt_state=opt_state, step=jnp.zeros((), jnp.int32),
                                key=run_key, stats=stats)  # fmt: skip


def make_state(config: DUIITTrainConfig, mesh) -> state_lib.TrainState:
    return state_lib.born_replicated(functools.partial(init_state, config), mesh)


def make_step(config: DUIITTrainConfig, mesh):
    """The jitted data-parallel step `(state, batch) -> (state, metrics)` for `mesh` (the
    two-phase settings: a `PhasedStep`)."""
    parallel.check_divisible("DUIITTrainConfig.batch_size", config.batch_size, mesh.size)
    if config.two_phases:
        return PhasedStep(config, mesh)
    return parallel.cached_step(train_step, config, mesh)


class PhasedStep(parallel.HostCountedStep):
    """`(state, batch) -> (state, metrics)` of a two-phase setting: the step compiled for the
    phase the step count selects (once per phase), counted on the host."""

    def __init__(self, config: DUIITTrainConfig, mesh):
        super().__init__(
            lambda step: 1 if step < config.phase_steps else 2,
            lambda phase: parallel.cached_step(train_step, config, mesh, phase=phase),
        )


def run_info(config: DUIITTrainConfig, cohorts: duiit_data.Cohorts, label: str | None) -> dict:
    """config.json of a run: the config plus what reading it back needs (data, label)."""
    return {
        **as_json(config),
        "family": FAMILY,
        "label": label,
        "target": cohorts.target.source,
        "sources": [s.source for s in cohorts.sources],
    }


def run(
    out_dir: str | os.PathLike,
    target,
    sources: Sequence = (),
    *,
    label: str | None,
    steps: int,
    config: DUIITTrainConfig | None = None,
    resume: bool = False,
    checkpoint_every: int = 500,
    keep: int = 3,
    log_every: int = 1,
    progress: bool = True,
    hooks: Sequence[loop.Hook] = (),
    devices: Sequence[jax.Device] | None = None,
) -> state_lib.TrainState:
    """Train `config.model.setting` on `target` and `sources` (folders, phantom:head-MOD:N specs
    or LabelledImages) into `out_dir`: config.json ("family": "duiit"), metrics.jsonl (g_ab,
    g_ba, d_a, d_b, cyc, idt, pred, dom; NaN where a component did not train that step) and
    checkpoints/<step>/. `label_mean`/`label_scale` are set from the target's labels and
    `config.steps`, when None, to `steps`; the batch is clamped to the smallest cohort."""
    parallel.initialize_distributed()
    config = config or DUIITTrainConfig()
    m = config.model
    if m.predict and label is None:
        raise ConfigError(f"label is None for setting {m.setting!r}; expected the label column")
    if m.sources != len(sources):
        m = dataclasses.replace(m, sources=len(sources))
    cohorts = duiit_data.load_cohorts(
        target, sources if m.sources else (), label if m.predict else None, m.size, config.seed,
        progress=progress,
    )  # fmt: skip
    mesh = parallel.make_mesh(devices)
    if m.predict:
        mean, scale = duiit_data.label_stats(cohorts)
        m = dataclasses.replace(m, label_mean=mean, label_scale=scale)
    batch = duiit_data.fit_batch(config.batch_size, cohorts, mesh.size)
    config = dataclasses.replace(config, model=m, steps=config.steps or steps, batch_size=batch)
    settings = loop.LoopConfig(steps=steps, checkpoint_every=checkpoint_every, keep=keep,
                               log_every=log_every, progress=progress)  # fmt: skip
    data_iter = iter(duiit_data.dataset(cohorts, batch, config.seed,
                                        process_index=jax.process_index(),
                                        process_count=jax.process_count()))  # fmt: skip
    return loop.run(
        out_dir,
        config=config,
        info=run_info(config, cohorts, label),
        mesh=mesh,
        init=functools.partial(init_state, config),
        step_fn=make_step(config, mesh),
        data_iter=data_iter,
        settings=settings,
        resume=resume,
        hooks=hooks,
    )
