"""Training prog-GAN and cpD-GAN (DuMont Schütte et al. 2020) on multi-label 2D images.

`jaxsyn train proggan|cpdgan --data phantom:cxr:2000 --out runs/x --steps 20000`

Data: images in [-1, 1] with a vector of binary findings per image (a folder read with
`load_images`, every 0/1 column of its labels.csv unless `label_columns` names them, or the
`phantom:cxr:N` / `phantom:headct:N` phantoms made at the model's size), served by AC-GAN's Grain
pipeline (`jaxsyn.train.acgan.dataset`: seeded shuffle per epoch, sharded by process, resumable).
The fakes of a step carry the real batch's label vectors, so synthetic labels follow the real
label-combination distribution, as the reference draws them from the training set.

Loss (both; the reference's D_wgangp_acgan / D_wgan_gp, G_wgan_acgan / G_wgan):
  D: E[D(G(z, y))] - E[D(x)] + lambda E[(|grad D(x_hat)| - 1)^2] + eps_drift E[D(x)^2]
  G: -E[D(G(z, y))]
with x_hat = x + u (G(z, y) - x), u ~ U(0, 1) per image, lambda 10, eps_drift 1e-3; at every
prog-GAN stage the penalty is the one the reference's full-size critic gets (`d_loss`). prog-GAN
adds the auxiliary-classifier term aux_weight [CE(C(x), t) + CE(C(G(z, y)), t)] to D and
aux_weight CE(C(G(z, y)), t) to G, CE the softmax cross-entropy against t = y / sum(y), as the
reference computes it (not a per-finding BCE; `jaxsyn.models.proggan.aux_targets`). cpD-GAN
conditions through its critic's per-label outputs instead. One D update, then one G update
(fresh z), per step.

prog-GAN grows: the step is compiled per stage (a static argument; `StagedStep` picks the one for
the images seen so far, `proggan.stage_at`), alpha is computed inside the step from the state's
step count, and reals are shown at the stage's resolution, blended like the fakes while a stage
fades in (the reference's process_reals). Adam's state is reset whenever the growing phase
changes (a fade starts or ends; reference reset_opt_for_new_lod = True).

Generator smoothing (both; the reference's Gs, G_smoothing = 0.999 in GAN_prog and GAN_cpd
train.py): the state keeps an exponential moving average of G's weights in `stats["g_ema"]`,
born equal to G, updated every step as
    g_ema <- g + beta (g_ema - g),   beta = g_smoothing (a constant: it depends neither on the
                                     batch size nor on the stage),
with g the generator *before* the step's G update (the reference runs the average alongside the
D update); Adam resets and stage changes leave it alone (the not yet grown layers are untrained,
so their average stays at their initial values). The reference samples, previews and measures
FID with it; so do `jaxsyn generate` (`jaxsyn.infer.acgan.load_gan2d`) and `sampling_params`.
`g_smoothing = 0` keeps no average: generation then uses G itself.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsyn.checkpoint import as_json
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.models import cpdgan, proggan
from jaxsyn.train import acgan, loop, loss_scale, parallel
from jaxsyn.train import state as state_lib

FAMILIES = ("proggan", "cpdgan")
PHANTOMS = ("cxr", "headct")  # the multi-label phantoms


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProgGANTrainConfig:
    """`jaxsyn train proggan --data phantom:cxr:2000 --out runs/prog --steps 20000`

    Defaults from the reference's GAN_prog/config.py and loss.py (the 32x32, 1-GPU preset).
    """

    model: proggan.ProgGANConfig = dataclasses.field(default_factory=proggan.ProgGANConfig)
    seed: int = 0  # data order, phantom cohort and every random draw of the run
    batch_size: int = 64  # config.py minibatch_dict {8: 256, 16: 128, 32: 64}: the 32 px value
    lr: float = 1e-3  # config.py / TrainingSchedule G_lrate_base = D_lrate_base = 0.001
    b1: float = 0.0  # config.py: Adam beta1 0.0
    b2: float = 0.99  # config.py: Adam beta2 0.99
    eps: float = 1e-8  # config.py: Adam epsilon 1e-8
    gp_weight: float = 10.0  # loss.py: wgan_lambda 10
    gp_target: float = 1.0  # loss.py: wgan_target 1
    drift: float = 1e-3  # loss.py: wgan_epsilon 0.001
    aux_weight: float = 1.0  # loss.py: cond_weight 1
    g_smoothing: float = 0.999  # train.py: G_smoothing 0.999; 0 = no averaged generator
    stable_images: int = 1_400_000  # config.py: lod_training_kimg 1400
    fade_images: int = 1_400_000  # config.py: lod_transition_kimg 1400
    reset_optimizer: bool = True  # config.py: reset_opt_for_new_lod True
    label_columns: tuple[str, ...] = ()  # the data's findings; () = every 0/1 column

    def __post_init__(self):
        _check(self, "ProgGANTrainConfig")
        for name in ("stable_images", "fade_images"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"ProgGANTrainConfig.{name} is {getattr(self, name)}; expected >= 1"
                )

    @classmethod
    def tiny(cls, **overrides) -> ProgGANTrainConfig:
        """Tests and smoke runs: 16 px from 8 px, batch 16, a stage every 32 + 32 images."""
        fields = dict(model=proggan.ProgGANConfig.tiny(), batch_size=16, stable_images=32,
                      fade_images=32)  # fmt: skip
        return cls(**{**fields, **overrides})


@dataclasses.dataclass(frozen=True, kw_only=True)
class CPDGANTrainConfig:
    """`jaxsyn train cpdgan --data phantom:cxr:2000 --out runs/cpd --steps 20000`

    Defaults from the reference's GAN_cpd/config.py and loss.py.
    """

    model: cpdgan.CPDGANConfig = dataclasses.field(default_factory=cpdgan.CPDGANConfig)
    seed: int = 0  # data order, phantom cohort and every random draw of the run
    batch_size: int = 256  # config.py: minibatch 256 (minibatch_base 64 per GPU x 4)
    lr: float = 0.005  # config.py: G_lrate = D_lrate = 0.005
    b1: float = 0.0  # config.py: Adam beta1 0.0
    b2: float = 0.99  # config.py: Adam beta2 0.99
    eps: float = 1e-8  # config.py: Adam epsilon 1e-8
    gp_weight: float = 10.0  # loss.py D_wgan_gp: wgan_lambda 10
    gp_target: float = 1.0  # loss.py D_wgan_gp: wgan_target 1
    drift: float = 1e-3  # loss.py D_wgan_gp: wgan_epsilon 0.001
    g_smoothing: float = 0.999  # train.py: G_smoothing 0.999; 0 = no averaged generator
    label_columns: tuple[str, ...] = ()  # the data's findings; () = every 0/1 column

    def __post_init__(self):
        _check(self, "CPDGANTrainConfig")

    @classmethod
    def tiny(cls, **overrides) -> CPDGANTrainConfig:
        """Tests and smoke runs: 16 px, width 8, batch 16, lr 1e-3."""
        fields = dict(model=cpdgan.CPDGANConfig.tiny(), batch_size=16, lr=1e-3)
        return cls(**{**fields, **overrides})


Config = ProgGANTrainConfig | CPDGANTrainConfig


def _check(config, name: str) -> None:
    if config.batch_size < 1:
        raise ConfigError(f"{name}.batch_size is {config.batch_size}; expected >= 1")
    for field in ("lr", "gp_target"):
        if getattr(config, field) <= 0:
            raise ConfigError(f"{name}.{field} is {getattr(config, field)}; expected > 0")
    for field in ("gp_weight", "drift", "b1", "b2"):
        if getattr(config, field) < 0:
            raise ConfigError(f"{name}.{field} is {getattr(config, field)}; expected >= 0")
    if not 0 <= config.g_smoothing < 1:
        raise ConfigError(f"{name}.g_smoothing is {config.g_smoothing}; expected in [0, 1)")
    object.__setattr__(config, "label_columns", tuple(str(c) for c in config.label_columns))


def family_of(config: Config) -> str:
    return "proggan" if isinstance(config, ProgGANTrainConfig) else "cpdgan"


def default_config(family: str, *, tiny: bool = False, seed: int = 0) -> Config:
    """The family's paper config (or its `tiny()`), with `seed`."""
    if family not in FAMILIES:
        raise ConfigError(f"family is {family!r}; expected one of {FAMILIES}")
    cls = ProgGANTrainConfig if family == "proggan" else CPDGANTrainConfig
    return (cls.tiny if tiny else cls)(seed=seed)


