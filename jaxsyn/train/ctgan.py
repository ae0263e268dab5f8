"""Training CTGAN on a table: WGAN-GP with PacGAN, conditional vectors, training-by-sampling.

    jaxsyn train ctgan --data table.csv --out runs/tab --epochs 300 [--discrete a,b] [--id-column id]

    ctgan.run("runs/tab", df, epochs=300)             # from Python; then
    TableSynthesizer.load("runs/tab").sample(1000, conditions={"sex": 2}, key=0)

One step (reference `ctgan/synthesizers/ctgan.py` fit, with discriminator_steps = 1):
  D step  L_D = -(mean D(real ⊕ c_real) - mean D(G(z, c) ⊕ c)) + 10 · GP, where the gradient
          penalty takes one interpolation weight per pac group and the L2 norm of the gradient
          over the whole group (ctgan.py calc_gradient_penalty); dropout is on in every critic
          call, the penalty's included.
  G step  L_G = -mean D(G(z', c') ⊕ c') + Σ_rows CE(pre-Gumbel logits, c') / B, fresh z', c'.
Adam lr 2e-4, betas (0.5, 0.9), eps 1e-8, with L2 weight decay 1e-6 added to the gradient before
the moments (torch.optim.Adam(weight_decay=1e-6): coupled, not AdamW), for both networks.

The batch is drawn on device inside the step (`jaxsyn.data.tabular.draw`): the encoded table
and the sampler's index live on every device, each example's condition, real row, noise and
Gumbel draws come from keys folded from (run key, step, example index), and each pac group's
dropout masks and interpolation weight from (run key, step, group index). So a step on 8 devices
draws exactly what a step on 1 device draws, BatchNorm statistics are the global batch's, and a
resumed run needs only its state. One deliberate difference from the reference: the real half
draws its own conditions, where the reference pairs it with a permutation of the fake half's
(the same distribution per example, without a cross-device shuffle).

An epoch is max(N // batch_size, 1) steps (ctgan.py fit), so `epochs` means what it means there.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from jaxsyn import files
from jaxsyn.checkpoint import as_json
from jaxsyn.data.clinical import read_table
from jaxsyn.data.tabular import (
    ConditionSampler,
    SamplerArrays,
    TableSchema,
    TableTransformer,
    TransformerConfig,
    draw,
    infer_schema,
)
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.infer import run_info
from jaxsyn.infer.ctgan import COUNTS_FILE, TRANSFORMER_FILE
from jaxsyn.models import ctgan as model
from jaxsyn.models.ctgan import CTGANConfig
from jaxsyn.train import loop, parallel
from jaxsyn.train import state as state_lib


@dataclasses.dataclass(frozen=True, kw_only=True)
class CTGANTrainConfig:
    """`jaxsyn train ctgan --data table.csv --out runs/tab --epochs 300`

    What determines a run's numbers; a resumed run must have the same (checked on restore).
    `model` is bound to the table's encoded layout when the run starts.
    """

    model: CTGANConfig = dataclasses.field(default_factory=CTGANConfig)
    transformer: TransformerConfig = dataclasses.field(default_factory=TransformerConfig)
    seed: int = 0  # transformer's mode draws, init, every batch and every noise draw
    # ctgan.py CTGAN(batch_size=500); a multiple of pac x devices. None (ours, opt-in) =
    # `auto_batch` of the table: tuned on flchain, it did not help on the four real tables
    batch_size: int | None = 500
    g_lr: float = 2e-4  # ctgan.py generator_lr
    d_lr: float = 2e-4  # ctgan.py discriminator_lr
    b1: float = 0.5  # ctgan.py Adam betas=(0.5, 0.9)
    b2: float = 0.9
    g_decay: float = 1e-6  # ctgan.py generator_decay (coupled L2)
    d_decay: float = 1e-6  # ctgan.py discriminator_decay (coupled L2)
    gp_lambda: float = 10.0  # ctgan.py calc_gradient_penalty(lambda_=10)
    log_frequency: bool = True  # ctgan.py CTGAN(log_frequency=True)
    # Ours: the share of training conditions that name several discrete columns (sampler.py);
    # 0 is the reference's single-column conditioning.
    extra_condition_p: float = 0.5

    def __post_init__(self):
        if self.batch_size is not None and (
            self.batch_size < 1 or self.batch_size % self.model.pac
        ):
            raise ConfigError(
                f"CTGANTrainConfig.batch_size is {self.batch_size}; expected a positive multiple "
                f"of pac {self.model.pac}"
            )
        if not 0.0 <= self.extra_condition_p <= 1.0:
            raise ConfigError(
                f"CTGANTrainConfig.extra_condition_p is {self.extra_condition_p}; expected [0, 1]"
            )

    @classmethod
    def tiny(cls, **overrides) -> CTGANTrainConfig:
        """Small networks for tests and smoke runs (batch 80 = 8 devices x pac 10)."""
        small = CTGANConfig(embedding_dim=16, generator_dim=(32, 32), discriminator_dim=(32, 32))
        fields = {"model": small, "batch_size": 80}
        return cls(**{**fields, **overrides})


class TableArrays(NamedTuple):
    """What the step reads besides its state, replicated on every device."""

    data: jax.Array  # float32 [N, data_dim] the encoded training table
    index: SamplerArrays


def optimizers(config: CTGANTrainConfig) -> dict[str, optax.GradientTransformation]:
    """Adam with coupled L2 decay, as torch.optim.Adam(weight_decay=...) (not AdamW)."""

    def adam(lr, decay):
        return optax.chain(
            optax.add_decayed_weights(decay),
            optax.scale_by_adam(b1=config.b1, b2=config.b2, eps=1e-8),
            optax.scale(-lr),
        )

    return {"g": adam(config.g_lr, config.g_decay), "d": adam(config.d_lr, config.d_decay)}


# --- the step ------------------------------------------------------------------------------------


def split_each(keys: jax.Array, n: int) -> tuple[jax.Array, ...]:
    """[B] keys -> n arrays of [B] keys, each key split n ways."""
    parts = jax.vmap(lambda k: jax.random.split(k, n))(keys)
    return tuple(parts[:, i] for i in range(n))


def _fake(g_params, stats, keys, table: TableArrays, config: CTGANTrainConfig):
    """Conditions, raw logits, activated rows and updated BatchNorm running statistics for this
    device's examples (one key each); batch statistics over the global batch."""
    m = config.model
    k_cond, k_z, k_gumbel = split_each(keys, 3)
    cb = draw(table.index, k_cond, config.extra_condition_p)
    logits, stats = model.apply_generator(
        g_params, model.noise(k_z, m), cb.cond, m, parallel.DATA, stats=stats, update=True
    )
    return cb.cond, logits, model.activate(logits, cb.cond, k_gumbel, m), stats


