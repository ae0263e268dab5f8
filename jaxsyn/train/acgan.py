"""Training the AC-GAN of pGAN (Sun, Plawinski et al. 2021): data, losses, the step, and `run`.

`jaxsyn train acgan --data phantom:vertebra:512 --out runs/acgan --steps 2000`

Data: labelled images in [-1, 1] held in memory (a folder read with `load_images`, or the vertebra
phantom made at the model's size), served by a Grain pipeline (shuffled per epoch from the seed,
sharded by process, resumable).
Step, as the reference's train_region.py: a discriminator update, then a generator update
against the new discriminator. Each update draws its own fakes: class labels c from
`fake_class_prior` and z ~ N(0, 1), new ones for the generator update (the reference calls its
`noise_gen` again before the G step). Losses (AC-GAN, Odena et al. 2017, with alpha = 1 as the
paper's section 6.2), x and y the real batch:
  D: BCE(D(x), real) + BCE(D(G(z, c)), fake) + alpha [CE(C(x), y) + CE(C(G(z, c)), c)]
  G: BCE(D(G(z', c')), real) + alpha CE(C(G(z', c')), c')        (non-saturating)
The fakes' labels follow the training data's class prior (what `run` puts in
`fake_class_prior` unless told otherwise), as the reference draws them and as the paper draws
synthetic labels. With generator BatchNorm both forward passes run in training mode, so the
running statistics move twice per step, as PyTorch's do in the reference. CE is the log-softmax
cross-entropy of the class logits; the reference applies NLLLoss to *softmax* outputs (a quirk:
its "loss" is -p_y, bounded and with gradients that vanish as p_y -> 0), which we do not
reproduce. Optional class weights follow PyTorch's weighted NLLLoss (sum w_y l / sum w_y over
the global batch); the reference weights its classes, we default to none.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence

import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from jaxsyn.checkpoint import as_json
from jaxsyn.errors import ConfigError, DataError

# Reading a run back lives in jaxsyn.infer.acgan (no Optax or Grain); re-exported for callers here.
from jaxsyn.infer.acgan import class_index, load_generator, read_info  # noqa: F401
from jaxsyn.models import acgan as model
from jaxsyn.train import loop, loss_scale, parallel
from jaxsyn.train import state as state_lib

FAMILY = "acgan"  # config.json "family" (jaxsyn.infer.acgan checks it)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ACGANTrainConfig:
    """`jaxsyn train acgan --data phantom:vertebra:512 --out runs/acgan --steps 2000`

    What determines a run's numbers: a resumed run must have the same (checked on restore).
    """

    model: model.ACGANConfig = dataclasses.field(default_factory=model.ACGANConfig)
    seed: int = 0  # data order, phantom cohort and every random draw of the run
    batch_size: int = 32  # training_parser.py: batch 32 (global; split over devices)
    g_lr: float = 1e-4  # section 6.2 / training_parser.py lrG
    d_lr: float = 1e-4  # section 6.2 / training_parser.py lrD
    b1: float = 0.5  # training_parser.py: Adam betas (0.5, 0.999)
    b2: float = 0.999
    alpha: float = 1.0  # section 6.2: weight of the classification loss (alpha_region)
    # Reference: class-weighted NLLLoss; None = unweighted (see `balanced_weights` for 1/freq).
    class_weights: tuple[float, ...] | None = None
    # Reference noise_gen: fakes' labels drawn from the data's region prior. None: uniform here;
    # `run` fills in the training data's class frequencies.
    fake_class_prior: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.batch_size < 1:
            raise ConfigError(f"ACGANTrainConfig.batch_size is {self.batch_size}; expected >= 1")
        for name in ("g_lr", "d_lr"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"ACGANTrainConfig.{name} is {getattr(self, name)}; expected > 0")
        if self.alpha < 0:
            raise ConfigError(f"ACGANTrainConfig.alpha is {self.alpha}; expected >= 0")
        weights = self.class_weights
        if weights is not None:
            if len(weights) != self.model.num_classes or min(weights) <= 0:
                raise ConfigError(
                    f"ACGANTrainConfig.class_weights is {weights}; expected "
                    f"{self.model.num_classes} positive numbers (one per class) or None"
                )
            object.__setattr__(self, "class_weights", tuple(float(w) for w in weights))
        prior = self.fake_class_prior
        if prior is not None:
            if len(prior) != self.model.num_classes or min(prior) < 0 or sum(prior) <= 0:
                raise ConfigError(
                    f"ACGANTrainConfig.fake_class_prior is {prior}; expected "
                    f"{self.model.num_classes} non-negative numbers with a positive sum, or None"
                )
            total = sum(prior)  # kept normalised, so equal priors compare equal on resume
            object.__setattr__(self, "fake_class_prior", tuple(float(p) / total for p in prior))

    @classmethod
    def tiny(cls, **overrides) -> ACGANTrainConfig:
        """The preset every test and smoke run uses. lr 1e-3 so a few dozen steps move it."""
        fields = dict(model=model.ACGANConfig.tiny(), batch_size=16, g_lr=1e-3, d_lr=1e-3)
        return cls(**{**fields, **overrides})


# --- data ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Cohort:
    """Labelled images in memory: images float32 [N, S, S, C] in [-1, 1], labels int32 [N]."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]  # class index -> name
    source: str  # the folder or phantom:KIND:N it came from

    def __len__(self) -> int:
        return len(self.labels)


