"""Import checkpoints of the reference HA-GAN (github.com/batmanlab/HA-GAN) into a jaxsyn run.

    jaxsyn import hagan --checkpoint-dir checkpoint/HA_GAN_run1 --iteration 80000 --out runs/copd

The reference's train.py saves, every 500 iterations after 30000, four files per iteration N:
`G_iterN.pth`, `D_iterN.pth`, `E_iterN.pth`, `Sub_E_iterN.pth`, each `torch.save({'model':
state_dict, 'optimizer': optimizer_state})`, the state dict's names prefixed `module.` (the
networks are wrapped in `nn.DataParallel`). They are read without torch (`jaxsyn.torchfile`):

    G      -> "g"   Generator (G^A tp_conv1..5/bn1..5, G^H tp_conv6..7/bn6, G^L sub_G.*)
    D      -> "d"   Discriminator (D^H conv*/fc1/fc2[/fc2_class], D^L sub_D.*), spectral-norm
                    vectors `u0` -> our "spectral" collection's `u`, `sv0` -> `sigma`
    E      -> "eh"  Encoder (E^H, conv1..3/bn1..3)
    Sub_E  -> "eg"  Sub_Encoder (E^G, conv*/bn*, conv5 -> z)

G alone suffices for generation; D, E and Sub_E are imported when their files are there. Weights
are laid out for our channels-last modules: convolutions OIDHW -> DHWIO, linear layers
[out, in] -> [in, out], and G's fc1, whose output the reference views as [512, 4, 4, 4], has its
outputs reordered to our [4, 4, 4, 512]. Optimizer entries are ignored: the run holds fresh Adam
moments (zeros), not the reference's, and no data-pipeline position, so it is for generation and
encoding (`jaxsyn generate`, `jaxsyn.infer.hagan`, `jaxsyn.models.hagan.encode`), not for
`jaxsyn train hagan --resume`.

The reference networks exist at S = 128 and 256 only, with fixed widths: `reference_config` gives
our config for them (our defaults are the reference's widths). G's tensors are the same at both
sizes (128 omits one upsampling), so the size comes from D or Sub_E (`conv1` exists only at 256)
or must be given. What a reference checkpoint does that our model does not:
  * D^H is fed the slab position crop_idx / (7S/8) for any crop_idx in 0..7S/8, and the reference
    trains G's slab at 4·⌊crop_idx/4⌋ against the real crop at crop_idx; our model takes slab
    starts that are multiples of 4 for both. The imported D computes the same function of its
    inputs; only the positions our training and tests feed are multiples of 4.
  * GroupNorm and spectral norm are the same computation (eps 1e-5 and 1e-12); our l2-normalise
    divides by sqrt(|x|² + eps) where the reference divides by max(|x|, eps) (equal unless |x|
    is ~1e-6 or less).
  * the window: the reference scales CT from [-1024, 600] HU to [-1, 1] (preprocess.py); that is
    the default here, and the voxel size (the reference keeps none) defaults to 1 mm.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxsyn.checkpoint import Checkpointer, as_json
from jaxsyn.errors import ConfigError, DataError
from jaxsyn.files import atomic_dir, sha256, write_json
from jaxsyn.models.hagan import HAGANConfig, init
from jaxsyn.torchfile import read_torch_file
from jaxsyn.train import state as state_lib
from jaxsyn.train.hagan import HAGANTrainConfig, optimizers

REFERENCE_SIZES = (128, 256)
REFERENCE_WINDOW = (-1024.0, 600.0)  # preprocess.py: np.interp(img, [-1024, 600], [-1, 1])
FILES = {"g": "G", "d": "D", "eh": "E", "eg": "Sub_E"}  # our network -> train.py's file prefix
CLASS_COLUMN = "label"  # the reference reads classes from class_label.csv's `label` column


def reference_config(size: int, num_classes: int = 0, latent_dim: int = 1024) -> HAGANConfig:
    """Our config for the reference's networks (models/Model_HA_GAN_{size}.py, train.py)."""
    if size not in REFERENCE_SIZES:
        raise ConfigError(f"size is {size}; the reference HA-GAN exists at 128 and 256")
    return HAGANConfig(size=size, num_classes=num_classes, latent_dim=latent_dim)


