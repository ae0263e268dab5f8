"""Image classifiers for utility (train-on-synthetic / test-on-real) and "domain" features.

Flax Linen, channels-last: a model maps images float32 [N, H, W, C] in [0, 1] (any C) to
`(logits [N, num_outputs], features [N, F])`, the features being the penultimate pooled vector
(the input of the final linear layer), which `embed` returns as a domain feature extractor.
BatchNorm keeps running averages in the `batch_stats` collection: pass
`use_running_average=False` to train (and `mutable=["batch_stats"]`), True to evaluate.

DenseNet121  Huang et al. 2017, "Densely connected convolutional networks": DenseNet-BC with
             growth rate 32, blocks (6, 12, 24, 16), bottleneck 1x1 convs of 4k maps,
             compression 0.5, a 7x7/2 conv + 3x3/2 max-pool stem; the layer order and padding of
             torchvision's `densenet.py`, so a 3-channel, 1000-output model has its 7,978,856
             parameters. DuMont et al. use it on radiographs.
ResNet18     He et al. 2016, "Deep residual learning", Table 1 (basic blocks, stages (2, 2, 2, 2)
             of widths 64..512) with a configurable stem: `ResNetConfig(in_channels=9)` is the
             9-slice vertebral-unit classifier of pGAN (Sun et al. 2021); torchvision's
             `resnet.py` layout (11,689,512 parameters for 3 channels, 1000 classes).

No pretrained weights: nothing can be downloaded here and no ImageNet weights ship offline, so
every model is trained from scratch on the data at hand (`train_classifier`). Convolutions are
initialised as torchvision does (Kaiming normal), biases and BN shifts at 0, BN scales at 1.

`train_classifier` is one small, deterministic routine shared by both: Adam, BCE-with-logits for
"multilabel" labels [N, L] in {0, 1}, softmax cross-entropy for "multiclass" labels [N] (class
indices), host-side shuffling from `np.random.default_rng(seed)`, parameters from
`jax.random.key(seed)`, one jitted step (compiled once per config, task and batch shape), and
optional best-on-validation selection with early stopping. `predict` gives probabilities and
`embed` features, in padded batches so every batch reuses one compiled forward pass.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn
from tqdm.auto import tqdm

from jaxsyn.errors import ConfigError, DataError

TASKS = ("multilabel", "multiclass")
# Kingma & Ba 2015 defaults (b1 0.9, b2 0.999, eps 1e-8); the learning rate is applied in the
# step as a traced scalar, so changing it does not recompile.
_ADAM = optax.scale_by_adam()
# torchvision's conv initialisation: kaiming_normal_ (densenet.py: fan_in; resnet.py: fan_out).
_KAIMING_IN = nn.initializers.variance_scaling(2.0, "fan_in", "normal")
_KAIMING_OUT = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _check_positive(config, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(config, name)
        values = value if isinstance(value, tuple) else (value,)
        if not values or any(
            isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1 for v in values
        ):
            raise ConfigError(f"{name}: got {value!r}, expected positive integer(s)")


@dataclass(frozen=True, kw_only=True)
class DenseNetConfig:
    """DenseNet-121 (Huang et al. 2017, Table 1); `tiny()` for tests."""

    in_channels: int = 3  # RGB; 1 for radiographs, 9 for vertebral units
    num_outputs: int = 1000  # ImageNet classes (torchvision's default head)
    growth_rate: int = 32  # Huang et al. 2017, Table 1: k = 32
    block_layers: tuple[int, ...] = (6, 12, 24, 16)  # Table 1, DenseNet-121
    bn_size: int = 4  # §3 "Bottleneck layers": each 1x1 conv makes 4k feature maps
    compression: float = 0.5  # §3 "Compression": theta = 0.5 (DenseNet-BC)
    stem_features: int = 64  # §3 "Implementation details": 2k maps in the first conv (ImageNet)
    stem_kernel: int = 7  # §3 "Implementation details": 7x7 conv, stride 2
    stem_stride: int = 2
    stem_pool: bool = True  # §3: 3x3 max pool, stride 2, after the first conv
    bn_momentum: float = 0.9  # torchvision BatchNorm2d momentum 0.1 (Flax counts the other way)
    bn_epsilon: float = 1e-5  # torchvision BatchNorm2d eps
    dtype: str = "float32"  # compute dtype (DESIGN.md: float32 on CPU, bfloat16 on accelerators)

    def __post_init__(self):
        _check_positive(self, ("in_channels", "num_outputs", "growth_rate", "block_layers"))
        _check_positive(self, ("bn_size", "stem_features", "stem_kernel", "stem_stride"))
        if not 0 < self.compression <= 1:
            raise ConfigError(f"compression: got {self.compression!r}, expected a value in (0, 1]")

    @classmethod
    def tiny(cls, **overrides) -> DenseNetConfig:
        """Growth 8, two blocks of two layers, a 3x3/2 stem without pooling (~10k params)."""
        fields = dict(growth_rate=8, block_layers=(2, 2), stem_features=16, stem_kernel=3)
        return cls(**{**fields, "stem_pool": False, **overrides})

    def module(self) -> nn.Module:
        return DenseNet121(self)


@dataclass(frozen=True, kw_only=True)
class ResNetConfig:
    """ResNet-18 (He et al. 2016, Table 1) with a configurable stem; `tiny()` for tests."""

    in_channels: int = 3  # RGB; 9 for pGAN's vertebral units (Sun et al. 2021)
    num_outputs: int = 1000  # ImageNet classes (torchvision's default head)
    stage_sizes: tuple[int, ...] = (2, 2, 2, 2)  # Table 1, 18-layer: two basic blocks per stage
    width: int = 64  # Table 1: conv2_x has 64 maps, doubled at each later stage
    stem_kernel: int = 7  # Table 1 conv1: 7x7, 64, stride 2
    stem_stride: int = 2
    stem_pool: bool = True  # Table 1 conv2_x: 3x3 max pool, stride 2
    bn_momentum: float = 0.9  # torchvision BatchNorm2d momentum 0.1 (Flax counts the other way)
    bn_epsilon: float = 1e-5  # torchvision BatchNorm2d eps
    dtype: str = "float32"  # compute dtype (DESIGN.md: float32 on CPU, bfloat16 on accelerators)

    def __post_init__(self):
        _check_positive(self, ("in_channels", "num_outputs", "stage_sizes", "width"))
        _check_positive(self, ("stem_kernel", "stem_stride"))

    @classmethod
    def tiny(cls, **overrides) -> ResNetConfig:
        """Width 8, two stages of one block, a 3x3/2 stem without pooling."""
        fields = dict(stage_sizes=(1, 1), width=8, stem_kernel=3, stem_pool=False)
        return cls(**{**fields, **overrides})

    def module(self) -> nn.Module:
        return ResNet18(self)


def _stem(x, features, kernel, stride, pool, norm, dtype, init):
    pad = kernel // 2  # torchvision: padding=3 for the 7x7 conv
    x = nn.Conv(
        features, (kernel, kernel), (stride, stride), ((pad, pad),) * 2, use_bias=False,
        dtype=dtype, kernel_init=init, name="stem_conv",
    )(x)  # fmt: skip
    x = nn.relu(norm(name="stem_norm")(x))
    if pool:  # 3x3/2 max pool, padding 1 (torchvision)
        x = nn.max_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1)))
    return x


class _FeatureMap(nn.Module):
    """The identity, named: marks the last feature map (before global pooling) that `embed_map`
    reads through `capture_intermediates`. It has no variables, so parameter trees are as before."""

    @nn.compact
    def __call__(self, x):
        return x


class DenseNet121(nn.Module):
    """DenseNet-BC: images [N, H, W, C] -> (logits [N, num_outputs], features [N, F])."""

    config: DenseNetConfig = DenseNetConfig()

    @nn.compact
    def __call__(self, x, use_running_average: bool = True):
        c = self.config
        norm = functools.partial(
            nn.BatchNorm, use_running_average=use_running_average, momentum=c.bn_momentum,
            epsilon=c.bn_epsilon, dtype=c.dtype,
        )  # fmt: skip
        conv = functools.partial(nn.Conv, use_bias=False, dtype=c.dtype, kernel_init=_KAIMING_IN)
        x = x.astype(c.dtype)
        x = _stem(
            x, c.stem_features, c.stem_kernel, c.stem_stride, c.stem_pool, norm, c.dtype,
            _KAIMING_IN,
        )  # fmt: skip
        for b, layers in enumerate(c.block_layers):
            for i in range(layers):  # dense layer: BN-ReLU-1x1 conv, BN-ReLU-3x3 conv, concat
                y = nn.relu(norm(name=f"block{b}_layer{i}_norm1")(x))
                y = conv(c.bn_size * c.growth_rate, (1, 1), name=f"block{b}_layer{i}_conv1")(y)
                y = nn.relu(norm(name=f"block{b}_layer{i}_norm2")(y))
                y = conv(c.growth_rate, (3, 3), padding=((1, 1), (1, 1)),
                         name=f"block{b}_layer{i}_conv2")(y)  # fmt: skip
                x = jnp.concatenate([x, y], axis=-1)
            if b < len(c.block_layers) - 1:  # transition: BN-ReLU-1x1 conv (compress), avg pool
                x = nn.relu(norm(name=f"transition{b}_norm")(x))
                x = conv(int(x.shape[-1] * c.compression), (1, 1), name=f"transition{b}_conv")(x)
                x = nn.avg_pool(x, (2, 2), (2, 2))
        x = _FeatureMap(name="feature_map")(nn.relu(norm(name="final_norm")(x)))
        features = x.mean(axis=(1, 2)).astype(jnp.float32)
        logits = nn.Dense(c.num_outputs, dtype=c.dtype, name="head")(features)
        return logits.astype(jnp.float32), features


class _BasicBlock(nn.Module):
    features: int
    stride: int
    norm: Callable
    dtype: str

    @nn.compact
    def __call__(self, x):
        conv = functools.partial(
            nn.Conv, use_bias=False, dtype=self.dtype, kernel_init=_KAIMING_OUT
        )
        s, pad = (self.stride, self.stride), ((1, 1), (1, 1))
        y = nn.relu(self.norm(name="norm1")(conv(self.features, (3, 3), s, pad, name="conv1")(x)))
        y = self.norm(name="norm2")(conv(self.features, (3, 3), padding=pad, name="conv2")(y))
        if self.stride != 1 or x.shape[-1] != self.features:  # projection shortcut (option B)
            x = self.norm(name="down_norm")(conv(self.features, (1, 1), s, name="down_conv")(x))
        return nn.relu(x + y)


class ResNet18(nn.Module):
    """ResNet-18: images [N, H, W, C] -> (logits [N, num_outputs], features [N, F])."""

    config: ResNetConfig = ResNetConfig()

    @nn.compact
    def __call__(self, x, use_running_average: bool = True):
        c = self.config
        norm = functools.partial(
            nn.BatchNorm, use_running_average=use_running_average, momentum=c.bn_momentum,
            epsilon=c.bn_epsilon, dtype=c.dtype,
        )  # fmt: skip
        x = x.astype(c.dtype)
        x = _stem(
            x, c.width, c.stem_kernel, c.stem_stride, c.stem_pool, norm, c.dtype, _KAIMING_OUT
        )
        for s, blocks in enumerate(c.stage_sizes):
            for i in range(blocks):
                stride = 2 if s > 0 and i == 0 else 1
                x = _BasicBlock(c.width * 2**s, stride, norm, c.dtype, name=f"stage{s}_block{i}")(x)
        x = _FeatureMap(name="feature_map")(x)
        features = x.mean(axis=(1, 2)).astype(jnp.float32)
        logits = nn.Dense(c.num_outputs, dtype=c.dtype, name="head")(features)
        return logits.astype(jnp.float32), features


Config = DenseNetConfig | ResNetConfig  # and classifiers3d.ResNet3DConfig for volumes


def build(config: Config) -> nn.Module:
    """The module a config describes: each config class names its module (`config.module()`), so
    this module needs no import of the 3D configs (`classifiers3d.ResNet3DConfig`)."""
    if not callable(getattr(config, "module", None)):
        raise ConfigError(
            f"model config: got {type(config).__name__}, expected DenseNetConfig, ResNetConfig or "
            "ResNet3DConfig"
        )
    return config.module()


def _spatial_dims(config) -> int:
    return getattr(config, "spatial_dims", 2)  # 3 for ResNet3DConfig: [N, D, H, W, C]


@functools.partial(jax.jit, static_argnames=("config", "image_size"))
def init(key, config: Config, image_size: int | tuple[int, ...] = 32) -> dict:
    """Variables {"params", "batch_stats"} for images [N, image_size, image_size, in_channels]
    (volumes [N, S, S, S, C] for a 3D config; a tuple gives each side)."""
    sides = (image_size,) * _spatial_dims(config) if isinstance(image_size, int) else image_size
    x = jnp.zeros((1, *sides, config.in_channels), jnp.float32)
    return dict(build(config).init(key, x, use_running_average=True))


def param_count(config: Config, image_size: int = 32) -> int:
    """Number of trainable parameters (shape inference only, nothing is computed)."""
    shapes = jax.eval_shape(lambda key: init(key, config, image_size), jax.random.key(0))
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(shapes["params"]))


# ------------------------------------------------------------------------------------------------
# Training and inference


def _loss(logits, labels, task: str):
    if task == "multilabel":
        return optax.sigmoid_binary_cross_entropy(logits, labels).mean()
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def _host_loss(logits: np.ndarray, labels: np.ndarray, task: str) -> float:
    """The training loss in float64 numpy (no per-shape compile for validation sets)."""
    z = logits.astype(np.float64)
    if task == "multilabel":  # log(1 + e^z) - y z, stably
        return float((np.logaddexp(0.0, z) - labels * z).mean())
    log_p = z - np.logaddexp.reduce(z, axis=-1, keepdims=True)
    return float(-np.take_along_axis(log_p, labels[:, None].astype(np.int64), -1).mean())


_adam_init = jax.jit(_ADAM.init)


@functools.partial(jax.jit, static_argnames=("config", "task"), donate_argnums=(0,))
def _train_step(state, images, labels, lr, *, config, task):
    """One Adam step on a batch; state = (params, batch_stats, adam state)."""
    params, stats, opt = state

    def loss_fn(p):
        (logits, _), new = build(config).apply(
            {"params": p, "batch_stats": stats}, images, use_running_average=False,
            mutable=["batch_stats"],
        )  # fmt: skip
        return _loss(logits, labels, task), new["batch_stats"]

    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt = _ADAM.update(grads, opt, params)
    params = optax.apply_updates(params, jax.tree.map(lambda u: -lr * u, updates))
    return (params, stats, opt), loss


@functools.partial(jax.jit, static_argnames=("config",))
def _forward(variables, images, *, config):
    return build(config).apply(variables, images, use_running_average=True)


def _check_images(images, config: Config, name: str) -> np.ndarray:
    x = np.asarray(images)
    layout = "[N, H, W, C]" if _spatial_dims(config) == 2 else "[N, D, H, W, C]"
    if x.ndim != 2 + _spatial_dims(config) or len(x) == 0 or x.shape[-1] != config.in_channels:
        raise DataError(
            f"{name}: got shape {x.shape}, expected non-empty {layout} with C = "
            f"{config.in_channels} (config.in_channels)"
        )
    return x.astype(np.float32, copy=False)


def _check_labels(labels, n: int, config: Config, task: str, name: str) -> np.ndarray:
    if task not in TASKS:
        raise ConfigError(f"task: got {task!r}, expected one of {TASKS}")
    y = np.asarray(labels)
    if task == "multilabel":
        y = y.reshape(-1, 1) if y.ndim == 1 else y
        if y.shape != (n, config.num_outputs) or not np.isin(y, (0, 1)).all():
            raise DataError(
                f"{name}: got shape {y.shape}, expected [{n}, {config.num_outputs}] of 0/1 "
                "(one column per output)"
            )
        return y.astype(np.float32)
    if y.shape != (n,) or y.dtype.kind not in "iub" or y.min() < 0 or y.max() >= config.num_outputs:
        raise DataError(
            f"{name}: got shape {y.shape} dtype {y.dtype}, expected [{n}] class indices in "
            f"[0, {config.num_outputs})"
        )
    return y.astype(np.int32)


def train_classifier(
    config: Config,
    images,
    labels,
    *,
    task: str = "multilabel",
    epochs: int = 10,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    val: tuple | None = None,
    patience: int | None = None,
    progress: bool = False,
    history: list | None = None,
    init_variables: dict | None = None,
) -> dict:
    """Train `config`'s model from scratch on images [N, H, W, C] and labels; returns variables.

    labels: [N, L] of 0/1 for "multilabel" (L = num_outputs), [N] class indices for
    "multiclass". Each epoch visits a fresh permutation in batches of min(batch_size, N)
    (the last incomplete batch is dropped, so one shape is compiled). With `val` = (images,
    labels), the variables of the epoch with the lowest validation loss are returned, and with
    `patience` training stops after that many epochs without improvement. A `history` list gets
    one dict per epoch ("loss": the mean training loss, "val_loss"). `init_variables` starts
    from given variables (fine-tuning, e.g. `classifiers3d.load_medicalnet`) instead of seed's.
    Same inputs and seed: the same variables (CPU). A `classifiers3d.ResNet3DConfig` trains on
    volumes [N, D, H, W, C].
    """
    x = _check_images(images, config, "images")
    y = _check_labels(labels, len(x), config, task, "labels")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ConfigError(f"{name}: got {value!r}, expected a positive integer")
    if val is not None:
        vx = _check_images(val[0], config, "val images")
        vy = _check_labels(val[1], len(vx), config, task, "val labels")
    if init_variables is not None:  # a copy: the step donates its state
        variables = jax.tree.map(jnp.array, init_variables)
    else:
        variables = init(jax.random.key(seed), config, tuple(x.shape[1:-1]))
    state = (variables["params"], variables["batch_stats"], _adam_init(variables["params"]))
    rng, batch = np.random.default_rng(seed), min(batch_size, len(x))
    best, best_loss, waited = None, np.inf, 0
    bar = tqdm(range(epochs), "train classifier", unit="epoch", disable=not progress)
    for _ in bar:
        order = rng.permutation(len(x))
        losses = []
        for s in range(0, len(x) - batch + 1, batch):
            idx = np.sort(order[s : s + batch])  # sorted: contiguous reads from memory maps
            state, loss = _train_step(
                state, x[idx], y[idx], jnp.float32(lr), config=config, task=task
            )
            losses.append(loss)
        postfix = {"loss": float(np.mean(jax.device_get(losses)))}
        if val is not None:
            current = {"params": state[0], "batch_stats": state[1]}
            logits = _apply_batched(current, config, vx, batch_size, lambda out: out[0])
            postfix["val_loss"] = val_loss = _host_loss(logits, vy, task)
            if val_loss < best_loss:  # device_get: the next step donates (invalidates) state
                best, best_loss, waited = jax.device_get(current), val_loss, 0
            else:
                waited += 1
        bar.set_postfix(postfix)
        if history is not None:
            history.append(postfix)
        if patience is not None and waited >= patience:
            break
    if best is None:
        best = {"params": state[0], "batch_stats": state[1]}
    return jax.tree.map(jnp.asarray, best)


def _apply_batched(
    variables, config: Config, images: np.ndarray, batch: int, pick, *, forward=None
) -> np.ndarray:
    """pick(forward output) for images in batches, the last one zero-padded (one compile);
    `forward` defaults to the model's (logits, features)."""
    forward = _forward if forward is None else forward
    batch = min(batch, len(images))
    out = []
    for s in range(0, len(images), batch):
        chunk = images[s : s + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - n, *chunk.shape[1:]), chunk.dtype)])
        out.append(np.asarray(pick(forward(variables, chunk, config=config)))[:n])
    return np.concatenate(out)