# --- data ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Cohort:
    """Images float32 [N, S, S, C] in [-1, 1] and findings float32 [N, L] of 0/1."""

    images: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]  # the findings, in label-vector order
    source: str  # the folder or phantom:KIND:N it came from

    def __len__(self) -> int:
        return len(self.labels)


def load_cohort(data, config: Config) -> Cohort:
    """`data`: a Cohort (returned as it is), an image folder with labels.csv, or
    `phantom:cxr:N` / `phantom:headct:N` (made at the model's size from `config.seed`)."""
    if isinstance(data, Cohort):
        return data
    m = config.model
    if str(data).startswith("phantom:"):
        images, table = acgan.phantom_images(str(data), m.size, config.seed, PHANTOMS)
    else:
        from jaxsyn.data.images import load_images, read_labels

        images, table = load_images(data, size=m.size)
        table = table.drop(columns=[read_labels(data)[1]])
    names = config.label_columns or tuple(
        c for c in table.columns if c != "image_id" and table[c].isin([0, 1]).all()
    )
    missing = [c for c in names if c not in table.columns]
    if missing or not names:
        raise DataError(
            f"{data}: label columns {missing or 'none of 0/1'}; expected binary findings among "
            f"{list(table.columns)}"
        )
    labels = table[list(names)].to_numpy()
    if not np.isin(labels, (0, 1)).all():
        raise DataError(f"{data}: label columns {list(names)} hold values other than 0 and 1")
    if images.shape[1:] != (m.size, m.size, m.channels):
        raise DataError(
            f"{data}: images of shape {images.shape[1:]}; expected {(m.size, m.size, m.channels)}"
            " (model size, channels)"
        )
    return Cohort((2 * images - 1).astype(np.float32), labels.astype(np.float32), names, str(data))