def class_order(values: Sequence) -> tuple[str, ...]:
    """Class names in index order: the vertebra regions in spine order (cervical, thoracic,
    lumbar: the reference's one-hot order) when the values are regions, else sorted."""
    from jaxsyn.data.phantoms.vertebra import REGIONS

    names = sorted({str(v) for v in values})
    return REGIONS if set(names) <= set(REGIONS) else tuple(names)


# phantom kind -> the function drawing one image (shared with jaxsyn.train.gan2d)
PHANTOM_DRAW = {"vertebra": "vertebral_unit", "cxr": "radiograph", "headct": "head_slice"}


def phantom_images(
    spec: str, size: int, seed: int, kinds: Sequence[str] = tuple(PHANTOM_DRAW)
) -> tuple[np.ndarray, pd.DataFrame]:
    """`phantom:KIND:N` made in memory: (images float32 [N, size, size, C] in [0, 1], labels)."""
    import importlib

    parts = spec.split(":")
    if len(parts) != 3 or parts[1] not in kinds or not parts[2].isdigit() or int(parts[2]) < 1:
        expected = " or ".join(f"phantom:{k}:N" for k in kinds)
        raise ConfigError(f"data is {spec!r}; expected a folder or {expected} with N >= 1")
    module = importlib.import_module(f"jaxsyn.data.phantoms.{parts[1]}")
    draw = getattr(module, PHANTOM_DRAW[parts[1]])
    table = module.labels(int(parts[2]), seed)
    units = [
        draw(row, size, module.image_seed(seed, i))[0]
        for i, row in enumerate(table.to_dict("records"))
    ]
    images = np.stack(units).astype(np.float32) / 255.0
    return (images[..., None] if images.ndim == 3 else images), table


def phantom_cohort(spec: str, config: ACGANTrainConfig) -> Cohort:
    """`phantom:vertebra:N`: N vertebral units made in memory at the model's size."""
    images, table = phantom_images(spec, config.model.size, config.seed, ("vertebra",))
    return _cohort(images, table["region"].tolist(), spec, config, "region")


def folder_cohort(folder, config: ACGANTrainConfig, class_column: str = "region") -> Cohort:
    """A folder of `<id>.<ext>` images with labels.csv (see `jaxsyn.data.images`), resized to the
    model's size; classes from `class_column`."""
    from jaxsyn.data.images import load_images

    images, table = load_images(folder, size=config.model.size)
    if class_column not in table.columns:
        raise DataError(
            f"{folder}/labels.csv: no column {class_column!r}; expected a class column among "
            f"{list(table.columns)}"
        )
    return _cohort(images, table[class_column].tolist(), str(folder), config, class_column)


def _cohort(images, values, source, config: ACGANTrainConfig, column: str) -> Cohort:
    m = config.model
    if images.shape[1:] != (m.size, m.size, m.channels):
        raise DataError(
            f"{source}: images of shape {images.shape[1:]}; expected "
            f"{(m.size, m.size, m.channels)} (ACGANConfig.size, channels)"
        )
    classes = class_order(values)
    if len(classes) != m.num_classes:
        raise DataError(
            f"{source}: column {column!r} has {len(classes)} classes {list(classes)}; expected "
            f"ACGANConfig.num_classes = {m.num_classes}"
        )
    index = {name: k for k, name in enumerate(classes)}
    labels = np.array([index[str(v)] for v in values], np.int32)
    return Cohort((2 * images - 1).astype(np.float32), labels, classes, source)