def d_loss(
    d_params, real, real_cond, fake, fake_cond, group_keys, config: CTGANTrainConfig, critic=None
):
    """Wasserstein critic loss + gradient penalty, over this device's pac groups. `critic(d_params,
    x, keys)` scores inputs x = [row; condition] [B, data_dim + cond_dim] -> [B / pac] (None:
    CTGAN's Discriminator; MMCGAN passes its critic with the projection term): real rows, fakes
    and the penalty's interpolates all go through it."""
    m = config.model
    if critic is None:
        critic = lambda p, x, keys: model.Discriminator(m).apply({"params": p}, x, keys)  # noqa: E731
    k_real, k_fake, k_gp, k_alpha = split_each(group_keys, 4)
    real_in = jnp.concatenate([real, real_cond], -1)
    fake_in = jnp.concatenate([fake, fake_cond], -1)
    y_real = critic(d_params, real_in, k_real)
    y_fake = critic(d_params, fake_in, k_fake)
    wasserstein = -(jnp.mean(y_real) - jnp.mean(y_fake))
    groups = real_in.shape[0] // m.pac
    alpha = jax.vmap(jax.random.uniform)(k_alpha)  # one weight per pac group
    alpha = jnp.repeat(alpha, m.pac)[:, None]
    mixed = alpha * real_in + (1 - alpha) * fake_in

    def total(x):
        return jnp.sum(critic(d_params, x, k_gp))

    grad = jax.grad(total)(mixed).reshape(groups, -1)
    norm = jnp.sqrt(jnp.sum(jnp.square(grad), axis=-1))
    penalty = config.gp_lambda * jnp.mean(jnp.square(norm - 1.0))
    return wasserstein + penalty, {"wasserstein": wasserstein, "gp": penalty}


