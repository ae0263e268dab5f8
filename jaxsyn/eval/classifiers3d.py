"""A 3D ResNet for volumes: utility (train on synthetic, test on real) and 3D "domain" features.

Flax Linen, channels-last: volumes float32 [N, D, H, W, C] in [0, 1] -> `(logits [N, num_outputs],
features [N, F])`, the features being the globally pooled output of the last stage (the input of
the final linear layer, F = width x 2^(stages - 1)). It is trained, used and embedded with the
same functions as the 2D classifiers (`jaxsyn.eval.classifiers.train_classifier`, `predict`,
`embed`, which dispatch on the config), so `utility.tstr` takes it unchanged.

ResNet3D   MedicalNet's 3D ResNet (Chen, Ma & Zheng 2019, "Med3D: Transfer learning for 3D
           medical image analysis"; Tencent/MedicalNet `models/resnet.py`): a 7^3 stride-2
           convolution of 64 maps, batch norm, ReLU, a 3^3 stride-2 max pool, then stages of
           basic blocks (two 3^3 convolutions) of 64, 128, 256, 512 maps, the first block of a
           stage projecting its shortcut with a 1^3 convolution + BN when the shape changes
           (shortcut "B"), and global average pooling. ResNet-10 has one block per stage
           (`ResNet3DConfig()`), ResNet-18 two (`ResNet3DConfig.resnet18()`). MedicalNet, built
           for segmentation, keeps stages 3 and 4 at stride 1 with dilation 2 and 4
           (`medicalnet=True`); the default strides them by 2 as a classifier usually does. The
           parameter shapes are the same either way.

No weights ship with jaxsyn and nothing is downloaded: models are trained from scratch on the
data at hand. `load_medicalnet(path, config)` reads a MedicalNet checkpoint the user already has
on disk (e.g. `resnet_10_23dataset.pth`, a `torch.save` of {"state_dict": ...}) without torch
(`jaxsyn.torchfile`) into `{"params", "batch_stats"}`; the head is not in those files (they
end at a segmentation decoder) and is initialised from a key, so fine-tune it with
`train_classifier(..., init_variables=...)`.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from jaxsyn.errors import DataError
from jaxsyn.eval.classifiers import _KAIMING_OUT, _check_positive


@dataclass(frozen=True, kw_only=True)
class ResNet3DConfig:
    """MedicalNet's 3D ResNet-10 by default; `resnet18()` and `tiny()` presets."""

    in_channels: int = 1  # MedicalNet: one CT channel
    num_outputs: int = 1  # ours: one binary label; set it to the task's labels or classes
    stage_sizes: tuple[int, ...] = (1, 1, 1, 1)  # MedicalNet resnet10: layers [1, 1, 1, 1]
    width: int = 64  # MedicalNet: 64 maps in conv1 and layer1, doubled at each later stage
    stem_kernel: int = 7  # MedicalNet conv1: kernel 7, stride (2, 2, 2), padding 3
    stem_stride: int = 2
    stem_pool: bool = True  # MedicalNet: MaxPool3d(kernel 3, stride 2, padding 1)
    medicalnet: bool = False  # True: stages 3-4 at stride 1, dilation 2 and 4 (MedicalNet)
    bn_momentum: float = 0.9  # torch BatchNorm3d momentum 0.1 (Flax counts the other way)
    bn_epsilon: float = 1e-5  # torch BatchNorm3d eps
    dtype: str = "float32"  # compute dtype (DESIGN.md: float32 on CPU, bfloat16 on accelerators)

    spatial_dims = 3  # not a field: volumes [N, D, H, W, C] (the 2D configs have 2)

    def __post_init__(self):
        _check_positive(self, ("in_channels", "num_outputs", "stage_sizes", "width"))
        _check_positive(self, ("stem_kernel", "stem_stride"))

    @classmethod
    def resnet18(cls, **overrides) -> ResNet3DConfig:
        """MedicalNet resnet18: two basic blocks per stage."""
        return cls(**{"stage_sizes": (2, 2, 2, 2), **overrides})

    @classmethod
    def tiny(cls, **overrides) -> ResNet3DConfig:
        """Width 4, two stages of one block, a 3^3/2 stem without pooling (~2k params)."""
        fields = dict(stage_sizes=(1, 1), width=4, stem_kernel=3, stem_pool=False)
        return cls(**{**fields, **overrides})

    def module(self) -> nn.Module:
        return ResNet3D(self)


class _BasicBlock3D(nn.Module):
    features: int
    stride: int
    dilation: int
    norm: functools.partial
    dtype: str

    @nn.compact
    def __call__(self, x):
        conv = functools.partial(
            nn.Conv, use_bias=False, dtype=self.dtype, kernel_init=_KAIMING_OUT
        )
        d = self.dilation
        s, pad, dil = (self.stride,) * 3, ((d, d),) * 3, (d,) * 3
        y = conv(self.features, (3, 3, 3), s, pad, kernel_dilation=dil, name="conv1")(x)
        y = nn.relu(self.norm(name="norm1")(y))
        y = conv(self.features, (3, 3, 3), padding=pad, kernel_dilation=dil, name="conv2")(y)
        y = self.norm(name="norm2")(y)
        if self.stride != 1 or x.shape[-1] != self.features:  # shortcut "B": 1^3 conv + BN
            x = self.norm(name="down_norm")(conv(self.features, (1, 1, 1), s, name="down_conv")(x))
        return nn.relu(x + y)