def load_cohort(data, config: ACGANTrainConfig, class_column: str = "region") -> Cohort:
    """`data`: a Cohort (returned as it is), a folder, or `phantom:vertebra:N`."""
    if isinstance(data, Cohort):
        return data
    if str(data).startswith("phantom:"):
        return phantom_cohort(str(data), config)
    return folder_cohort(data, config, class_column)


def balanced_weights(labels: np.ndarray, num_classes: int) -> tuple[float, ...]:
    """Class weights N / (K count_k) (scikit-learn's "balanced"), for `class_weights`."""
    counts = np.bincount(labels, minlength=num_classes)
    return tuple(float(len(labels) / (num_classes * max(c, 1))) for c in counts)


def dataset(
    cohort: Cohort, config: ACGANTrainConfig, *, process_index: int = 0, process_count: int = 1
) -> grain.IterDataset:
    """Batches for one process: dicts of image [B_local, S, S, C], label [B_local], index [B_local].

    The seeded global order (a new shuffle every epoch) is cut into blocks of B_local examples and
    process i takes blocks i, i + n, ...: stacked in process order, they are the global batch.
    """
    parallel.check_divisible(
        "ACGANTrainConfig.batch_size", config.batch_size, process_count, "processes"
    )
    local = config.batch_size // process_count
    examples = [
        {"image": cohort.images[i], "label": cohort.labels[i], "index": np.int32(i)}
        for i in range(len(cohort))
    ]
    ds = grain.MapDataset.source(examples).seed(config.seed).shuffle().repeat()
    ds = ds.batch(local, drop_remainder=True)[process_index::process_count]
    return ds.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4))


def fit_batch(config: ACGANTrainConfig, n_examples: int, n_devices: int) -> ACGANTrainConfig:
    """A batch no larger than a small cohort, kept a multiple of the device count; says so."""
    batch = config.batch_size
    fitted = min(batch, max(n_devices, n_examples // n_devices * n_devices))
    if fitted != batch:
        print(f"batch size {batch} > {n_examples} examples: using {fitted} ({n_devices} devices)")
        config = dataclasses.replace(config, batch_size=fitted)
    return config


# --- losses and the step -----------------------------------------------------------------------


def optimizers(config: ACGANTrainConfig) -> dict[str, optax.GradientTransformation]:
    return {
        "g": optax.adam(config.g_lr, b1=config.b1, b2=config.b2),
        "d": optax.adam(config.d_lr, b1=config.b1, b2=config.b2),
    }


def fakes(key: jax.Array, n: int, config: ACGANTrainConfig) -> tuple[jax.Array, jax.Array]:
    """(class labels int32 [n] from `fake_class_prior`, z [n, latent]) for this device's n fakes;
    the same draws however the batch is split (one key per example of the global batch)."""
    m = config.model
    prior = config.fake_class_prior or (1.0 / m.num_classes,) * m.num_classes
    log_prior = jnp.log(jnp.asarray(prior, jnp.float32))

    def one(k):
        k_label, k_z = jax.random.split(k)
        return jax.random.categorical(k_label, log_prior), jax.random.normal(k_z, (m.latent_dim,))

    labels, z = jax.vmap(one)(parallel.example_keys(key, n))
    return labels.astype(jnp.int32), z


def _bce(logits: jax.Array, real: bool) -> jax.Array:
    """Mean binary cross-entropy of sigmoid(logits) against all-real or all-fake targets."""
    return jnp.mean(jax.nn.softplus(-logits if real else logits))


def class_loss(logits, labels, config: ACGANTrainConfig, axis_name: str | None = parallel.DATA):
    """Log-softmax cross-entropy, this device's share of the global (weighted) mean."""
    ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
    if config.class_weights is None:
        return jnp.mean(ce)
    w = jnp.asarray(config.class_weights, jnp.float32)[labels]
    norm = jnp.mean(w) if axis_name is None else jax.lax.pmean(jnp.mean(w), axis_name)
    return jnp.mean(w * ce) / norm  # the pmean of this is sum(w ce) / sum(w) over the batch


def _accuracy(logits, labels):
    return jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))


