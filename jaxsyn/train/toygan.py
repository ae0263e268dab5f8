"""Training the toy conditional GAN: data, losses, the step, and `run`.

`jaxsyn train toygan --out runs/toy --steps 2000 --seed 0`

Data: a mixture of Gaussians in the plane, one component per class, held in memory and served
by a Grain pipeline (shuffled per epoch from the seed, sharded by process, resumable).
Step: a discriminator update, then a generator update against the new discriminator, each on its
own schedule, with the non-saturating BCE losses of Goodfellow et al. 2014 (section 3).
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

from jaxsyn.checkpoint import as_json
from jaxsyn.errors import ConfigError
from jaxsyn.models import toygan as model
from jaxsyn.train import loop, parallel
from jaxsyn.train import state as state_lib


@dataclasses.dataclass(frozen=True, kw_only=True)
class ToyTrainConfig:
    """`jaxsyn train toygan --out runs/toy --steps 2000 --seed 0`

    What determines a toy run's numbers: a resumed run must have the same (checked on restore).
    """

    model: model.ToyGANConfig = dataclasses.field(default_factory=model.ToyGANConfig)
    seed: int = 0  # data set, data order and every random draw of the run
    batch_size: int = 64  # global: split over processes, then over each process's devices
    # Adam with DCGAN's b1 = 0.5 (Radford et al. 2016, section 4); 5x its lr of 2e-4, so the toy
    # converges in ~2000 steps (measured: class means within 0.05 of their centres).
    g_lr: float = 1e-3
    d_lr: float = 1e-3
    b1: float = 0.5
    b2: float = 0.999
    g_every: int = 1  # update the generator in every g_every-th step
    d_every: int = 1
    points_per_class: int = 256  # size of the in-memory data set
    radius: float = 2.0  # class centres sit on a circle of this radius
    spread: float = 0.1  # standard deviation of each component

    def __post_init__(self):
        for name in ("batch_size", "g_every", "d_every", "points_per_class"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ToyTrainConfig.{name} is {getattr(self, name)}; expected >= 1")

    @classmethod
    def tiny(cls, **overrides) -> ToyTrainConfig:
        """The preset every test and smoke run uses."""
        fields = dict(model=model.ToyGANConfig.tiny(), batch_size=16, points_per_class=16)
        return cls(**{**fields, **overrides})


# --- data ------------------------------------------------------------------------------------


def mixture(config: ToyTrainConfig) -> list[dict[str, np.ndarray]]:
    """The data set: points_per_class points around each class centre, as a list of examples.

    Each example: x float32 [data_dim], label int32 [], index int32 [] (its row in the data set).
    """
    rng = np.random.default_rng(config.seed)
    m = config.model
    angles = 2 * np.pi * np.arange(m.num_classes) / m.num_classes
    centres = np.zeros((m.num_classes, m.data_dim), np.float32)
    centres[:, 0] = config.radius * np.cos(angles)
    if m.data_dim > 1:
        centres[:, 1] = config.radius * np.sin(angles)
    labels = np.repeat(np.arange(m.num_classes), config.points_per_class).astype(np.int32)
    x = centres[labels] + config.spread * rng.standard_normal((len(labels), m.data_dim))
    return [
        {"x": x[i].astype(np.float32), "label": labels[i], "index": np.int32(i)}
        for i in range(len(labels))
    ]


def dataset(
    config: ToyTrainConfig, *, process_index: int = 0, process_count: int = 1
) -> grain.IterDataset:
    """Batches for one process: dicts of x [B_local, data_dim], label [B_local], index [B_local].

    The seeded global order (a new shuffle every epoch) is cut into blocks of B_local examples and
    process i takes blocks i, i + n, i + 2n, ...: at every step the processes' blocks, stacked in
    process order, are exactly the global batch a single process would read.
    """
    parallel.check_divisible(
        "ToyTrainConfig.batch_size", config.batch_size, process_count, "processes"
    )
    local = config.batch_size // process_count
    ds = grain.MapDataset.source(mixture(config)).seed(config.seed).shuffle().repeat()
    ds = ds.batch(local, drop_remainder=True)[process_index::process_count]
    # A few threads are plenty for an in-memory source; the default 16 would crowd a small CPU.
    return ds.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4))


# --- losses and the step -----------------------------------------------------------------------


def optimizers(config: ToyTrainConfig) -> dict[str, optax.GradientTransformation]:
    return {
        "g": optax.adam(config.g_lr, b1=config.b1, b2=config.b2),
        "d": optax.adam(config.d_lr, b1=config.b1, b2=config.b2),
    }


def latents(key: jax.Array, n: int, config: ToyTrainConfig) -> jax.Array:
    """z [n, latent_dim] for this device's examples; the same draws however the batch is split."""
    keys = parallel.example_keys(key, n)
    return jax.vmap(lambda k: jax.random.normal(k, (config.model.latent_dim,)))(keys)


def d_loss(d_params, g_params, batch, z, config: ToyTrainConfig) -> jax.Array:
    """Non-saturating BCE for the discriminator: -log D(x) - log(1 - D(G(z))), local mean."""
    fake = model.apply_generator(g_params, z, batch["label"], config.model, parallel.DATA)
    real_logits = model.apply_discriminator(d_params, batch["x"], batch["label"], config.model)
    fake_logits = model.apply_discriminator(
        d_params, jax.lax.stop_gradient(fake), batch["label"], config.model
    )
    return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def g_loss(g_params, d_params, batch, z, config: ToyTrainConfig) -> jax.Array:
    """Non-saturating generator loss -log D(G(z)), local mean."""
    fake = model.apply_generator(g_params, z, batch["label"], config.model, parallel.DATA)
    logits = model.apply_discriminator(d_params, fake, batch["label"], config.model)
    return jnp.mean(jax.nn.softplus(-logits))