def fit_labels(config: Config, cohort: Cohort) -> Config:
    """The model's num_labels set to the data's number of findings (says so when it changes)."""
    if config.model.num_labels == len(cohort.names):
        return config
    print(f"{len(cohort.names)} findings in the data: num_labels {config.model.num_labels} -> "
          f"{len(cohort.names)}")  # fmt: skip
    model = dataclasses.replace(config.model, num_labels=len(cohort.names))
    return dataclasses.replace(config, model=model, label_columns=cohort.names)


def combinations(labels: np.ndarray) -> list[list]:
    """[[label vector, count], ...]: the label combinations of the data, most frequent first."""
    rows, counts = np.unique(labels.astype(np.int64), axis=0, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return [[rows[i].tolist(), int(counts[i])] for i in order]


# --- losses and the step -----------------------------------------------------------------------


def optimizer(config: Config) -> optax.GradientTransformation:
    return optax.adam(config.lr, b1=config.b1, b2=config.b2, eps=config.eps)


def stage_of(config: Config, step: int) -> tuple[int, bool]:
    """(active stage, fading) before step `step + 1`; cpD-GAN: always (size, False)."""
    if isinstance(config, CPDGANTrainConfig):
        return config.model.size, False
    args = (config.model, config.stable_images, config.fade_images)
    images = step * config.batch_size
    level = proggan.fade_level(images, *args)
    return proggan.stage_at(images, *args), level != int(level)


def _nets(config: Config, stage: int, alpha):
    """(generate(g, z, y), discriminate(d, x, y) -> (scores, aux logits or None)) at `stage`."""
    m = config.model
    if isinstance(config, CPDGANTrainConfig):
        return (
            lambda g, z, y: cpdgan.apply_generator(g, z, y, m),
            lambda d, x, y: (cpdgan.apply_discriminator(d, x, y, m), None),
        )
    return (
        lambda g, z, y: proggan.apply_generator(g, z, y, m, stage, alpha),
        lambda d, x, y: proggan.apply_discriminator(d, x, m, stage, alpha),
    )


def reals_at(images: jax.Array, stage: int, alpha) -> jax.Array:
    """Real images shown at `stage`: average-pooled, blended with the previous resolution while
    the stage fades in (the reference's process_reals)."""
    x = proggan.resize_to(images, stage)
    if stage <= 4:
        return x
    return proggan.lerp(proggan.upsample(proggan.downsample(x)), x, alpha)


def _aux(logits, labels) -> jax.Array:
    return jnp.mean(optax.softmax_cross_entropy(logits, proggan.aux_targets(labels)))


def d_loss(d_params, g_params, batch, z, u, config: Config, stage: int, alpha):
    """(loss, metrics) of the critic on this device's share.

    The gradient penalty is the reference's at every stage: its critic reads full-size images
    (a growing G's output upsampled, nearest) and average-pools them by k = size / stage, so its
    gradient w.r.t. the full-size mix is the stage-resolution gradient spread over k x k pixels
    and divided by k^2, whose norm is 1/k of the stage-resolution norm. We take the gradient at
    the stage's resolution and divide its norm by k: the same penalty, exactly (k = 1 for
    cpD-GAN and at the last stage).
    """
    generate, discriminate = _nets(config, stage, alpha)
    y = batch["label"]
    real = reals_at(batch["image"], stage, alpha)
    fake = jax.lax.stop_gradient(generate(g_params, z, y))
    real_score, real_aux = discriminate(d_params, real, y)
    fake_score, fake_aux = discriminate(d_params, fake, y)
    mixed = real + u[:, None, None, None] * (fake - real)
    grads = jax.grad(lambda x: jnp.sum(discriminate(d_params, x, y)[0]))(mixed)
    norms = jnp.sqrt(jnp.sum(jnp.square(grads), axis=(1, 2, 3))) / (config.model.size // stage)
    gp = jnp.mean(jnp.square(norms - config.gp_target)) / config.gp_target**2
    wdist = jnp.mean(real_score) - jnp.mean(fake_score)
    loss = -wdist + config.gp_weight * gp + config.drift * jnp.mean(jnp.square(real_score))
    metrics = {"d_wdist": wdist, "d_gp": gp}
    if real_aux is not None:
        aux = _aux(real_aux, y) + _aux(fake_aux, y)
        loss, metrics["d_aux"] = loss + config.aux_weight * aux, aux
    return loss, metrics


def g_loss(g_params, d_params, batch, z, config: Config, stage: int, alpha):
    """(loss, metrics) of the generator on this device's share."""
    generate, discriminate = _nets(config, stage, alpha)
    score, aux_logits = discriminate(
        d_params, generate(g_params, z, batch["label"]), batch["label"]
    )
    loss, metrics = -jnp.mean(score), {}
    if aux_logits is not None:
        aux = _aux(aux_logits, batch["label"])
        loss, metrics["g_aux"] = loss + config.aux_weight * aux, aux
    return loss, metrics


def train_step(state, batch: dict, key: jax.Array, *, config: Config, stage: int):
    """D then G on this device's share of the batch (inside `parallel.data_parallel`)."""
    opt, n = optimizer(config), batch["label"].shape[0]
    key = jax.random.fold_in(key, state.step)
    keys = [parallel.example_keys(jax.random.fold_in(key, i), n) for i in range(3)]
    z_d, z_g = (jax.vmap(lambda k: jax.random.normal(k, (config.model.latent_dim,)))(k)
                for k in keys[:2])  # fmt: skip
    u = jax.vmap(lambda k: jax.random.uniform(k))(keys[2])
    alpha, extra = 1.0, {}
    if isinstance(config, ProgGANTrainConfig):
        images = state.step * config.batch_size
        args = (config.model, stage, config.stable_images, config.fade_images)
        alpha = extra["alpha"] = proggan.fade_alpha(images, *args)
    params, opt_state = state.params, state.opt_state
    # float16: each component's loss scaled dynamically (loss_scale); other dtypes: None
    scaled = loss_scale.wanted(config.model.dtype)
    scales = state.stats.get("loss_scale", {})
    (dl, d_metrics), grads, d_ok = loss_scale.mean_value_and_grad(
        d_loss, scales.get("d"), has_aux=True
    )(params["d"], params["g"], batch, z_d, u, config, stage, alpha)
    d_params, d_opt = loss_scale.apply_gradients(
        params["d"], opt_state["d"], grads, opt, d_ok, scaled
    )
    (gl, g_metrics), grads, g_ok = loss_scale.mean_value_and_grad(
        g_loss, scales.get("g"), has_aux=True
    )(params["g"], d_params, batch, z_g, config, stage, alpha)
    g_params, g_opt = loss_scale.apply_gradients(
        params["g"], opt_state["g"], grads, opt, g_ok, scaled
    )
    stats = dict(state.stats)
    if config.g_smoothing:  # the average of the generator this step started from
        stats["g_ema"] = smooth(stats["g_ema"], params["g"], config.g_smoothing)
    if scaled:
        stats["loss_scale"] = {"d": loss_scale.next_scale(scales["d"], d_ok),
                               "g": loss_scale.next_scale(scales["g"], g_ok)}  # fmt: skip
        extra.update(d_loss_scale=scales["d"]["scale"], g_loss_scale=scales["g"]["scale"],
                     d_skipped=1 - d_ok.astype(jnp.float32),
                     g_skipped=1 - g_ok.astype(jnp.float32))  # fmt: skip
    new_state = state.replace(
        params={"g": g_params, "d": d_params}, opt_state={"g": g_opt, "d": d_opt},
        step=state.step + 1, stats=stats,
    )  # fmt: skip
    metrics = jax.tree.map(lambda x: jax.lax.pmean(x, parallel.DATA), {**d_metrics, **g_metrics})
    return new_state, {"d_loss": dl, "g_loss": gl, **extra, **metrics}


def smooth(g_ema, g, beta: float):
    """One step of the generator's moving average: g + beta (g_ema - g), leaf by leaf (the
    reference's lerp(G, Gs, G_smoothing))."""
    return jax.tree.map(lambda e, w: w + jnp.float32(beta) * (e - w), g_ema, g)


def sampling_params(state: state_lib.TrainState):
    """The generator that samples and evaluations use: the moving average when the run keeps
    one (`g_smoothing` > 0), else G itself."""
    return state.stats.get("g_ema", state.params["g"])


# --- building blocks of a run --------------------------------------------------------------------


def init_state(config: Config) -> state_lib.TrainState:
    """The state before step 1, from `config.seed` alone."""
    init_key, run_key = jax.random.split(jax.random.key(config.seed))
    module = proggan if isinstance(config, ProgGANTrainConfig) else cpdgan
    params = module.init(init_key, config.model)
    stats = {"g_ema": params["g"]} if config.g_smoothing else {}  # born equal to G
    if loss_scale.wanted(config.model.dtype):
        stats["loss_scale"] = loss_scale.initial(("d", "g"))
    opts = {"g": optimizer(config), "d": optimizer(config)}
    return state_lib.create(params, opts, run_key, stats)


def make_state(config: Config, mesh) -> state_lib.TrainState:
    return state_lib.born_replicated(functools.partial(init_state, config), mesh)


class StagedStep(parallel.HostCountedStep):
    """`(state, batch) -> (state, metrics)`: the jitted data-parallel step of the stage that the
    images seen so far select (compiled once per stage), resetting Adam when the phase (stage or
    fade-in) changes if the config says so. Steps are counted on the host."""

    def __init__(self, config: Config, mesh):
        parallel.check_divisible(
            f"{type(config).__name__}.batch_size", config.batch_size, mesh.size
        )
        opt = optimizer(config)
        reset = jax.jit(
            lambda s: s.replace(opt_state={k: opt.init(p) for k, p in s.params.items()}),
            out_shardings=parallel.replicated(mesh), donate_argnums=(0,),
        )  # fmt: skip
        super().__init__(
            lambda step: stage_of(config, step),
            lambda phase: parallel.cached_step(train_step, config, mesh, stage=phase[0]),
            reset if getattr(config, "reset_optimizer", False) else None,
        )


def run_info(config: Config, cohort: Cohort) -> dict:
    """config.json of a run: the config plus what generation needs (findings, combinations)."""
    return {
        **as_json(config),
        "family": family_of(config),
        "data": cohort.source,
        "labels": list(cohort.names),
        "label_combinations": combinations(cohort.labels),  # to draw synthetic labels from
    }


def run(
    out_dir: str | os.PathLike,
    data: str | os.PathLike | Cohort,
    *,
    steps: int,
    config: Config,
    resume: bool = False,
    checkpoint_every: int = 500,
    keep: int = 3,
    log_every: int = 1,
    progress: bool = True,
    hooks: Sequence[loop.Hook] = (),
    devices: Sequence[jax.Device] | None = None,
) -> state_lib.TrainState:
    """Train prog-GAN or cpD-GAN (by the type of `config`) on `data` into `out_dir`.

    `data`: an image folder with labels.csv, `phantom:cxr:N`, `phantom:headct:N` or a `Cohort`.
    The model's num_labels follows the data; the batch is clamped to a small cohort (both said).
    Writes config.json ("family", findings, label combinations), metrics.jsonl and checkpoints.
    """
    parallel.initialize_distributed()
    cohort = load_cohort(data, config)
    config = fit_labels(config, cohort)
    mesh = parallel.make_mesh(devices)
    config = acgan.fit_batch(config, len(cohort), mesh.size)
    settings = loop.LoopConfig(steps=steps, checkpoint_every=checkpoint_every, keep=keep,
                               log_every=log_every, progress=progress)  # fmt: skip
    data_iter = iter(
        acgan.dataset(cohort, config, process_index=jax.process_index(),
                      process_count=jax.process_count())
    )  # fmt: skip
    return loop.run(
        out_dir, config=config, info=run_info(config, cohort), mesh=mesh,
        init=functools.partial(init_state, config), step_fn=StagedStep(config, mesh),
        data_iter=data_iter, settings=settings, resume=resume, hooks=hooks,
    )  # fmt: skip