def _fake(g_params, stats, labels, z, config: ACGANTrainConfig):
    """(fakes [B, S, S, C] of classes `labels` [B], updated running stats): training mode."""
    onehot = jax.nn.one_hot(labels, config.model.num_classes)
    inputs = model.generator_input(onehot, z)
    return model.apply_generator(
        g_params, inputs, config.model, parallel.DATA, stats=stats, update=True
    )


def d_loss(d_params, g_params, stats, batch, fake, config: ACGANTrainConfig):
    """(loss, (metrics, updated running stats)) of the discriminator on this device's share;
    `fake` = (labels [B], z [B, latent]) of the fakes."""
    m, y, (c, z) = config.model, batch["label"], fake
    images, stats = _fake(g_params, stats, c, z, config)
    real_logit, real_class = model.apply_discriminator(d_params, batch["image"], m)
    fake_logit, fake_class = model.apply_discriminator(d_params, jax.lax.stop_gradient(images), m)
    adversarial = _bce(real_logit, True) + _bce(fake_logit, False)
    real_ce, fake_ce = class_loss(real_class, y, config), class_loss(fake_class, c, config)
    metrics = {
        "d_adv": adversarial,
        "d_class_real": real_ce,
        "d_class_fake": fake_ce,
        "d_acc_real": _accuracy(real_class, y),
    }
    return adversarial + config.alpha * (real_ce + fake_ce), (metrics, stats)


def g_loss(g_params, d_params, stats, fake, config: ACGANTrainConfig):
    """(loss, (metrics, updated running stats)) of the generator on this device's share;
    `fake` = (labels [B], z [B, latent]), drawn afresh for this update."""
    c, z = fake
    images, stats = _fake(g_params, stats, c, z, config)
    logit, classes = model.apply_discriminator(d_params, images, config.model)
    adversarial, ce = _bce(logit, True), class_loss(classes, c, config)
    metrics = {"g_adv": adversarial, "g_class": ce, "g_acc": _accuracy(classes, c)}
    return adversarial + config.alpha * ce, (metrics, stats)


def _pmean(tree):
    return jax.tree.map(lambda x: jax.lax.pmean(x, parallel.DATA), tree)


def train_step(state: state_lib.TrainState, batch: dict, key: jax.Array, *, config):
    """D then G on this device's share of the batch (inside `parallel.data_parallel`), each
    with its own fakes (labels and z drawn from `fold_in(key, step)`)."""
    opts = optimizers(config)
    n = batch["label"].shape[0]
    d_key, g_key = jax.random.split(jax.random.fold_in(key, state.step))
    params, opt_state = state.params, state.opt_state
    stats = state.stats.get("batch_stats", {})
    # float16: each component's loss scaled dynamically (loss_scale); other dtypes: None
    scaled = loss_scale.wanted(config.model.dtype)
    scales = state.stats.get("loss_scale", {})
    (dl, (d_metrics, new_stats)), grads, d_ok = loss_scale.mean_value_and_grad(
        d_loss, scales.get("d"), has_aux=True
    )(params["d"], params["g"], stats, batch, fakes(d_key, n, config), config)
    stats = loss_scale.keep_if(d_ok, new_stats, stats) if scaled else new_stats
    d_params, d_opt = loss_scale.apply_gradients(
        params["d"], opt_state["d"], grads, opts["d"], d_ok, scaled
    )
    (gl, (g_metrics, new_stats)), grads, g_ok = loss_scale.mean_value_and_grad(
        g_loss, scales.get("g"), has_aux=True
    )(params["g"], d_params, stats, fakes(g_key, n, config), config)
    stats = loss_scale.keep_if(g_ok, new_stats, stats) if scaled else new_stats
    g_params, g_opt = loss_scale.apply_gradients(
        params["g"], opt_state["g"], grads, opts["g"], g_ok, scaled
    )
    new_stats, metrics = {"batch_stats": stats} if stats else {}, {}
    if scaled:
        new_stats["loss_scale"] = {"d": loss_scale.next_scale(scales["d"], d_ok),
                                   "g": loss_scale.next_scale(scales["g"], g_ok)}  # fmt: skip
        metrics = {"d_loss_scale": scales["d"]["scale"], "g_loss_scale": scales["g"]["scale"],
                   "d_skipped": 1 - d_ok.astype(jnp.float32),
                   "g_skipped": 1 - g_ok.astype(jnp.float32)}  # fmt: skip
    new_state = state.replace(
        params={"g": g_params, "d": d_params},
        opt_state={"g": g_opt, "d": d_opt},
        step=state.step + 1,
        stats=new_stats,
    )
    metrics = {"d_loss": dl, "g_loss": gl, **metrics, **_pmean({**d_metrics, **g_metrics})}
    return new_state, metrics


