"""What `jaxsyn bench` runs: each family's real training step and generation, built on random
data of the right shapes (throughput does not depend on the values).

A `Case` hands out a fresh, unjitted function (`make_fn`) and its arguments, concrete or abstract
(`jax.ShapeDtypeStruct`s: compiled for memory without allocating). `size` is a volume's or an
image's side, and for CTGAN the number of table rows; `batch` is volumes, images or rows per step.
Training: HA-GAN's four-network iteration (D, G, E^H, E^G); MMCGAN's joint step with the image
heads trained every step (image_every = image_d_every = 1, the costliest of its steps); CTGAN's
D + G step drawing from a `size`-row encoded table; AC-GAN, cpD-GAN and prog-GAN (at its final
stage, alpha 1) a D and a G update; DUIIT the joint setting's step. Training steps are sharded
over every device (`devices`); generation, one pass of the generator for `batch` samples (HA-GAN:
whole S³ volumes; CTGAN: decodable rows), runs on the first device alone.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxsyn.errors import ConfigError
from jaxsyn.train import parallel
from jaxsyn.train import state as state_lib

FAMILIES = ("hagan", "mmcgan", "ctgan", "proggan", "cpdgan", "acgan", "duiit")
WORKLOADS = ("train", "generate")
GENERATES = ("hagan", "ctgan", "proggan", "cpdgan", "acgan")  # MMCGAN's images are HA-GAN's
# a `remat` config field
REMAT_FAMILIES = ("hagan", "mmcgan", "proggan", "cpdgan", "acgan", "duiit")


@dataclasses.dataclass
class Case:
    family: str
    workload: str
    size: int
    batch: int
    dtype: str
    remat: str
    mesh: jax.sharding.Mesh
    make_fn: Callable[[], Callable]  # a fresh, unjitted function each call
    make_args: Callable[[bool], tuple]  # abstract -> arguments
    samples: int  # per call
    training: bool

    @property
    def donate(self) -> tuple[int, ...]:
        return (0,) if self.training else ()


def _with(config, **fields):
    """`dataclasses.replace` of the fields `config` has; a ConfigError naming what it lacks."""
    names = {f.name for f in dataclasses.fields(config)}
    for name, value in fields.items():
        if name not in names:
            raise ConfigError(
                f"{type(config).__name__} has no field {name!r}; expected one for --{name} {value}"
            )
    return dataclasses.replace(config, **fields)


def _model_fields(dtype: str, remat: str) -> dict:
    fields = {"dtype": dtype}
    if remat != "none":
        fields["remat"] = remat
    return fields


def _sharded(mesh, shape, dtype, spec) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(shape, dtype, sharding=jax.NamedSharding(mesh, spec))


def _batch(host: dict, mesh, abstract: bool):
    if abstract:  # a pytree of host arrays (DUIIT's is nested per cohort)
        return jax.tree.map(lambda v: _sharded(mesh, v.shape, v.dtype, jax.P(parallel.DATA)), host)
    return parallel.shard_batch(host, mesh)


def _state(init: Callable, mesh, abstract: bool):
    if abstract:
        return state_lib.abstract_replicated(init, mesh)
    return state_lib.born_replicated(init, mesh)


def _replicated_tree(tree, mesh, abstract: bool):
    if abstract:
        return jax.tree.map(
            lambda x: _sharded(mesh, x.shape, x.dtype, jax.P()), jax.eval_shape(lambda: tree)
        )
    return jax.device_put(tree, parallel.replicated(mesh))


def _train_case(common: dict, step: Callable, init: Callable, host: dict) -> Case:
    """A training-step row: `step` on the state `init` makes and the host batch, on the mesh."""
    mesh = common["mesh"]
    return Case(
        **common,
        make_fn=_step_fn(step, mesh),
        make_args=lambda a: (_state(init, mesh, a), _batch(host, mesh, a)),
        samples=common["batch"],
        training=True,
    )


def _step_fn(train_step: Callable, mesh, batch_spec=None) -> Callable[[], Callable]:
    """A fresh shard_map of `train_step(state, batch, state.key)`, as `parallel.data_parallel`
    builds it (unjitted)."""
    spec = jax.P(parallel.DATA) if batch_spec is None else batch_spec

    def make():
        def body(state, batch):
            return train_step(state, batch, state.key)

        return jax.shard_map(
            body, mesh=mesh, in_specs=(jax.P(), spec), out_specs=(jax.P(), jax.P())
        )

    return make


def _generate_case(common: dict, init_params: Callable, gen: Callable, batch: int) -> Case:
    """`gen(params, key)` for `batch` samples; params from `init_params()` (replicated)."""
    mesh = common["mesh"]

    def args(abstract):
        params = (jax.eval_shape if abstract else jax.jit)(init_params)
        if not abstract:
            params = params()
        key = jax.random.key(1)
        return _replicated_tree(params, mesh, abstract), _replicated_tree(key, mesh, abstract)

    def make():
        return lambda params, key: gen(params, key)

    return Case(**common, make_fn=make, make_args=args, samples=batch, training=False)


# --- the families ------------------------------------------------------------------------------


def _volume_host(size: int, batch: int, conditions: np.ndarray) -> dict:
    rng = np.random.default_rng(0)
    volume = rng.uniform(-1, 1, (batch, size, size, size, 1)).astype(np.float32)
    return {
        "volume": volume,
        "slab": np.ascontiguousarray(volume[:, : size // 8]),
        "low": np.ascontiguousarray(volume[:, ::4, ::4, ::4]),
        "slab_index": np.zeros((batch,), np.int32),
        "conditions": conditions,
    }


def hagan(common: dict, tiny: bool) -> Case:
    from jaxsyn.models import hagan as model
    from jaxsyn.train import hagan as train

    size, batch = common["size"], common["batch"]
    base = model.HAGANConfig.tiny(size=size) if tiny else model.HAGANConfig(size=size)
    m = _with(base, batch_size=batch, **_model_fields(common["dtype"], common["remat"]))
    config = train.HAGANTrainConfig(model=m)
    if common["workload"] == "generate":
        zc = jnp.zeros((1, m.latent_dim))
        init = functools.partial(
            lambda k: model.Generator(m).init(k, zc, 0)["params"], jax.random.key(0)
        )
        return _generate_case(common, init, lambda p, k: model.generate(p, k, m, n=batch), batch)
    host = _volume_host(size, batch, np.zeros((batch, 0), np.float32))
    step = functools.partial(train.train_step, config=m)
    return _train_case(common, step, functools.partial(train.init_state, config), host)


def _clinical_layout(rows: int = 256):
    from jaxsyn.data.phantoms.ct import clinical_table
    from jaxsyn.data.tabular import TableTransformer, infer_schema

    table = clinical_table(rows, seed=0)
    schema = infer_schema(table, id_column="patient_id", kinds={"bmi_class": "categorical"})
    return table, TableTransformer.fit(table, schema, progress=False)


def mmcgan(common: dict, tiny: bool) -> Case:
    from jaxsyn.models.hagan import HAGANConfig
    from jaxsyn.models.mmcgan import MMCGANConfig
    from jaxsyn.train import mmcgan as train

    size, batch = common["size"], common["batch"]
    if common["workload"] == "generate":
        raise ConfigError(
            "mmcgan: no generation row (its volumes are HA-GAN's: use --family hagan)"
        )
    fields = _model_fields(common["dtype"], common["remat"])
    if tiny:
        model = MMCGANConfig.tiny()
        model = dataclasses.replace(model, image=_with(model.image, size=size, **fields))
    else:
        model = MMCGANConfig(image=_with(HAGANConfig(size=size, num_classes=4), **fields))
    _, transformer = _clinical_layout()
    layout = transformer.layout
    config = train.MMCGANTrainConfig(
        model=model.bind(layout), batch_size=batch, image_every=1, image_d_every=1
    )
    rng = np.random.default_rng(0)
    host = _volume_host(size, batch, rng.integers(0, 4, (batch, 1)).astype(np.float32))
    host["row"] = rng.uniform(0, 1, (batch, layout.dim)).astype(np.float32)
    host["tab_cond"] = np.zeros((batch, layout.cond_dim), np.float32)
    step = functools.partial(train.train_step, config=config)
    return _train_case(common, step, functools.partial(train.init_state, config), host)


def ctgan(common: dict, tiny: bool) -> Case:
    from jaxsyn.data.tabular import ConditionSampler
    from jaxsyn.models import ctgan as model
    from jaxsyn.train import ctgan as train

    rows, batch, mesh = common["size"], common["batch"], common["mesh"]
    if common["remat"] != "none":
        raise ConfigError("ctgan: --remat applies to the convolutional families, not CTGAN's MLPs")
    table, transformer = _clinical_layout(min(rows, 1000))
    encoded = np.asarray(transformer.transform(table, 0, progress=False), np.float32)
    data = np.resize(encoded, (rows, encoded.shape[1]))  # the rows repeated up to `rows`
    base = train.CTGANTrainConfig.tiny() if tiny else train.CTGANTrainConfig()
    m = _with(base.model.bind(transformer.layout), dtype=common["dtype"])
    config = dataclasses.replace(base, model=m, batch_size=batch)
    if common["workload"] == "generate":
        stats = model.init_stats(m)
        cond = jnp.zeros((batch, m.cond_dim))
        init = functools.partial(lambda k: model.init(k, m)["g"], jax.random.key(0))
        return _generate_case(
            common, init, lambda p, k: model.sample_rows(p, k, cond, m, stats), batch
        )
    n_local = batch // mesh.size
    if batch % mesh.size or n_local % m.pac:
        raise ConfigError(
            f"ctgan: --batch {batch}; expected a multiple of {mesh.size} devices x pac {m.pac}"
        )
    sampler = ConditionSampler.from_data(transformer.layout, data)
    arrays = train.TableArrays(data, jax.tree.map(np.asarray, sampler.arrays))
    step = functools.partial(train.train_step, config=config, n_local=n_local)

    def make():
        return jax.shard_map(
            lambda state, t: step(state, t),
            mesh=mesh,
            in_specs=(jax.P(), jax.P()),
            out_specs=(jax.P(), jax.P()),
        )

    return Case(
        **common,
        make_fn=make,
        make_args=lambda a: (
            _state(functools.partial(train.init_state, config), mesh, a),
            _replicated_tree(arrays, mesh, a),
        ),
        samples=batch,
        training=True,
    )


def _image_host(size: int, batch: int, channels: int, labels: np.ndarray) -> dict:
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (batch, size, size, channels)).astype(np.float32)
    return {"image": image, "label": labels}


def gan2d(common: dict, tiny: bool) -> Case:
    from jaxsyn.models import cpdgan, proggan
    from jaxsyn.train import gan2d as train

    family, size, batch = common["family"], common["size"], common["batch"]
    fields = _model_fields(common["dtype"], common["remat"])
    if family == "proggan":
        base = proggan.ProgGANConfig.tiny() if tiny else proggan.ProgGANConfig(num_labels=6)
        m = _with(base, size=size, initial_size=size, **fields)  # grown: the final stage
        config = train.ProgGANTrainConfig(model=m, batch_size=batch)
        gen = lambda p, k: proggan.generate(p, k, labels, m)  # noqa: E731
        init_g = lambda k: proggan.init(k, m)["g"]  # noqa: E731
    else:
        base = cpdgan.CPDGANConfig.tiny() if tiny else cpdgan.CPDGANConfig(num_labels=6)
        m = _with(base, size=size, **fields)
        config = train.CPDGANTrainConfig(model=m, batch_size=batch)
        gen = lambda p, k: cpdgan.generate(p, k, labels, m)  # noqa: E731
        init_g = lambda k: cpdgan.init(k, m)["g"]  # noqa: E731
    labels = (np.random.default_rng(1).random((batch, m.num_labels)) < 0.3).astype(np.float32)
    if common["workload"] == "generate":
        return _generate_case(common, functools.partial(init_g, jax.random.key(0)), gen, batch)
    host = _image_host(size, batch, m.channels, labels)
    step = functools.partial(train.train_step, config=config, stage=size)
    return _train_case(common, step, functools.partial(train.init_state, config), host)


def acgan(common: dict, tiny: bool) -> Case:
    from jaxsyn.models import acgan as model
    from jaxsyn.train import acgan as train

    size, batch = common["size"], common["batch"]
    base = model.ACGANConfig.tiny() if tiny else model.ACGANConfig()
    m = _with(base, size=size, **_model_fields(common["dtype"], common["remat"]))
    config = train.ACGANTrainConfig(model=m, batch_size=batch)
    labels = (np.arange(batch) % m.num_classes).astype(np.int32)
    if common["workload"] == "generate":
        stats = model.init_stats(m) or None
        init = functools.partial(lambda k: model.init(k, m)["g"], jax.random.key(0))
        return _generate_case(
            common, init, lambda p, k: model.generate(p, k, labels, m, stats), batch
        )
    host = _image_host(size, batch, m.channels, labels)
    step = functools.partial(train.train_step, config=config)
    return _train_case(common, step, functools.partial(train.init_state, config), host)


def duiit(common: dict, tiny: bool) -> Case:
    """DUIIT's joint setting (one source): both translators, their discriminators and the
    predictor in one step; `size` the images' side, `batch` images per cohort; `dtype` and
    `remat` set on the translators and the predictor alike."""
    from jaxsyn.train import duiit as train

    size, batch = common["size"], common["batch"]
    if common["workload"] == "generate":
        raise ConfigError("duiit: no generation row (it trains translators and a predictor)")
    # the lr schedule needs a planned length; a long one keeps the timed steps at the full rate
    config = train.setting_defaults("joint", tiny=tiny, batch_size=batch, steps=10**6)
    m = config.model
    fields = _model_fields(common["dtype"], common["remat"])
    m = dataclasses.replace(
        m,
        translator=_with(m.translator, size=size, **fields),
        predictor=_with(m.predictor, **fields),
    )
    config = dataclasses.replace(config, model=m)
    rng = np.random.default_rng(0)
    shape = (batch, size, size, m.translator.channels)
    host = {
        k: {
            "image": rng.uniform(-1, 1, shape).astype(np.float32),
            "label": rng.uniform(20, 80, (batch,)).astype(np.float32),
        }
        for k in ["target", *train.sources(config)]
    }
    step = functools.partial(train.train_step, config=config)
    return _train_case(common, step, functools.partial(train.init_state, config), host)


BUILDERS = {
    "hagan": hagan,
    "mmcgan": mmcgan,
    "ctgan": ctgan,
    "proggan": gan2d,
    "cpdgan": gan2d,
    "acgan": acgan,
    "duiit": duiit,
}


def build(
    family: str,
    workload: str,
    size: int,
    batch: int,
    dtype: str = "float32",
    remat: str = "none",
    *,
    tiny: bool = False,
    devices=None,
) -> Case:
    """The case of `family`'s `workload` at `size` and `batch` on `devices` (default: all)."""
    if family not in BUILDERS:
        raise ConfigError(f"--family {family}: expected some of {', '.join(FAMILIES)}")
    if workload not in WORKLOADS:
        raise ConfigError(f"workload is {workload!r}; expected one of {WORKLOADS}")
    if dtype not in ("float32", "bfloat16"):
        raise ConfigError(f"--dtype {dtype}: expected float32 or bfloat16")
    devices = list(jax.devices() if devices is None else devices)
    # generation is not sharded: it runs on one device (replicated, every device would repeat it)
    mesh = parallel.make_mesh(devices[:1] if workload == "generate" else devices)
    if batch < 1 or batch % mesh.size:
        raise ConfigError(
            f"--batch {batch}: expected a positive multiple of the {mesh.size} devices"
        )
    common = dict(
        family=family,
        workload=workload,
        size=size,
        batch=batch,
        dtype=dtype,
        remat=remat,
        mesh=mesh,
    )
    return BUILDERS[family](common, tiny)
