"""Full-resolution HA-GAN generation in depth chunks, streamed to TensorStore.

One pass of G^H over a 256³ volume holds a [256, 256, 256, 32] activation (2 GiB in float32).
Here G^H runs over the hypercube `chunk` slices at a time (4·chunk output slices), each with a
one-slice halo on both sides, so the peak is a few hundred MiB:

  pass 1  GroupNorm statistics of G^H's first convolution over the whole volume: per chunk
          (mean, var) of its own rows, combined exactly (equal-sized chunks: the law of total
          variance), because GroupNorm normalises over the whole volume in the one-pass model;
  pass 2  each chunk again, normalised with the global statistics, rows outside the volume zeroed
          (the whole-volume convolution's zero padding), cropped to its own 4·chunk slices.

The result equals one-pass generation within float32 rounding (tests/models/test_hagan.py).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import tensorstore as ts
from tqdm.auto import tqdm

from jaxsyn.checkpoint import restore_subtree
from jaxsyn.data.ids import synthetic_id
from jaxsyn.data.volumes import Volume, diagonal_affine, save_nifti, unwindow
from jaxsyn.errors import ConfigError
from jaxsyn.files import MANIFEST, atomic_dir, tree_files, write_json
from jaxsyn.infer import check_latents, hosts, latents_digest, run_info
from jaxsyn.models.hagan import Generator, HAGANConfig, conditions_vector, init
from jaxsyn.nn.layers import group_stats


def _check_chunk(config: HAGANConfig, chunk: int) -> None:
    n = config.size // 4
    if chunk < 1 or n % chunk:
        raise ConfigError(f"chunk is {chunk} hypercube slices; expected a divisor of {n} (S/4)")


@functools.partial(jax.jit, static_argnames=("config",))
def hypercube(params, zc, config: HAGANConfig):
    """G^A, with one zero slice of padding on each side of the depth axis: [B, S/4 + 2, S/4, S/4, C]."""
    h = Generator(config).apply({"params": params}, zc, method=Generator.hypercube)
    return jnp.pad(h, ((0, 0), (1, 1), (0, 0), (0, 0), (0, 0)))


def _window(padded, start, chunk):
    return jax.lax.dynamic_slice_in_dim(
        padded, start, chunk + 2, axis=1
    )  # rows start-1 .. start+chunk


@functools.partial(jax.jit, static_argnames=("config", "chunk"))
def chunk_stats(params, padded, start, config: HAGANConfig, chunk: int):
    """(mean, var) [B, groups] of G^H's first conv over this chunk's own 2·chunk rows."""
    a = Generator(config).apply(
        {"params": params}, _window(padded, start, chunk), method=Generator.high_pre
    )
    return group_stats(a[:, 2 : 2 + 2 * chunk], config.groups)


@functools.partial(jax.jit, static_argnames=("config", "chunk"))
def chunk_volume(params, padded, start, mean, var, config: HAGANConfig, chunk: int):
    """Output slices [4·start, 4·(start + chunk)) of the full volume: [B, 4·chunk, S, S] in [-1, 1]."""
    g = Generator(config)
    a = g.apply({"params": params}, _window(padded, start, chunk), method=Generator.high_pre)
    row = 2 * (start - 1) + jnp.arange(a.shape[1])  # conv rows in whole-volume coordinates
    inside = (row >= 0) & (row < config.size // 2)
    out = g.apply({"params": params}, a, mean, var, inside, method=Generator.high_post)
    return out[:, 4 : 4 + 4 * chunk, ..., 0]


def global_stats(params, padded, config: HAGANConfig, chunk: int):
    stats = [
        chunk_stats(params, padded, s, config, chunk) for s in range(0, config.size // 4, chunk)
    ]
    means = jnp.stack([m for m, _ in stats])
    variances = jnp.stack([v for _, v in stats])
    mean = means.mean(0)
    return mean, variances.mean(0) + jnp.square(means - mean).mean(0)


@functools.partial(jax.jit, static_argnames=("config",))
def slab_volume(params, padded, start, config: HAGANConfig):
    """Output slices [4·start, 4·start + S/8) by G^H on hypercube rows [start, start + S/32)
    alone, as training's slab forward: [B, S/8, S, S] in [-1, 1]."""
    h = jax.lax.dynamic_slice_in_dim(padded, start + 1, config.slab_depth // 4, axis=1)
    return Generator(config).apply({"params": params}, h, method=Generator.high_res)[..., 0]


def generate_chunks(params, zc, config: HAGANConfig, chunk: int = 4, *, padded=None):
    """Yield (first slice, [B, slices, S, S] float32 numpy) for the volumes of `zc` [B, L+N+M]:
    4·chunk slices at a time, or, with `config.generate_slabs`, the 8 training slabs (S/8
    slices each; `chunk` unused).

    `padded`: `hypercube(params, zc, config)` when the caller already has it (MMCGAN's rows use
    the same hypercube). The next chunk is dispatched before the current one is copied to the
    host, so the device computes while the caller writes.
    """
    _check_chunk(config, chunk)
    padded = hypercube(params, zc, config) if padded is None else padded
    if config.generate_slabs:
        step = config.slab_depth // 4
        blocks = (
            (s, slab_volume(params, padded, s, config)) for s in range(0, config.size // 4, step)
        )
    else:
        mean, var = global_stats(params, padded, config, chunk)
        blocks = (
            (s, chunk_volume(params, padded, s, mean, var, config, chunk))
            for s in range(0, config.size // 4, chunk)
        )
    pending = None
    for s, out in blocks:
        if pending is not None:
            yield pending[0], np.asarray(pending[1])
        pending = (4 * s, out)
    yield pending[0], np.asarray(pending[1])


def generate_to_zarr(
    params, zc, config: HAGANConfig, path: str | os.PathLike, *, chunk: int = 4, transform=None
):
    """Stream generated volumes into a zarr array [B, S, S, S] at `path`, chunk by chunk.

    `transform` maps a [-1, 1] float chunk to what is stored (e.g. HU as int16); the array dtype
    follows its output. Each chunk's write overlaps the computation of the next.
    """
    transform = transform or (lambda x: x.astype(np.float32))
    store, writes = None, []
    for first, block in generate_chunks(params, zc, config, chunk):
        block = transform(block)
        if store is None:
            s = config.size
            store = ts.open(
                {
                    "driver": "zarr",
                    "kvstore": {"driver": "file", "path": str(Path(path))},
                    "metadata": {
                        "shape": [block.shape[0], s, s, s],
                        "chunks": [1, block.shape[1], s, s],
                        "dtype": block.dtype.str,
                    },
                },
                create=True,
                delete_existing=True,
            ).result()
        writes.append(store[:, first : first + block.shape[1]].write(block))
    for w in writes:
        w.result()
    return store


def one_pass(params, zc, config: HAGANConfig):
    """The whole volume in one G^H pass: [B, S, S, S] (the reference's inference)."""
    g = Generator(config)
    h = g.apply({"params": params}, zc, method=Generator.hypercube)
    return g.apply({"params": params}, h, method=Generator.high_res)[..., 0]


def compiled_memory(params, zc, config: HAGANConfig, chunk: int = 4) -> dict[str, int]:
    """Compiled peak memory (bytes: arguments + outputs + temporaries) of one-pass and chunked
    generation, from XLA's `memory_analysis()`. The chunked figure is the larger of its pieces
    (trunk, statistics, one chunk) plus the padded hypercube they share."""

    def peak(fn, *args, **static):
        m = (
            jax.jit(fn, static_argnames=tuple(static))
            .lower(*args, **static)
            .compile()
            .memory_analysis()
        )
        return int(
            m.argument_size_in_bytes
            + m.output_size_in_bytes
            + m.temp_size_in_bytes
            - m.alias_size_in_bytes
        )

    _check_chunk(config, chunk)
    padded = jax.eval_shape(functools.partial(hypercube, config=config), params, zc)
    b, g = zc.shape[0], config.groups
    stat = jax.ShapeDtypeStruct((b, g), jnp.float32)
    start = jnp.int32(0)
    pieces = [
        peak(hypercube.__wrapped__, params, zc, config=config),
        peak(chunk_stats.__wrapped__, params, padded, start, config=config, chunk=chunk),
        peak(
            chunk_volume.__wrapped__, params, padded, start, stat, stat, config=config, chunk=chunk
        ),
    ]
    return {"onepass": peak(one_pass, params, zc, config=config), "chunked": max(pieces)}


# --- a trained run -> NIfTI / zarr volumes in HU --------------------------------------------------


def load_generator(run_dir: str | os.PathLike) -> tuple[HAGANConfig, dict, dict]:
    """(model config, generator params, run info) from a run folder; reads only G's arrays."""
    run_dir = Path(run_dir)
    info = run_info(run_dir, ("hagan",))
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in info["model"].items()}
    config = HAGANConfig(**fields)
    shapes = jax.eval_shape(functools.partial(init, config=config), jax.random.key(0))
    params = restore_subtree(run_dir / "checkpoints", {"params": {"g": shapes["g"]["params"]}})
    return config, params["params"]["g"], info


def parse_conditions(config: HAGANConfig, info: dict, given: dict[str, float]) -> np.ndarray:
    """[N + M] condition vector from NAME=VALUE pairs naming the run's condition columns."""
    columns = ([info["class_column"]] if info.get("class_column") else []) + list(
        info.get("continuous_columns", [])
    )
    unknown, missing = sorted(set(given) - set(columns)), [c for c in columns if c not in given]
    if unknown or missing:
        raise ConfigError(
            f"--condition: this model's conditions are {columns or 'none'}; got unknown {unknown}, missing {missing}"
        )
    values = [given[c] for c in columns]
    classes = None
    if config.num_classes:
        label = values.pop(0)
        if label != int(label) or not 0 <= label < config.num_classes:
            raise ConfigError(
                f"--condition {columns[0]}={label:g}; expected an integer class 0..{config.num_classes - 1}"
            )
        classes = [int(label)]
    continuous = [values] if config.num_continuous else None
    return np.asarray(conditions_vector(config, classes, continuous))[0]


def write_volumes(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    n: int,
    seed: int = 0,
    conditions: dict[str, float] | None = None,
    formats: tuple[str, ...] = ("nifti",),
    chunk: int = 4,
    progress: bool = True,
    latents: np.ndarray | None = None,
    devices=None,
) -> Path:
    """Generate `n` volumes in HU into `out`: `<id>.nii.gz` and/or `<id>.zarr`, and manifest.json.

    Volume i's noise is drawn from fold_in(key(seed), i), so any subset can be regenerated;
    `latents` [n, latent_dim] gives it instead (`jaxsyn generate --latents`).
    In a multi-process run (`jaxsyn.infer.hosts`) each process writes its own volumes into `out`
    (a folder every process sees), and process 0 the manifest once all have finished; within a
    process the volumes are spread over `devices` (default `hosts.generation_devices()`: every
    local accelerator, one CPU device): the same files, byte for byte, as one device writes.
    """
    if bad := sorted(set(formats) - {"nifti", "zarr"}):
        raise ConfigError(
            f"--format {','.join(formats)}: unknown {bad}; expected nifti and/or zarr"
        )
    config, params, info = load_generator(run_dir)
    cond = parse_conditions(config, info, conditions or {})
    if latents is not None:
        latents = check_latents(latents, n, config.latent_dim)
    lo, hi = info["window"]
    spacing = info["spacing_mm"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    to_hu = lambda x: np.clip(np.rint(unwindow(x, lo, hi)), -32768, 32767).astype(np.int16)  # noqa: E731
    affine = diagonal_affine((spacing,) * 3, (config.size,) * 3)
    placed = {d: jax.device_put(params, d) for d in hosts.generation_devices(devices)}

    def one(i: int, device) -> None:
        if latents is None:
            z = jax.random.normal(
                jax.random.fold_in(jax.random.key(seed), i), (1, config.latent_dim)
            )
        else:
            z = jnp.asarray(latents[i : i + 1])
        zc = jax.device_put(jnp.concatenate([z, jnp.asarray(cond)[None]], axis=1), device)
        g = placed[device]
        vid = synthetic_id(i)
        if "zarr" in formats:
            with atomic_dir(out / f"{vid}.zarr") as tmp:
                generate_to_zarr(g, zc, config, tmp, chunk=chunk, transform=to_hu)
            volume = (
                ts.open(
                    {
                        "driver": "zarr",
                        "kvstore": {"driver": "file", "path": str(out / f"{vid}.zarr")},
                    }
                )
                .result()[0]
                .read()
                .result()
            )
        else:
            volume = np.empty((config.size,) * 3, np.int16)
            for first, block in generate_chunks(g, zc, config, chunk):
                volume[first : first + block.shape[1]] = to_hu(block[0])
        if "nifti" in formats:
            save_nifti(out / f"{vid}.nii.gz", Volume(hu=volume, affine=affine, source=vid))

    mine = hosts.mine(range(n))
    with tqdm(total=len(mine), desc="generate", unit="vol", disable=not progress) as bar:
        hosts.each_device(one, mine, list(placed), done=lambda: bar.update())
    hosts.barrier(f"jaxsyn generate hagan {out}")
    if not hosts.is_leader():
        return out
    records = [{"id": synthetic_id(i), "noise_index": i} for i in range(n)]
    manifest = {
        "family": "hagan",
        "run": str(Path(run_dir).absolute()),
        "seed": seed,
        "n": n,
        "conditions": conditions or {},
        "latents_sha256": latents_digest(latents),
        "window": [lo, hi],
        "spacing_mm": spacing,
        "volumes": records,
        "config": info,
        "files": tree_files(out),
    }
    write_json(out / MANIFEST, manifest)
    return out