# --- building blocks of a run --------------------------------------------------------------------


def init_state(config: ACGANTrainConfig) -> state_lib.TrainState:
    """The state before step 1, from `config.seed` alone."""
    init_key, run_key = jax.random.split(jax.random.key(config.seed))
    params = model.init(init_key, config.model)
    stats = {"batch_stats": model.init_stats(config.model)}
    if loss_scale.wanted(config.model.dtype):
        stats["loss_scale"] = loss_scale.initial(("d", "g"))
    stats = {k: v for k, v in stats.items() if v}
    return state_lib.create(params, optimizers(config), run_key, stats=stats)


def make_state(config: ACGANTrainConfig, mesh) -> state_lib.TrainState:
    """The initial state, born replicated on `mesh`."""
    return state_lib.born_replicated(functools.partial(init_state, config), mesh)


def make_step(config: ACGANTrainConfig, mesh):
    """The jitted data-parallel step `(state, batch) -> (state, metrics)` for `mesh`."""
    parallel.check_divisible("ACGANTrainConfig.batch_size", config.batch_size, mesh.size)
    return parallel.cached_step(train_step, config, mesh)


def class_prior(cohort: Cohort, config: ACGANTrainConfig) -> tuple[float, ...]:
    """The cohort's class frequencies, in class index order."""
    counts = np.bincount(cohort.labels, minlength=config.model.num_classes)
    return tuple((counts / counts.sum()).tolist())


def run_info(config: ACGANTrainConfig, cohort: Cohort, class_column: str = "region") -> dict:
    """config.json of a run: the config plus what generation needs (class names, data)."""
    return {
        **as_json(config),
        "family": FAMILY,
        "data": cohort.source,
        "class_column": class_column,
        "classes": list(cohort.classes),
        "class_prior": list(class_prior(cohort, config)),  # for drawing synthetic labels
    }


def run(
    out_dir: str | os.PathLike,
    data: str | os.PathLike | Cohort,
    *,
    steps: int,
    config: ACGANTrainConfig | None = None,
    class_column: str = "region",
    resume: bool = False,
    checkpoint_every: int = 500,
    keep: int = 3,
    log_every: int = 1,
    progress: bool = True,
    hooks: Sequence[loop.Hook] = (),
    devices: Sequence[jax.Device] | None = None,
) -> state_lib.TrainState:
    """Train the AC-GAN on `data` (a folder, `phantom:vertebra:N` or a `Cohort`) into `out_dir`.

    Writes config.json ("family": "acgan", class names and prior), metrics.jsonl and
    checkpoints/<step>/ (every `checkpoint_every` steps and at the end). `resume` continues from
    the latest checkpoint. Every process of a multi-host run calls this with the same arguments.
    A config without `fake_class_prior` gets the data's class frequencies (saved with the run).
    """
    parallel.initialize_distributed()
    config = config or ACGANTrainConfig()
    cohort = load_cohort(data, config, class_column)
    mesh = parallel.make_mesh(devices)
    config = fit_batch(config, len(cohort), mesh.size)
    if config.fake_class_prior is None:  # the reference: fakes' labels with the data's prior
        config = dataclasses.replace(config, fake_class_prior=class_prior(cohort, config))
    settings = loop.LoopConfig(
        steps=steps,
        checkpoint_every=checkpoint_every,
        keep=keep,
        log_every=log_every,
        progress=progress,
    )
    data_iter = iter(
        dataset(
            cohort, config, process_index=jax.process_index(), process_count=jax.process_count()
        )
    )
    return loop.run(
        out_dir,
        config=config,
        info=run_info(config, cohort, class_column),
        mesh=mesh,
        init=functools.partial(init_state, config),
        step_fn=make_step(config, mesh),
        data_iter=data_iter,
        settings=settings,
        resume=resume,
        hooks=hooks,
    )