def checkpoint_paths(directory: str | os.PathLike, iteration: int) -> dict[str, Path]:
    """{network: path} of the files of `iteration` in a train.py checkpoint folder (G required)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: no such folder; expected train.py's checkpoint/<exp_name>")
    paths = {net: directory / f"{prefix}_iter{iteration}.pth" for net, prefix in FILES.items()}
    if not paths["g"].is_file():
        found = sorted(p.name for p in directory.glob("G_iter*.pth"))[:8]
        raise DataError(f"{paths['g']}: no such file; generator files here: {found or 'none'}")
    return {net: p for net, p in paths.items() if p.is_file()}


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The `model` state dict of a train.py file (or a bare state dict), `module.` stripped."""
    tensors = read_torch_file(path)
    model = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    return {k.removeprefix("module."): v for k, v in (model or tensors).items()}


# --- names: the reference's layer -> our module path, and how its tensors map ---------------------


def _generator_layers(targets: dict) -> Iterator[tuple[str, tuple[str, ...], str]]:
    """(reference layer, our module path, kind) of G (Model_HA_GAN_*.py Generator)."""
    yield "fc1", ("fc",), "fc1"
    for i in range(5):  # tp_conv1..5 / bn1..5: G^A; a block's conv is Conv_0 or UpConv3d_0
        block = f"trunk_{i}"
        (conv,) = [k for k in targets[block] if k != "GroupNorm_0"]
        yield f"tp_conv{i + 1}", (block, conv), "conv"
        yield f"bn{i + 1}", (block, "GroupNorm_0"), "norm"
    yield "tp_conv6", ("high_conv",), "conv"  # G^H
    yield "bn6", ("high_norm",), "norm"
    yield "tp_conv7", ("high_out",), "conv"
    for i in range(2):  # G^L: Sub_Generator
        yield f"sub_G.tp_conv{i + 1}", (f"low_{i}", "Conv_0"), "conv"
        yield f"sub_G.bn{i + 1}", (f"low_{i}", "GroupNorm_0"), "norm"
    yield "sub_G.tp_conv3", ("low_out",), "conv"


