"""State dicts with the reference HA-GAN's tensor names and shapes (models/Model_HA_GAN_256.py,
Model_HA_GAN_128.py, layers.py), written here from the widths as the reference's constructors
derive them, independently of jaxsyn.compat.hagan, and saved as train.py saves them.

For our smaller sizes (64, 32) the names continue the reference's pattern from 256 to 128: D^H,
D^L and E^G drop their leading stride-2 layers and keep the numbering of the rest.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from jaxsyn.models.hagan import HAGANConfig
from tests.torchwriter import save_torch

K3, K4 = (3, 3, 3), (4, 4, 4)
DH_KERNELS = [K4, K4, K4, (2, 4, 4), (2, 4, 4), (1, 4, 4), (1, 4, 4)]  # D^H conv1..conv7


def _conv(name, out, inp, kernel, sn=False):
    shapes = {f"{name}.weight": (out, inp, *kernel), f"{name}.bias": (out,)}
    if sn:  # SN's buffers: u0 [1, out], sv0 [1]
        shapes |= {f"{name}.u0": (1, out), f"{name}.sv0": (1,)}
    return shapes


def _linear(name, out, inp, sn=False):
    shapes = {f"{name}.weight": (out, inp), f"{name}.bias": (out,)}
    return shapes | ({f"{name}.u0": (1, out), f"{name}.sv0": (1,)} if sn else {})


def _norm(name, c):
    return {f"{name}.weight": (c,), f"{name}.bias": (c,)}


def generator(c: HAGANConfig) -> dict[str, tuple]:
    t, (l0, l1), h = c.trunk_channels, c.low_channels, c.high_channels
    s = _linear("fc1", 64 * t[0], c.latent_dim + c.num_classes)
    for i in range(5):
        s |= _conv(f"tp_conv{i + 1}", t[i], t[max(i - 1, 0)], K3) | _norm(f"bn{i + 1}", t[i])
    s |= _conv("tp_conv6", h, t[4], K3) | _norm("bn6", h) | _conv("tp_conv7", 1, h, K3)
    s |= _conv("sub_G.tp_conv1", l0, t[4], K3) | _norm("sub_G.bn1", l0)
    s |= _conv("sub_G.tp_conv2", l1, l0, K3) | _norm("sub_G.bn2", l1)
    return s | _conv("sub_G.tp_conv3", 1, l1, K3)


def discriminator(c: HAGANConfig) -> dict[str, tuple]:
    first = int(math.log2(256 // c.size))  # 0 at 256: conv1; 1 at 128: conv2; ...
    s, prev = {}, 1
    for i in range(first, 7):
        s |= _conv(f"conv{i + 1}", c.dh_channels[i], prev, DH_KERNELS[i], sn=True)
        prev = c.dh_channels[i]
    s |= _linear("fc1", c.dh_hidden, prev + 1, sn=True) | _linear("fc2", 1, c.dh_hidden, sn=True)
    if c.num_classes:
        s |= _linear("fc2_class", c.num_classes, c.dh_hidden, sn=True)
    prev = 1
    for k, w in enumerate(c.dl_channels[-c.ladder :]):
        s |= _conv(f"sub_D.conv{4 - c.ladder + k + 1}", w, prev, K4, sn=True)
        prev = w
    return s | _conv("sub_D.conv5", 1 + c.num_classes, prev, K4, sn=True)


def encoder(c: HAGANConfig) -> dict[str, tuple]:
    e0, e1, e2 = c.eh_channels
    s = _conv("conv1", e0, 1, K4) | _norm("bn1", e0) | _conv("conv2", e1, e0, K3)
    return s | _norm("bn2", e1) | _conv("conv3", e2, e1, K4) | _norm("bn3", e2)


def sub_encoder(c: HAGANConfig) -> dict[str, tuple]:
    s, prev = {}, c.hypercube_channels
    for k, w in enumerate(c.eg_channels[-c.ladder :]):
        i = 4 - c.ladder + k + 1
        s |= _conv(f"conv{i}", w, prev, K4) | _norm(f"bn{i}", w)
        prev = w
    return s | _conv("conv5", c.latent_dim, prev, K4)


SHAPES = {"G": generator, "D": discriminator, "E": encoder, "Sub_E": sub_encoder}


def random_state(shapes: dict[str, tuple], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def save_train_py(state: dict[str, np.ndarray], path: Path, prefix: str = "module.") -> Path:
    """As train.py saves: {'model': DataParallel's state dict, 'optimizer': Adam's}."""
    optimizer = {
        "state": {0: {"step": np.array(1.0, np.float32), "exp_avg": np.zeros(2, np.float32)}},
        "param_groups": [{"lr": 1e-4, "betas": (0.0, 0.999), "eps": 1e-8, "params": [0]}],
    }
    model = {f"{prefix}{k}": v for k, v in state.items()}
    return save_torch({"model": model, "optimizer": optimizer}, path)


def write_checkpoints(
    directory: Path, config: HAGANConfig, iteration: int, nets=("G", "D", "E", "Sub_E")
) -> dict[str, dict[str, np.ndarray]]:
    """Random reference-format files {net}_iter{iteration}.pth; returns their state dicts."""
    directory.mkdir(parents=True, exist_ok=True)
    states = {}
    for i, net in enumerate(nets):
        states[net] = random_state(SHAPES[net](config), seed=i)
        save_train_py(states[net], directory / f"{net}_iter{iteration}.pth")
    return states
