"""The reference HA-GAN's networks in PyTorch, for the peers tests: the module and tensor names,
shapes and forward passes of github.com/batmanlab/HA-GAN models/Model_HA_GAN_{128,256}.py and the
spectral norm of models/layers.py (one power iteration, `u0`/`sv0` buffers), written here from
shared/reference/hagan.md and a reading of those files.

Differences that do not change what a checkpoint holds or what the networks compute: the widths
are constructor arguments everywhere (the reference hard-codes 512 in G's `view` and D^L's
width inside `Discriminator`), so the training test can use narrower networks under the same
names; D puts crop_idx on the input's device (the reference calls `.cuda()`); the unused
Code_Discriminator is left out.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class _SN:
    """BigGAN-style spectral norm: W / σ, σ from one power iteration on W viewed [out, -1],
    starting from the buffer u0 [1, out], which training-mode calls overwrite."""

    def _sn_init(self, out: int) -> None:
        self.register_buffer("u0", torch.randn(1, out))
        self.register_buffer("sv0", torch.ones(1))

    def normalized_weight(self) -> torch.Tensor:
        w = self.weight.view(self.weight.size(0), -1)
        with torch.no_grad():
            v = F.normalize(self.u0 @ w, eps=1e-12)
            u = F.normalize(v @ w.t(), eps=1e-12)
            if self.training:
                self.u0[:] = u
        sigma = torch.squeeze((v @ w.t()) @ u.t())  # differentiable in W
        if self.training:
            with torch.no_grad():
                self.sv0[:] = sigma
        return self.weight / sigma


class SNConv3d(nn.Conv3d, _SN):
    def __init__(self, cin, cout, kernel_size, stride=1, padding=0):
        nn.Conv3d.__init__(self, cin, cout, kernel_size, stride, padding)
        self._sn_init(cout)

    def forward(self, x):
        return F.conv3d(x, self.normalized_weight(), self.bias, self.stride, self.padding)


class SNLinear(nn.Linear, _SN):
    def __init__(self, cin, cout):
        nn.Linear.__init__(self, cin, cout)
        self._sn_init(cout)

    def forward(self, x):
        return F.linear(x, self.normalized_weight(), self.bias)


def _conv(cin, cout, k=3, s=1, p=1):
    return nn.Conv3d(cin, cout, kernel_size=k, stride=s, padding=p)


def _up(x):
    return F.interpolate(x, scale_factor=2)  # nearest


class Sub_Generator(nn.Module):  # noqa: N801  (the reference's class names)
    def __init__(self, channel: int = 16):
        super().__init__()
        c = channel
        self.tp_conv1, self.bn1 = _conv(4 * c, 2 * c), nn.GroupNorm(8, 2 * c)
        self.tp_conv2, self.bn2 = _conv(2 * c, c), nn.GroupNorm(8, c)
        self.tp_conv3 = _conv(c, 1)

    def forward(self, h):
        h = F.relu(self.bn1(self.tp_conv1(h)))
        h = F.relu(self.bn2(self.tp_conv2(h)))
        return torch.tanh(self.tp_conv3(h))


class Generator(nn.Module):
    """G^A (fc1, tp_conv1..5) + G^H (tp_conv6, 7) + G^L (sub_G)."""

    def __init__(self, size=128, mode="train", latent_dim=1024, channel=32, num_class=0):
        super().__init__()
        c, self.size, self.mode, self.num_class = channel, size, mode, num_class
        self.fc1 = nn.Linear(latent_dim + num_class, 64 * 16 * c)
        widths = [16 * c, 16 * c, 16 * c, 8 * c, 4 * c, 2 * c]
        for i in range(5):
            setattr(self, f"tp_conv{i + 1}", _conv(widths[i], widths[i + 1]))
            setattr(self, f"bn{i + 1}", nn.GroupNorm(8, widths[i + 1]))
        self.tp_conv6, self.bn6 = _conv(2 * c, c), nn.GroupNorm(8, c)
        self.tp_conv7 = _conv(c, 1)
        self.sub_G = Sub_Generator(channel=c // 2)

    def forward(self, h, crop_idx=None, class_label=None):
        if crop_idx is not None or self.mode == "eval":
            if self.num_class:
                h = torch.cat((h, class_label), dim=1)
            h = self.fc1(h).view(h.shape[0], -1, 4, 4, 4)
            # upsampling before tp_conv2..4, and before tp_conv5 at 256 only
            ups = (False, True, True, True, self.size == 256)
            for i, up in enumerate(ups):
                h = _up(h) if up else h
                h = F.relu(getattr(self, f"bn{i + 1}")(getattr(self, f"tp_conv{i + 1}")(h)))
            if self.mode == "train":
                h_small = self.sub_G(h)
                d = self.size // 32
                h = h[:, :, crop_idx // 4 : crop_idx // 4 + d]
        h = F.relu(self.bn6(self.tp_conv6(_up(h))))
        h = torch.tanh(self.tp_conv7(_up(h)))
        if crop_idx is not None and self.mode == "train":
            return h, h_small
        return h


class Sub_Discriminator(nn.Module):  # noqa: N801
    def __init__(self, size=128, num_class=0, channel=256):
        super().__init__()
        self.num_class = num_class
        widths = [1, channel // 8, channel // 4, channel // 2, channel]
        self.first = 1 if size == 256 else 2  # conv1 exists only at 256
        for i in range(self.first, 5):
            cin = 1 if i == self.first else widths[i - 1]
            setattr(self, f"conv{i}", SNConv3d(cin, widths[i], 4, 2, 1))
        self.conv5 = SNConv3d(channel, 1 + num_class, 4, 1, 0)

    def forward(self, h):
        for i in range(self.first, 5):
            h = F.leaky_relu(getattr(self, f"conv{i}")(h), 0.2)
        h = self.conv5(h).view(-1, 1 + self.num_class)
        return (h[:, :1], h[:, 1:]) if self.num_class else h


class Discriminator(nn.Module):
    """D^H (conv1/2..7, fc1, fc2, fc2_class) + D^L (sub_D); logits averaged."""

    def __init__(self, size=128, num_class=0, channel=512, sub_channel=256):
        super().__init__()
        self.size, self.num_class = size, num_class
        ch = channel
        layers = [  # (out, kernel, stride, padding) of conv1..conv7
            (ch // 32, 4, 2, 1),
            (ch // 16, 4, 2, 1),
            (ch // 8, 4, 2, 1),
            (ch // 4, (2, 4, 4), 2, (0, 1, 1)),
            (ch // 2, (2, 4, 4), 2, (0, 1, 1)),
            (ch, (1, 4, 4), (1, 2, 2), (0, 1, 1)),
            (ch // 4, (1, 4, 4), 1, 0),
        ]
        self.first = 1 if size == 256 else 2
        cin = 1
        for i in range(self.first, 8):
            out, k, s, p = layers[i - 1]
            setattr(self, f"conv{i}", SNConv3d(cin, out, k, s, p))
            cin = out
        self.fc1 = SNLinear(ch // 4 + 1, ch // 8)
        self.fc2 = SNLinear(ch // 8, 1)
        if num_class:
            self.fc2_class = SNLinear(ch // 8, num_class)
        self.sub_D = Sub_Discriminator(size, num_class, sub_channel)

    def forward(self, h, h_small, crop_idx):
        for i in range(self.first, 8):
            h = F.leaky_relu(getattr(self, f"conv{i}")(h), 0.2)
        h = h.squeeze()
        position = crop_idx / (self.size * 7 / 8) * torch.ones((h.size(0), 1), dtype=h.dtype)
        h = F.leaky_relu(self.fc1(torch.cat([h, position], 1)), 0.2)
        logit = self.fc2(h)
        if self.num_class:
            small, small_class = self.sub_D(h_small)
            return (logit + small) / 2.0, (self.fc2_class(h) + small_class) / 2.0
        return (logit + self.sub_D(h_small)) / 2.0


class Encoder(nn.Module):
    def __init__(self, channel=64):
        super().__init__()
        c = channel
        self.conv1, self.bn1 = _conv(1, c // 2, 4, 2, 1), nn.GroupNorm(8, c // 2)
        self.conv2, self.bn2 = _conv(c // 2, c // 2, 3, 1, 1), nn.GroupNorm(8, c // 2)
        self.conv3, self.bn3 = _conv(c // 2, c, 4, 2, 1), nn.GroupNorm(8, c)

    def forward(self, h):
        for i in (1, 2, 3):
            h = F.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(h)))
        return h


class Sub_Encoder(nn.Module):  # noqa: N801
    def __init__(self, size=128, channel=256, latent_dim=1024):
        super().__init__()
        c = channel
        self.first = 1 if size == 256 else 2
        ins = {1: c // 4, 2: c // 8 if size == 256 else c // 4, 3: c // 4, 4: c // 2}
        outs = {1: c // 8, 2: c // 4, 3: c // 2, 4: c}
        for i in range(self.first, 5):
            setattr(self, f"conv{i}", _conv(ins[i], outs[i], 4, 2, 1))
            setattr(self, f"bn{i}", nn.GroupNorm(8, outs[i]))
        self.conv5 = _conv(c, latent_dim, 4, 1, 0)

    def forward(self, h):
        for i in range(self.first, 5):
            h = F.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(h)))
        return self.conv5(h).squeeze()
