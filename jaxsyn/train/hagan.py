"""Training HA-GAN: the reference's four-step iteration as one pure, data-parallel step.

    D step    BCE(D(real), 1) + BCE(D(G(z)), 0) [+ CE(class_real) + MSE(regression_real)]
    G step    BCE(D(G(z')), 1) [+ 0.1 (CE(class_fake) + MSE(regression_fake))], fresh z'
    E^H step  L1(G^H(E^H(real slab)), real slab)                             (G frozen)
    E^G step  ẑ = E^G(E^H(real volume, slab by slab)); (L1(G(ẑ) slab, real slab) + L1(G(ẑ) low, real low)) / 2
              (E^H and G frozen)

Batches come from `jaxsyn.data.pipeline` with `whole_volume=True` (E^G inverts whole volumes):
`slab` [B, S/8, S, S, 1], `low` [B, S/4³, 1], `volume` [B, S³, 1], `slab_index` [B] (multiples
of 4), `conditions` [B, C] (the class column first, then the continuous ones).
Unlike the reference, every example has its own slab position (the reference draws one per
batch), and the generated slab covers exactly the real slab's slices.
D's spectral-norm vectors advance once per D call, three times a step, as in the reference.
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

from jaxsyn.checkpoint import as_json
from jaxsyn.data.pipeline import PipelineConfig, make_dataset
from jaxsyn.data.preview import batch_example_image, save_grid
from jaxsyn.data.store import VolumeStore
from jaxsyn.data.volumes import unwindow
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.models import hagan as model
from jaxsyn.models.hagan import Discriminator, EncoderGlobal, EncoderHigh, Generator, HAGANConfig
from jaxsyn.train import loop, parallel
from jaxsyn.train import state as state_lib


@dataclasses.dataclass(frozen=True, kw_only=True)
class HAGANTrainConfig:
    """`jaxsyn train hagan --data STORE --out runs/hagan --steps 80000` (reference: 80000 its).

    What determines a run's numbers; a resumed run must have the same (checked on restore).
    """

    model: HAGANConfig = dataclasses.field(default_factory=HAGANConfig)
    seed: int = 0  # init, data order, slab positions and noise
    class_column: str | None = None  # integer table column 0..num_classes-1 (e.g. bmi_class)
    continuous_columns: tuple[str, ...] = ()  # float table columns, our extension
    read_threads: int = 4

    def __post_init__(self):
        if bool(self.class_column) != bool(self.model.num_classes):
            raise ConfigError(
                f"class_column is {self.class_column!r} and model.num_classes {self.model.num_classes}; expected both set or neither"
            )
        if len(self.continuous_columns) != self.model.num_continuous:
            raise ConfigError(
                f"continuous_columns has {len(self.continuous_columns)} names, model.num_continuous is {self.model.num_continuous}; expected equal"
            )

    @property
    def condition_columns(self) -> tuple[str, ...]:
        return ((self.class_column,) if self.class_column else ()) + tuple(self.continuous_columns)

    @classmethod
    def tiny(cls, **overrides) -> HAGANTrainConfig:
        return cls(**{"model": HAGANConfig.tiny(), **overrides})


def optimizers(config: HAGANConfig) -> dict[str, optax.GradientTransformation]:
    """Adam per network, betas (0, 0.999) (reference train.py)."""
    adam = functools.partial(optax.adam, b1=config.beta1, b2=config.beta2, eps=1e-8)
    return {
        "g": adam(config.lr_g),
        "d": adam(config.lr_d),
        "eh": adam(config.lr_e),
        "eg": adam(config.lr_e),
    }


def split_conditions(
    config: HAGANConfig, conditions: jax.Array
) -> tuple[jax.Array | None, jax.Array]:
    """[B, C] table values -> (class labels [B] int32 or None, continuous [B, M])."""
    if config.num_classes:
        return conditions[:, 0].astype(jnp.int32), conditions[:, 1:]
    return None, conditions


def condition_vector(config: HAGANConfig, labels, continuous) -> jax.Array:
    parts = [] if labels is None else [jax.nn.one_hot(labels, config.num_classes)]
    return jnp.concatenate([*parts, continuous.astype(jnp.float32)], axis=1)


def _bce(logits, target: float):
    return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target)).mean()


def _aux_loss(config, class_logits, regression, labels, continuous):
    """Class cross-entropy plus regression MSE (0 for an unconditional model)."""
    loss = jnp.float32(0)
    if config.num_classes:
        loss += optax.softmax_cross_entropy_with_integer_labels(class_logits, labels).mean()
    if config.num_continuous:
        loss += jnp.square(regression - continuous).mean()
    return loss


def _fake(config, g_params, z, cond, slab_index):
    """G's training forward with per-example slab positions: (low, slab)."""
    g = Generator(config)
    h = g.apply(
        {"params": g_params}, jnp.concatenate([z, cond], axis=1), method=Generator.hypercube
    )
    depth = config.size // 32
    h_slab = jax.vmap(lambda hi, s: jax.lax.dynamic_slice_in_dim(hi, s // 4, depth, axis=0))(
        h, slab_index
    )
    low = g.apply({"params": g_params}, h, method=Generator.low_res)
    return low, g.apply({"params": g_params}, h_slab, method=Generator.high_res)


def _discriminate(config, d_params, spectral, slab, low, slab_index):
    (logit, cls, reg), new = Discriminator(config).apply(
        {"params": d_params, "spectral": spectral}, slab, low, slab_index, mutable=["spectral"]
    )
    return (logit, cls, reg), new["spectral"]


def train_step(state: state_lib.TrainState, batch: dict, key: jax.Array, *, config: HAGANConfig):
    """One HA-GAN iteration on this device's share of the batch (inside `data_parallel`)."""
    opt = optimizers(config)
    key = jax.random.fold_in(key, state.step)
    b = batch["slab"].shape[0]
    z_keys = parallel.example_keys(key, b)  # the same noise however the batch is split
    z_d = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 0), (config.latent_dim,)))(
        z_keys
    )
    z_g = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 1), (config.latent_dim,)))(
        z_keys
    )
    labels, continuous = split_conditions(config, batch["conditions"])
    cond = condition_vector(config, labels, continuous)
    slab, low, idx = batch["slab"], batch["low"], batch["slab_index"]
    params, opt_state, spectral = dict(state.params), dict(state.opt_state), state.stats["spectral"]

    # 1. D step: G's output is a constant here.
    fake_low, fake_slab = jax.lax.stop_gradient(_fake(config, params["g"], z_d, cond, idx))

    def d_loss(d_params):
        (lr, cr, rr), sp = _discriminate(config, d_params, spectral, slab, low, idx)
        (lf, _, _), sp = _discriminate(config, d_params, sp, fake_slab, fake_low, idx)
        adv = _bce(lr, 1.0) + _bce(lf, 0.0)
        aux = _aux_loss(config, cr, rr, labels, continuous)
        return adv + aux, (sp, adv, aux)

    (d_total, (spectral, d_adv, d_aux)), grads = parallel.mean_value_and_grad(d_loss, has_aux=True)(
        params["d"]
    )
    params["d"], opt_state["d"] = state_lib.apply_gradients(
        params["d"], opt_state["d"], grads, opt["d"]
    )

    # 2. G step against the updated D, fresh noise.
    def g_loss(g_params):
        f_low, f_slab = _fake(config, g_params, z_g, cond, idx)
        (lf, cf, rf), sp = _discriminate(config, params["d"], spectral, f_slab, f_low, idx)
        adv = _bce(lf, 1.0)
        return adv + config.lambda_class * _aux_loss(config, cf, rf, labels, continuous), (sp, adv)

    (g_total, (spectral, g_adv)), grads = parallel.mean_value_and_grad(g_loss, has_aux=True)(
        params["g"]
    )
    params["g"], opt_state["g"] = state_lib.apply_gradients(
        params["g"], opt_state["g"], grads, opt["g"]
    )

    # 3. E^H step: invert G^H on real slabs.
    gen = Generator(config)

    def eh_loss(eh_params):
        h = EncoderHigh(config).apply({"params": eh_params}, slab)
        rec = gen.apply({"params": params["g"]}, h, method=Generator.high_res)
        return jnp.abs(rec - slab).mean()

    eh_l1, grads = parallel.mean_value_and_grad(eh_loss)(params["eh"])
    params["eh"], opt_state["eh"] = state_lib.apply_gradients(
        params["eh"], opt_state["eh"], grads, opt["eh"]
    )

    # 4. E^G step: E^H's hypercube of the real volume (the 8 slabs one by one, as the reference,
    # unless config.encode_slabs is off) -> E^G -> G, compared with the real slab and low.
    h_real = jax.lax.stop_gradient(
        model.encode_high({"params": params["eh"]}, batch["volume"], config)
    )

    def eg_loss(eg_params):
        z_hat = EncoderGlobal(config).apply({"params": eg_params}, h_real)
        r_low, r_slab = _fake(config, params["g"], z_hat, cond, idx)
        return (jnp.abs(r_slab - slab).mean() + jnp.abs(r_low - low).mean()) / 2

    eg_l1, grads = parallel.mean_value_and_grad(eg_loss)(params["eg"])
    params["eg"], opt_state["eg"] = state_lib.apply_gradients(
        params["eg"], opt_state["eg"], grads, opt["eg"]
    )

    metrics = {"d_loss": d_total, "g_loss": g_total, "eh_l1": eh_l1, "eg_l1": eg_l1}
    # the loss parts came out of the aux, still per device
    metrics.update(jax.lax.pmean({"d_adv": d_adv, "d_aux": d_aux, "g_adv": g_adv}, parallel.DATA))
    new_state = state.replace(
        params=params, opt_state=opt_state, stats={"spectral": spectral}, step=state.step + 1
    )
    return new_state, metrics