def g_loss(g_params, d_params, stats, keys, group_keys, table, config: CTGANTrainConfig):
    cond, logits, fake, stats = _fake(g_params, stats, keys, table, config)
    score = model.apply_discriminator(d_params, fake, cond, config.model, group_keys)
    ce = jnp.mean(model.cond_loss(logits, cond, config.model))  # sum over rows / batch size
    adversarial = -jnp.mean(score)
    return adversarial + ce, ({"cond_loss": ce}, stats)


def train_step(state: state_lib.TrainState, table: TableArrays, *, config, n_local: int):
    """A D update then a G update on this device's n_local examples (inside shard_map).

    The generator runs twice (for D's fakes, then for G's), each time in training mode, so its
    BatchNorm running averages advance twice a step, as PyTorch's do in the reference."""
    opts = optimizers(config)
    m = config.model
    key = jax.random.fold_in(state.key, state.step)
    k_d, k_real, k_dgroups, k_g, k_ggroups = jax.random.split(key, 5)
    ex = functools.partial(parallel.example_keys, n=n_local)
    groups = functools.partial(parallel.example_keys, n=n_local // m.pac)
    params, opt_state = state.params, state.opt_state

    stats = state.stats["batch_stats"]
    fake_cond, _, fake, stats = _fake(params["g"], stats, ex(k_d), table, config)
    real_cb = draw(table.index, ex(k_real), config.extra_condition_p)
    real = table.data[real_cb.rows]
    (dl, d_aux), grads = parallel.mean_value_and_grad(d_loss, has_aux=True)(
        params["d"], real, real_cb.cond, fake, fake_cond, groups(k_dgroups), config
    )
    d_params, d_opt = state_lib.apply_gradients(params["d"], opt_state["d"], grads, opts["d"])

    (gl, (g_aux, stats)), grads = parallel.mean_value_and_grad(g_loss, has_aux=True)(
        params["g"], d_params, stats, ex(k_g), groups(k_ggroups), table, config
    )
    g_params, g_opt = state_lib.apply_gradients(params["g"], opt_state["g"], grads, opts["g"])
    metrics = {
        "d_loss": dl,
        "g_loss": gl,
        **{k: jax.lax.pmean(v, parallel.DATA) for k, v in {**d_aux, **g_aux}.items()},
    }
    new = state.replace(
        params={"g": g_params, "d": d_params},
        opt_state={"g": g_opt, "d": d_opt},
        stats={"batch_stats": stats},
        step=state.step + 1,
    )
    return new, metrics


def init_state(config: CTGANTrainConfig) -> state_lib.TrainState:
    """The state before step 1 from the (bound) config and its seed."""
    init_key, run_key = jax.random.split(jax.random.key(config.seed))
    params = model.init(init_key, config.model)
    stats = {"batch_stats": model.init_stats(config.model)}
    return state_lib.create(params, optimizers(config), run_key, stats=stats)


def make_step(config: CTGANTrainConfig, mesh, table: TableArrays):
    """The jitted data-parallel step `(state, None) -> (state, metrics)` over `table`."""
    per_device = config.batch_size // mesh.size if config.batch_size % mesh.size == 0 else 0
    if not per_device or per_device % config.model.pac:
        raise ConfigError(
            f"CTGANTrainConfig.batch_size is {config.batch_size}; expected a multiple of "
            f"{mesh.size} devices x pac {config.model.pac} = {mesh.size * config.model.pac} "
            "(set --config.batch_size, or train on fewer devices)"
        )
    body = functools.partial(train_step, config=config, n_local=per_device)
    sharded = jax.shard_map(
        body, mesh=mesh, in_specs=(jax.P(), jax.P()), out_specs=(jax.P(), jax.P())
    )
    jitted = jax.jit(sharded, donate_argnums=(0,))
    replicated = jax.device_put(table, parallel.replicated(mesh))
    return lambda state, _batch: jitted(state, replicated)


# --- a run ---------------------------------------------------------------------------------------


def steps_per_epoch(n_rows: int, batch_size: int) -> int:
    """ctgan.py fit: max(N // batch_size, 1) steps make an epoch."""
    return max(n_rows // batch_size, 1)


AUTO_STEPS, AUTO_MIN, AUTO_MAX = 30, 50, 500


def auto_batch(n_rows: int, pac: int, n_devices: int = 1) -> int:
    """The batch `batch_size=None` picks for a table of `n_rows` (opt-in): the largest multiple
    of pac x devices that gives AUTO_STEPS (30) steps an epoch, within [50, 500] (each bound
    rounded to that multiple).

    ctgan.py's fixed 500 gives a table of a few hundred rows one step an epoch. On the tuning
    table (flchain, experiments/tabular_real/tune.py, 375 and 1500 training rows, 10 seeds)
    batch 50 scored +0.015 quality at 100 epochs and +0.014 / +0.036 at 300 against 500, and
    batches 100 and 200 did not. On the four real tables it gave 50 everywhere and did not
    help: quality against batch 500 -0.016 to +0.025 at 100 epochs (mean +0.003), -0.048
    (WHAS500) to +0.030 at 300 (mean -0.003); experiments/tabular_real/RESULTS.md, arm
    auto-batch. So it is not the default."""
    unit = pac * n_devices
    lo = -(-AUTO_MIN // unit) * unit
    hi = max(lo, AUTO_MAX // unit * unit)
    return min(max(n_rows // AUTO_STEPS // unit * unit, lo), hi)


def resolve_batch(
    config: CTGANTrainConfig, n_rows: int, n_devices: int, out_dir: Path, resume: bool
) -> CTGANTrainConfig:
    """`config` with its batch size decided: as given; else, resuming, the run's own; else
    `auto_batch` of the table."""
    if config.batch_size is not None:
        return config
    if resume and (out_dir / "config.json").is_file():  # loop.run wrote it
        batch = run_info(out_dir, ("ctgan",)).get("batch_size")
        if batch is not None:
            return dataclasses.replace(config, batch_size=int(batch))
    return dataclasses.replace(config, batch_size=auto_batch(n_rows, config.model.pac, n_devices))


def prepare(
    table: pd.DataFrame | str | os.PathLike,
    out_dir: str | os.PathLike,
    config: CTGANTrainConfig,
    *,
    schema: TableSchema | None = None,
    discrete: Sequence[str] = (),
    id_column: str | None = None,
    progress: bool = True,
) -> tuple[TableTransformer, np.ndarray]:
    """The run's transformer and the encoded table: fitted and saved in `out_dir`, or loaded from
    there when a run is resumed (so a resume neither refits nor changes the encoding)."""
    df = table if isinstance(table, pd.DataFrame) else read_table(table)
    source = "table" if isinstance(table, pd.DataFrame) else str(table)
    path = Path(out_dir) / TRANSFORMER_FILE
    if path.is_file():
        transformer = TableTransformer.load(path)
    else:
        if schema is None:
            kinds = dict.fromkeys(discrete, "categorical")
            schema = infer_schema(df, id_column=id_column, kinds=kinds)
        elif discrete or id_column:
            raise ConfigError("give either schema or discrete/id_column, not both")
        transformer = TableTransformer.fit(df, schema, config=config.transformer, progress=progress)
    try:
        transformer.schema.check_columns(df, source)
    except DataError as e:
        raise DataError(f"{e} (the run in {out_dir} was fitted on another table)") from None
    data = transformer.transform(df, jax.random.key(config.seed), progress=progress)
    return transformer, np.asarray(data, np.float32)


def run(
    out_dir: str | os.PathLike,
    table: pd.DataFrame | str | os.PathLike,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    config: CTGANTrainConfig | None = None,
    schema: TableSchema | None = None,
    discrete: Sequence[str] = (),
    id_column: str | None = None,
    resume: bool = False,
    checkpoint_every: int = 500,
    keep: int = 3,
    log_every: int = 1,
    progress: bool = True,
    devices: Sequence[jax.Device] | None = None,
) -> state_lib.TrainState:
    """Train CTGAN on `table` (a DataFrame or a CSV/Parquet path) into `out_dir`.

    Writes transformer.json (schema included), condition_counts.json, config.json,
    metrics.jsonl and checkpoints/. Give `epochs` (as the reference counts them) or `steps`.
    `discrete` forces columns to be categorical; `id_column` names the id (default: detected).
    """
    if (epochs is None) == (steps is None):
        raise ConfigError("give exactly one of epochs and steps")
    parallel.initialize_distributed()
    config = config or CTGANTrainConfig()
    out_dir = Path(out_dir)
    if not resume and (out_dir / TRANSFORMER_FILE).exists():
        raise ConfigError(
            f"{out_dir} already holds a run; expected a new folder (or --resume / resume=True to continue it)"
        )
    transformer, data = prepare(
        table, out_dir, config, schema=schema, discrete=discrete, id_column=id_column,
        progress=progress,
    )  # fmt: skip
    config = dataclasses.replace(config, model=config.model.bind(transformer.layout))
    sampler = ConditionSampler.from_data(
        transformer.layout, data, log_frequency=config.log_frequency
    )
    mesh = parallel.make_mesh(devices)
    config = resolve_batch(config, len(data), mesh.size, out_dir, resume)
    per_epoch = steps_per_epoch(len(data), config.batch_size)
    total = steps if steps is not None else epochs * per_epoch
    if jax.process_index() == 0:
        transformer.save(out_dir / TRANSFORMER_FILE)
        files.write_json(out_dir / COUNTS_FILE, counts_json(transformer, sampler.counts))
    table_arrays = TableArrays(jnp.asarray(data), jax.tree.map(jnp.asarray, sampler.arrays))
    info = {**as_json(config), "family": "ctgan", "rows": len(data), "steps_per_epoch": per_epoch}
    return loop.run(
        out_dir,
        config=config,
        info=info,
        mesh=mesh,
        init=functools.partial(init_state, config),
        step_fn=make_step(config, mesh, table_arrays),
        data_iter=None,
        settings=loop.LoopConfig(
            steps=total,
            checkpoint_every=checkpoint_every,
            keep=keep,
            log_every=log_every,
            progress=progress,
        ),
        resume=resume,
    )


def counts_json(transformer: TableTransformer, counts: np.ndarray) -> dict[str, Any]:
    """{discrete column: [training rows per category slot]}: aggregate counts, no rows."""
    names = [c.name for c in transformer.schema.columns if c.discrete]
    widths = [s.width for s in transformer.layout.cond_spans]
    edges = np.cumsum([0, *widths])
    return {n: counts[edges[j] : edges[j + 1]].astype(int).tolist() for j, n in enumerate(names)}