def predict(
    variables, config: Config, images, *, task: str = "multilabel", batch: int = 64
) -> np.ndarray:
    """Probabilities float32 [N, num_outputs]: sigmoids ("multilabel") or softmax ("multiclass")."""
    if task not in TASKS:
        raise ConfigError(f"task: got {task!r}, expected one of {TASKS}")
    x = _check_images(images, config, "images")
    logits = _apply_batched(variables, config, x, batch, lambda out: out[0])
    z = logits.astype(np.float64)
    if task == "multilabel":
        return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)  # sigmoid, without overflow
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def embed(variables, config: Config, images, *, batch: int = 64) -> np.ndarray:
    """Penultimate pooled features float32 [N, F] (a domain feature extractor)."""
    x = _check_images(images, config, "images")
    return _apply_batched(variables, config, x, batch, lambda out: out[1]).astype(np.float32)


# `embed_map`'s grid: the last feature map averaged to at most 4 x 4 cells (ours, issue 17.7), so
# a DenseNet-121 on 256 x 256 images gives 16 x 1024 features, not 64 x 1024.
MAP_GRID = 4


@functools.partial(jax.jit, static_argnames=("config",))
def _forward_map(variables, images, *, config):
    _, state = build(config).apply(
        variables, images, use_running_average=True,
        capture_intermediates=lambda module, method: module.name == "feature_map",
    )  # fmt: skip
    return state["intermediates"]["feature_map"]["__call__"][0]