def d_step(d_params, d_opt, *, g_params, batch, z, config, optimizer):
    """One discriminator update; returns ((d_params, d_opt), metrics)."""
    loss, grads = parallel.mean_value_and_grad(d_loss)(d_params, g_params, batch, z, config)
    d_params, d_opt = state_lib.apply_gradients(d_params, d_opt, grads, optimizer)
    return (d_params, d_opt), {"d_loss": loss}


def g_step(g_params, g_opt, *, d_params, batch, z, config, optimizer):
    """One generator update against `d_params`; returns ((g_params, g_opt), metrics)."""
    loss, grads = parallel.mean_value_and_grad(g_loss)(g_params, d_params, batch, z, config)
    g_params, g_opt = state_lib.apply_gradients(g_params, g_opt, grads, optimizer)
    return (g_params, g_opt), {"g_loss": loss}


def train_step(state: state_lib.TrainState, batch: dict, key: jax.Array, *, config):
    """D then G on this device's share of the batch (inside `parallel.data_parallel`)."""
    opts = optimizers(config)
    kd, kg = jax.random.split(jax.random.fold_in(key, state.step))
    n = batch["label"].shape[0]
    params, opt_state = state.params, state.opt_state
    d_update = functools.partial(
        d_step, g_params=params["g"], batch=batch, z=latents(kd, n, config), config=config,
        optimizer=opts["d"],
    )  # fmt: skip
    (d_params, d_opt), d_metrics = state_lib.scheduled(
        state_lib.is_due(state.step, config.d_every), d_update, params["d"], opt_state["d"]
    )
    g_update = functools.partial(
        g_step, d_params=d_params, batch=batch, z=latents(kg, n, config), config=config,
        optimizer=opts["g"],
    )  # fmt: skip
    (g_params, g_opt), g_metrics = state_lib.scheduled(
        state_lib.is_due(state.step, config.g_every), g_update, params["g"], opt_state["g"]
    )
    new_state = state.replace(
        params={"g": g_params, "d": d_params},
        opt_state={"g": g_opt, "d": d_opt},
        step=state.step + 1,
    )
    return new_state, {**d_metrics, **g_metrics}


# --- building blocks of a run --------------------------------------------------------------------


def init_state(config: ToyTrainConfig) -> state_lib.TrainState:
    """The state before step 1, from `config.seed` alone."""
    init_key, run_key = jax.random.split(jax.random.key(config.seed))
    params = model.init(init_key, config.model)
    return state_lib.create(params, optimizers(config), run_key)


def make_state(config: ToyTrainConfig, mesh) -> state_lib.TrainState:
    """The initial state, born replicated on `mesh` (computed there: no host copy to transfer)."""
    return state_lib.born_replicated(functools.partial(init_state, config), mesh)


def abstract_state(config: ToyTrainConfig, mesh) -> state_lib.TrainState:
    """Shapes, dtypes and shardings of the state, without computing it: the restore target."""
    return state_lib.abstract_replicated(functools.partial(init_state, config), mesh)


def make_step(config: ToyTrainConfig, mesh):
    """The jitted data-parallel step `(state, batch) -> (state, metrics)` for `mesh`."""
    parallel.check_divisible("ToyTrainConfig.batch_size", config.batch_size, mesh.size)
    return parallel.cached_step(train_step, config, mesh)


def run(
    out_dir: str | os.PathLike,
    *,
    steps: int,
    seed: int | None = None,
    resume: bool = False,
    checkpoint_every: int = 100,
    config: ToyTrainConfig | None = None,
    keep: int = 3,
    log_every: int = 1,
    progress: bool = True,
    hooks: Sequence[loop.Hook] = (),
    devices: Sequence[jax.Device] | None = None,
) -> state_lib.TrainState:
    """Train the toy GAN into `out_dir`; returns the final state.

    Writes `config.json`, `metrics.jsonl` (one line per logged step) and `checkpoints/<step>/`
    (every `checkpoint_every` steps and at the end). `resume` continues from the latest
    checkpoint (from scratch if there is none yet); without it an existing checkpoint is an error.
    `seed`, when given, replaces `config.seed` (default `ToyTrainConfig()`). Multi-host: every process calls this with the same arguments.
    """
    parallel.initialize_distributed()
    config = config or ToyTrainConfig()
    config = config if seed is None else dataclasses.replace(config, seed=seed)
    settings = loop.LoopConfig(
        steps=steps,
        checkpoint_every=checkpoint_every,
        keep=keep,
        log_every=log_every,
        progress=progress,
    )
    mesh = parallel.make_mesh(devices)
    data_iter = iter(
        dataset(config, process_index=jax.process_index(), process_count=jax.process_count())
    )
    return loop.run(
        out_dir,
        config=config,
        info=as_json(config),
        mesh=mesh,
        init=functools.partial(init_state, config),
        step_fn=make_step(config, mesh),
        data_iter=data_iter,
        settings=settings,
        resume=resume,
        hooks=hooks,
    )