def _discriminator_layers(config: HAGANConfig) -> Iterator[tuple[str, tuple[str, ...], str]]:
    """D^H conv1..7 (conv1 only at 256: smaller sizes drop leading layers, as 128 does), fc1,
    fc2, fc2_class; D^L sub_D.conv1..4 (the last `ladder` of them) and sub_D.conv5."""
    for i in range(int(math.log2(256 // config.size)) + 1, 8):
        yield f"conv{i}", (f"dh_conv{i}",), "snconv"
    yield "fc1", ("dh_fc1",), "snlinear"
    yield "fc2", ("dh_fc2",), "snlinear"
    if config.num_classes:
        yield "fc2_class", ("dh_class",), "snlinear"
    for k in range(config.ladder):
        yield f"sub_D.conv{4 - config.ladder + k + 1}", (f"dl_conv{k + 1}",), "snconv"
    yield "sub_D.conv5", ("dl_out",), "snconv"


def _encoder_high_layers(config: HAGANConfig) -> Iterator[tuple[str, tuple[str, ...], str]]:
    for i in range(3):  # Encoder conv1..3 / bn1..3
        yield f"conv{i + 1}", (f"ConvGNReLU_{i}", "Conv_0"), "conv"
        yield f"bn{i + 1}", (f"ConvGNReLU_{i}", "GroupNorm_0"), "norm"


def _encoder_global_layers(config: HAGANConfig) -> Iterator[tuple[str, tuple[str, ...], str]]:
    for k in range(config.ladder):  # Sub_Encoder conv1..4 at 256, conv2..4 at 128
        i = 4 - config.ladder + k + 1
        yield f"conv{i}", (f"ConvGNReLU_{k}", "Conv_0"), "conv"
        yield f"bn{i}", (f"ConvGNReLU_{k}", "GroupNorm_0"), "norm"
    yield "conv5", ("Conv_0",), "conv"


# Per kind: (reference tensor, our leaf, our shape -> reference shape, reference -> ours).
def _fc1_to_ours(w: np.ndarray) -> np.ndarray:
    """fc1 weight [4·4·4·C, in] whose outputs the reference views as [C, 4, 4, 4] -> our kernel
    [in, 4·4·4·C] whose outputs we view as [4, 4, 4, C]."""
    c = w.shape[0] // 64
    return w.reshape(c, 64, -1).transpose(2, 1, 0).reshape(-1, 64 * c)


_TENSORS = {
    "conv": [
        ("weight", "kernel", lambda s: (s[4], s[3], *s[:3]), lambda w: w.transpose(2, 3, 4, 1, 0)),
        ("bias", "bias", tuple, lambda b: b),
    ],
    "linear": [
        ("weight", "kernel", lambda s: s[::-1], lambda w: w.T),
        ("bias", "bias", tuple, lambda b: b),
    ],
    "fc1": [
        ("weight", "kernel", lambda s: s[::-1], _fc1_to_ours),
        ("bias", "bias", tuple, lambda b: b.reshape(-1, 64).T.reshape(-1)),
    ],
    "norm": [("weight", "scale", tuple, lambda g: g), ("bias", "bias", tuple, lambda b: b)],
}
# spectral norm (models/layers.py SN): u0 [1, out] is our u; sv0 [1] (logged σ) our sigma []
_SPECTRAL = [("u0", "u", tuple, lambda u: u), ("sv0", "sigma", lambda s: (1,), lambda s: s[0])]


def _layers(net: str, config: HAGANConfig, targets: dict):
    if net == "g":
        return _generator_layers(targets["params"])
    return {"d": _discriminator_layers, "eh": _encoder_high_layers, "eg": _encoder_global_layers}[
        net
    ](config)


def _get(tree: dict, path: tuple[str, ...]):
    for k in path:
        tree = tree[k]
    return tree


def _put(tree: dict, path: tuple[str, ...], value) -> None:
    for k in path[:-1]:
        tree = tree.setdefault(k, {})
    tree[path[-1]] = value


def _spectral_path(spectral: dict, layer: str, leaf: str) -> tuple[str, str]:
    """Where Flax's SpectralNorm keeps `layer`'s kernel `u`/`sigma`: {SpectralNorm_k: {name: }}."""
    name = f"{layer}/kernel/{leaf}"
    (outer,) = [k for k, v in spectral.items() if name in v]
    return outer, name


def convert(net: str, state: dict[str, np.ndarray], config: HAGANConfig, source) -> dict:
    """One reference state dict -> our variables of network `net` ("g", "d", "eh" or "eg"):
    {"params": ...} (+ {"spectral": ...} for "d"), float32 numpy.

    Every tensor the network needs must be in `state` with its reference shape, and nothing else
    may be: a missing, mis-shaped or unexpected key is a DataError naming it and `source`.
    """
    targets = jax.eval_shape(functools.partial(init, config=config), jax.random.key(0))[net]
    what = f"HA-GAN {config.size}³, latent {config.latent_dim}, {config.num_classes} classes"
    out: dict = {}
    used = set()
    for ref, ours, kind in _layers(net, config, targets):
        sn = kind.startswith("sn")
        rules = [(*r, ("params", *ours, r[1])) for r in _TENSORS[kind.removeprefix("sn")]]
        if sn:
            for suffix, leaf, shape_of, fn in _SPECTRAL:
                path = ("spectral", *_spectral_path(targets["spectral"], ours[-1], leaf))
                rules.append((suffix, leaf, shape_of, fn, path))
        for suffix, _, shape_of, fn, path in rules:
            key = f"{ref}.{suffix}"
            expected = tuple(shape_of(tuple(_get(targets, path).shape)))
            if key not in state:
                raise DataError(
                    f"{source}: no tensor {key!r}; expected shape {list(expected)} ({what})"
                )
            value = state[key]
            if value.shape != expected:
                raise DataError(
                    f"{source}: {key!r} has shape {list(value.shape)}; expected {list(expected)} ({what})"
                )
            _put(out, path, np.array(fn(value), np.float32))  # a copy: no view of `state`
            used.add(key)
    if extra := sorted(set(state) - used):
        raise DataError(
            f"{source}: unexpected tensors {extra[:4]}{' ...' if len(extra) > 4 else ''} for {what} (another size, class count or network?)"
        )
    return out


# --- a folder of train.py files -> our variables -> a run -----------------------------------------


def _infer(states: dict[str, dict], size, num_classes, latent_dim: int, paths) -> HAGANConfig:
    """The reference config the files were trained with; given values are checked against them."""
    hints = {}  # what each file says about the size
    for net in ("d", "eg"):
        if net in states:
            hints[net] = 256 if "conv1.weight" in states[net] else 128
    if size is None and not hints:
        raise ConfigError(
            "--size is needed: G's tensors are the same at 128 and 256 and no D_iter/Sub_E_iter file says which"
        )
    for net, s in hints.items():
        if size is not None and s != size:
            raise ConfigError(f"{paths[net]}: holds a {s}³ network; --size is {size}")
        size = s
    fc1 = states["g"].get("fc1.weight")
    if fc1 is None or fc1.ndim != 2:
        raise DataError(f"{paths['g']}: no 2-D tensor 'fc1.weight'; expected a G_iter file")
    classes = fc1.shape[1] - latent_dim
    if classes < 0 or (num_classes is not None and classes != num_classes):
        raise DataError(
            f"{paths['g']}: 'fc1.weight' has shape {list(fc1.shape)}; expected [*, {latent_dim} + {num_classes or 0}] (--latent-dim + --num-class)"
        )
    return reference_config(size, classes, latent_dim)


def load_reference(
    directory: str | os.PathLike,
    iteration: int,
    *,
    size: int | None = None,
    num_classes: int | None = None,
    latent_dim: int = 1024,
    config: HAGANConfig | None = None,
) -> tuple[HAGANConfig, dict[str, dict], dict[str, Path]]:
    """(config, {network: variables}, {network: file}) for the files of `iteration`.

    `size` (128 | 256) and `num_classes` default to what the files say; `latent_dim` to
    train.py's 1024. `config` replaces the reference config (tests build small networks with
    the reference's names).
    """
    paths = checkpoint_paths(directory, iteration)
    states = {net: read_state_dict(p) for net, p in paths.items()}
    if config is None:
        config = _infer(states, size, num_classes, latent_dim, paths)
    variables = {net: convert(net, states[net], config, paths[net]) for net in states}
    return config, variables, paths


def import_run(
    directory: str | os.PathLike,
    iteration: int,
    out: str | os.PathLike,
    *,
    size: int | None = None,
    num_classes: int | None = None,
    latent_dim: int = 1024,
    window: tuple[float, float] = REFERENCE_WINDOW,
    spacing_mm: float = 1.0,
    config: HAGANConfig | None = None,
) -> Path:
    """Write run folder `out` (config.json + checkpoints/<iteration>/, as `jaxsyn train hagan`
    writes) from the reference's files of `iteration`; `out` appears whole or not at all."""
    out = Path(out)
    if out.exists():
        raise ConfigError(f"{out} exists; expected a new folder for the imported run")
    config, variables, paths = load_reference(
        directory,
        iteration,
        size=size,
        num_classes=num_classes,
        latent_dim=latent_dim,
        config=config,
    )
    train_config = HAGANTrainConfig(
        model=config, class_column=CLASS_COLUMN if config.num_classes else None
    )
    params = {net: jax.tree.map(jnp.asarray, v["params"]) for net, v in variables.items()}
    stats = (
        {"spectral": jax.tree.map(jnp.asarray, variables["d"]["spectral"])} if "d" in params else {}
    )
    opt = optimizers(config)
    run_key = jax.random.split(jax.random.key(train_config.seed))[1]  # as train's init_state
    state = state_lib.create(params, {n: opt[n] for n in params}, run_key, stats=stats)
    state = state.replace(step=jnp.int32(iteration))
    info = {
        **as_json(train_config),
        "family": "hagan",
        "data": None,
        "window": [float(window[0]), float(window[1])],
        "spacing_mm": float(spacing_mm),
        "imported_from": {
            "implementation": "github.com/batmanlab/HA-GAN train.py",
            "directory": str(Path(directory).absolute()),
            "iteration": iteration,
            "files": {n: {"name": p.name, "sha256": sha256(p)} for n, p in paths.items()},
            "optimizer": "not imported (fresh Adam moments)",
        },
    }
    with atomic_dir(out) as tmp:
        with Checkpointer(tmp / "checkpoints", train_config, keep=1) as checkpointer:
            checkpointer.save(iteration, state)
        write_json(tmp / "config.json", info)
    return out