def embed_map(variables, config: Config, images, *, grid: int = MAP_GRID, batch: int = 64):
    """The last feature map before global pooling, each side averaged into at most `grid` cells
    (`np.array_split` bins), flattened: float32 [N, min(h, grid) * min(w, grid) * C]. A domain
    feature extractor that keeps where things are (issue 17.7); 2D configs only."""
    x = _check_images(images, config, "images")
    if _spatial_dims(config) != 2:
        raise ConfigError(f"embed_map: got {type(config).__name__}, expected a 2D config "
                          "(DenseNetConfig or ResNetConfig)")  # fmt: skip
    if isinstance(grid, bool) or not isinstance(grid, int | np.integer) or grid < 1:
        raise ConfigError(f"grid: got {grid!r}, expected a positive integer")
    maps = _apply_batched(variables, config, x, batch, lambda out: out, forward=_forward_map)
    for axis in (1, 2):  # mean over each bin of at most `grid` per side
        bins = np.array_split(np.arange(maps.shape[axis]), min(grid, maps.shape[axis]))
        starts = [int(b[0]) for b in bins]
        sizes = np.array([len(b) for b in bins], np.float32)
        shape = [1, 1, 1, 1]
        shape[axis] = len(bins)
        maps = np.add.reduceat(maps, starts, axis=axis) / sizes.reshape(shape)
    return maps.reshape(len(maps), -1).astype(np.float32)