# --- building blocks of a run --------------------------------------------------------------------


def init_state(config: HAGANTrainConfig) -> state_lib.TrainState:
    init_key, run_key = jax.random.split(jax.random.key(config.seed))
    variables = model.init(init_key, config.model)
    params = {name: v["params"] for name, v in variables.items()}
    return state_lib.create(
        params, optimizers(config.model), run_key, stats={"spectral": variables["d"]["spectral"]}
    )


def make_state(config: HAGANTrainConfig, mesh) -> state_lib.TrainState:
    return state_lib.born_replicated(functools.partial(init_state, config), mesh)


def make_step(config: HAGANTrainConfig, mesh):
    parallel.check_divisible("model.batch_size", config.model.batch_size, mesh.size)
    return parallel.cached_step(train_step, config.model, mesh)


def check_store(store: VolumeStore, config: HAGANTrainConfig) -> None:
    """Refuse a store that does not fit the model: its size, its condition values."""
    if store.size != config.model.size:
        raise DataError(
            f"{store.path}: holds {store.size}³ volumes; expected {config.model.size}³ (model.size; pass --config.size={store.size} or ingest again)"
        )
    values = store.conditions(config.condition_columns)  # names missing values itself
    if config.class_column:
        labels = values[:, 0]
        bad = (labels != np.round(labels)) | (labels < 0) | (labels >= config.model.num_classes)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{store.path}/table.parquet: {config.class_column!r} is {labels[i]:g} for {store.ids[i]}; expected an integer class 0..{config.model.num_classes - 1}"
            )