class ResNet3D(nn.Module):
    """3D ResNet: volumes [N, D, H, W, C] -> (logits [N, num_outputs], features [N, F])."""

    config: ResNet3DConfig = ResNet3DConfig()

    @nn.compact
    def __call__(self, x, use_running_average: bool = True):
        c = self.config
        norm = functools.partial(
            nn.BatchNorm, use_running_average=use_running_average, momentum=c.bn_momentum,
            epsilon=c.bn_epsilon, dtype=c.dtype,
        )  # fmt: skip
        x = x.astype(c.dtype)
        k, pad = c.stem_kernel, c.stem_kernel // 2  # MedicalNet: padding 3 for the 7^3 conv
        x = nn.Conv(
            c.width, (k,) * 3, (c.stem_stride,) * 3, ((pad, pad),) * 3, use_bias=False,
            dtype=c.dtype, kernel_init=_KAIMING_OUT, name="stem_conv",
        )(x)  # fmt: skip
        x = nn.relu(norm(name="stem_norm")(x))
        if c.stem_pool:
            x = nn.max_pool(x, (3, 3, 3), (2, 2, 2), ((1, 1),) * 3)
        for s, blocks in enumerate(c.stage_sizes):
            dilation = 2 ** (s - 1) if c.medicalnet and s >= 2 else 1  # layer3: 2, layer4: 4
            for i in range(blocks):
                stride = 2 if s > 0 and i == 0 and dilation == 1 else 1
                x = _BasicBlock3D(
                    c.width * 2**s, stride, dilation, norm, c.dtype, name=f"stage{s}_block{i}"
                )(x)
        features = x.mean(axis=(1, 2, 3)).astype(jnp.float32)
        logits = nn.Dense(c.num_outputs, dtype=c.dtype, name="head")(features)
        return logits.astype(jnp.float32), features


# ------------------------------------------------------------------------------------------------
# MedicalNet weights from a local file


def _torch_names(config: ResNet3DConfig) -> dict[tuple[str, ...], str]:
    """Our variable paths -> MedicalNet state-dict prefixes (conv: ".weight"; BN: four tensors)."""
    names = {("stem_conv",): "conv1", ("stem_norm",): "bn1"}
    for s, blocks in enumerate(config.stage_sizes):
        for i in range(blocks):
            ours, theirs = f"stage{s}_block{i}", f"layer{s + 1}.{i}"
            names |= {
                (ours, "conv1"): f"{theirs}.conv1", (ours, "norm1"): f"{theirs}.bn1",
                (ours, "conv2"): f"{theirs}.conv2", (ours, "norm2"): f"{theirs}.bn2",
                (ours, "down_conv"): f"{theirs}.downsample.0",
                (ours, "down_norm"): f"{theirs}.downsample.1",
            }  # fmt: skip
    return names


def load_medicalnet(path: str | os.PathLike, config: ResNet3DConfig, *, seed: int = 0) -> dict:
    """Variables {"params", "batch_stats"} from a MedicalNet checkpoint on disk (torch not
    imported); the head, absent from those files, is initialised from `seed`. Every shape is
    checked against `config` (stage_sizes (1, 1, 1, 1) for resnet_10, (2, 2, 2, 2) for
    resnet_18, width 64, in_channels 1, stem_kernel 7)."""
    from jaxsyn.eval import classifiers
    from jaxsyn.torchfile import read_torch_file

    tensors = {
        k.removeprefix("state_dict.").removeprefix("module."): v
        for k, v in read_torch_file(path).items()
    }
    variables = jax.tree.map(np.asarray, classifiers.init(jax.random.key(seed), config, 16))
    params, stats = variables["params"], variables["batch_stats"]
    for ours, theirs in _torch_names(config).items():
        p = _get(params, ours)
        if p is None:
            continue  # a block without a projection shortcut
        if "kernel" in p:  # torch [out, in, kD, kH, kW] -> flax [kD, kH, kW, in, out]
            p["kernel"] = _take(tensors, f"{theirs}.weight", p["kernel"].shape, (2, 3, 4, 1, 0))
            continue
        b = _get(stats, ours)
        p["scale"] = _take(tensors, f"{theirs}.weight", p["scale"].shape)
        p["bias"] = _take(tensors, f"{theirs}.bias", p["bias"].shape)
        b["mean"] = _take(tensors, f"{theirs}.running_mean", b["mean"].shape)
        b["var"] = _take(tensors, f"{theirs}.running_var", b["var"].shape)
    return jax.tree.map(jnp.asarray, {"params": params, "batch_stats": stats})


def _get(tree: dict, path: tuple[str, ...]):
    for part in path:
        if part not in tree:
            return None
        tree = tree[part]
    return tree


def _take(tensors: dict, name: str, shape: tuple, axes: tuple | None = None) -> np.ndarray:
    if name not in tensors:
        raise DataError(f"MedicalNet weights: no tensor {name!r}; expected a MedicalNet ResNet")
    x = np.asarray(tensors[name], np.float32)
    x = x.transpose(axes) if axes is not None and x.ndim == len(axes) else x
    if x.shape != tuple(shape):
        raise DataError(
            f"MedicalNet weights: {name} has shape {x.shape} (after transposing), expected "
            f"{tuple(shape)} for this ResNet3DConfig"
        )
    return x