def dataset(store: VolumeStore, config: HAGANTrainConfig):
    n = jax.process_count()
    parallel.check_divisible("model.batch_size", config.model.batch_size, n, "processes")
    pipe = PipelineConfig(
        batch_size=config.model.batch_size // n,
        seed=config.seed,
        conditions=config.condition_columns,
        slab_step=4,  # fake and real slabs cover the same slices
        whole_volume=True,
        read_threads=config.read_threads,
    )
    return make_dataset(store, pipe, shard_index=jax.process_index(), shard_count=n)


def preview_hook(
    out_dir: Path, config: HAGANTrainConfig, store: VolumeStore, every: int, mesh, n: int = 2
) -> loop.Hook:
    """Every `every` steps, previews/step_<k>.png: fixed-noise fakes beside the batch's reals."""
    everywhere = parallel.replicated(mesh)
    noise = np.random.default_rng(config.seed).standard_normal((n, config.model.latent_dim))
    z = jax.device_put(noise.astype(np.float32), everywhere)
    middle = (config.model.max_slab_start // 2) // 4 * 4
    mid = jax.device_put(np.full((n,), middle, np.int32), everywhere)

    @jax.jit
    def fakes(g_params, cond):
        return _fake(config.model, g_params, z, cond, mid)

    def fn(step, state, batch):
        if jax.process_index():
            return
        # this process's first device's rows: enough to look at, and addressable on every host
        local = {k: np.asarray(v.addressable_shards[0].data)[:n] for k, v in batch.items()}
        cond = np.zeros((n, local["conditions"].shape[1]), np.float32)
        cond[: len(local["conditions"])] = local["conditions"]  # fakes take the reals' conditions
        labels, continuous = split_conditions(config.model, jax.device_put(cond, everywhere))
        fake = fakes(state.params["g"], condition_vector(config.model, labels, continuous))
        low, slab = jax.device_get(fake)
        real_low, real_slab = local["low"], local["slab"]
        hu = lambda x: unwindow(np.asarray(x)[..., 0], *store.window)  # noqa: E731
        rows = [
            batch_example_image(hu(real_low[i]), hu(real_slab[i]), store.window)
            for i in range(len(real_low))
        ]
        rows += [batch_example_image(hu(low[i]), hu(slab[i]), store.window) for i in range(n)]
        labels = [f"real {i}" for i in range(len(real_low))] + [
            f"fake {i} (step {step})" for i in range(n)
        ]
        save_grid(
            out_dir / "previews" / f"step_{step:07d}.png",
            rows,
            labels,
            scale=max(1, 256 // config.model.size),
        )

    return loop.Hook(every=every, fn=fn)


def fitted_batch(batch: int, n_volumes: int, n_devices: int) -> int:
    """A batch no larger than a tiny cohort (the reference drops the last partial batch, so it
    needs batch <= cohort), kept a multiple of the device count; says so when it changes."""
    fitted = min(batch, max(n_devices, n_volumes // n_devices * n_devices))
    if fitted != batch:
        print(f"batch size {batch} > {n_volumes} volumes: using {fitted} ({n_devices} devices)")
    return fitted


def fit_batch(config: HAGANTrainConfig, n_volumes: int, n_devices: int) -> HAGANTrainConfig:
    fitted = fitted_batch(config.model.batch_size, n_volumes, n_devices)
    return dataclasses.replace(config, model=dataclasses.replace(config.model, batch_size=fitted))


def run_info(config: HAGANTrainConfig, store: VolumeStore) -> dict:
    """config.json of a run: the config plus what generation needs to write HU volumes."""
    spacings = [r["spacing"][0] for r in store.manifest["volumes"]]
    return {
        **as_json(config),
        "family": "hagan",
        "data": str(store.path),
        "window": list(store.window),
        "spacing_mm": float(np.median(spacings)),  # ingest makes each volume's voxels isotropic
        # the store's rule, for fitting new volumes as it did (impute): None = whole volume fitted
        "ingest_spacing_mm": store.ingest_spacing,
    }


def run(
    out_dir: str | os.PathLike,
    store: str | os.PathLike | VolumeStore,
    *,
    steps: int,
    config: HAGANTrainConfig | None = None,
    resume: bool = False,
    checkpoint_every: int = 500,
    preview_every: int = 500,
    keep: int = 3,
    log_every: int = 1,
    progress: bool = True,
    devices: Sequence[jax.Device] | None = None,
) -> state_lib.TrainState:
    """Train HA-GAN on a volume store into `out_dir`: config.json, metrics.jsonl,
    checkpoints/<step>/ and previews/. Every process of a multi-host run calls this."""
    parallel.initialize_distributed()
    config = config or HAGANTrainConfig()
    store = store if isinstance(store, VolumeStore) else VolumeStore(store)
    check_store(store, config)
    mesh = parallel.make_mesh(devices)
    config = fit_batch(config, len(store), mesh.size)
    settings = loop.LoopConfig(
        steps=steps,
        checkpoint_every=checkpoint_every,
        keep=keep,
        log_every=log_every,
        progress=progress,
    )
    return loop.run(
        out_dir,
        config=config,
        info=run_info(config, store),
        mesh=mesh,
        init=functools.partial(init_state, config),
        step_fn=make_step(config, mesh),
        data_iter=iter(dataset(store, config)),
        settings=settings,
        resume=resume,
        hooks=[preview_hook(Path(out_dir), config, store, preview_every, mesh)],
    )
