"""HA-GAN in PyTorch, our own implementation, to time jaxsyn against torch in the same run.

    .venv/bin/python benchmarks/hagan_torch.py --size 128 --batch 4 --steps 2 --threads 2
    .venv/bin/python benchmarks/hagan_torch.py --size 256 --what generate   # RSS of generation alone

Written from the layer-by-layer description in shared/reference/hagan.md (Sun et al., IEEE JBHI
2022; github batmanlab/HA-GAN), not from the official code. At width 1 the networks have the
official parameter counts; the training iteration is the official four-step one (D, G, E^H, E^G)
with its optimisers. Two deliberate differences from the official code: the generator's slab starts
exactly at `slab_index` (a multiple of 4; the official code may be up to 3 slices off the real crop),
and batch size 1 works (no `.squeeze()` before the position concat). Needs the `bench` extra (torch).
Prints one JSON line; timings are medians after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

LATENT = 1024
# D^L / E^G channel ladder at S=256 (÷2 per layer from S/4 down to 4³); smaller S keep its tail.
LADDER = (32, 64, 128, 256)
# D^H at S=256, input (1, S/8, S, S): (out channels, kernel, stride, padding). Smaller S drop the
# leading stride-2 rows (conv1 at 128, conv1-2 at 64, conv1-3 at 32) so the map still ends at 1³.
DH_ROWS = (
    (16, 4, 2, 1),
    (32, 4, 2, 1),
    (64, 4, 2, 1),
    (128, (2, 4, 4), 2, (0, 1, 1)),
    (256, (2, 4, 4), 2, (0, 1, 1)),
    (512, (1, 4, 4), (1, 2, 2), (0, 1, 1)),
    (128, (1, 4, 4), 1, 0),
)


def levels(size: int) -> int:
    """log2(S/16): the ÷2 steps from S/4 to 4³ (D^L, E^G) and the ×2 upsamplings in G^A."""
    n = int(math.log2(size)) if size > 0 else 0
    if 2**n != size or not 32 <= size <= 256:
        raise ValueError(f"size must be a power of two in [32, 256], got {size}")
    return n - 4


def channels(width: float):
    """Scales a hidden channel count; multiples of 8 so that every GroupNorm(8) divides it."""
    return lambda n: max(8, round(n * width / 8) * 8)


def conv_gn_relu(cin, cout, k, s, p, up=False):
    """[nearest ×2] → Conv3d → GroupNorm(8) → ReLU: every hidden layer of G, E^H and E^G."""
    layers = [nn.Upsample(scale_factor=2, mode="nearest")] if up else []
    return nn.Sequential(*layers, nn.Conv3d(cin, cout, k, s, p), nn.GroupNorm(8, cout), nn.ReLU())


def sn_conv_lrelu(cin, cout, k, s, p):
    # torch's parametrization keeps the raw weight as a parameter (`parametrizations.weight.original`)
    # and u, v as buffers, so parameter counts equal the unnormalised layer's; one power iteration
    # per forward in training mode, as the official BigGAN-style layer.
    return nn.Sequential(spectral_norm(nn.Conv3d(cin, cout, k, s, p)), nn.LeakyReLU(0.2))


class Generator(nn.Module):
    """G^A (trunk: z → hypercube), G^L (low head, whole hypercube), G^H (high head, any slab)."""

    def __init__(self, size: int, num_classes: int = 0, width: float = 1.0):
        super().__init__()
        c = channels(width)
        self.size, self.num_classes, self.c0 = size, num_classes, c(512)
        self.fc = nn.Linear(LATENT + num_classes, self.c0 * 4**3)  # → (512, 4, 4, 4)
        ch = [c(512), c(512), c(512), c(256), c(128), c(64)]
        ups = levels(size)  # blocks 2.. upsample until the hypercube is S/4 per side
        self.trunk_blocks = nn.Sequential(
            *(conv_gn_relu(ch[i], ch[i + 1], 3, 1, 1, up=1 <= i <= ups) for i in range(5))
        )
        self.low_head = nn.Sequential(
            conv_gn_relu(c(64), c(32), 3, 1, 1),
            conv_gn_relu(c(32), c(16), 3, 1, 1),
            nn.Conv3d(c(16), 1, 3, 1, 1),
            nn.Tanh(),
        )
        self.high_head = nn.Sequential(
            conv_gn_relu(c(64), c(32), 3, 1, 1, up=True),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv3d(c(32), 1, 3, 1, 1),
            nn.Tanh(),
        )

    def trunk(self, code):
        """code [B, 1024 (+N one-hot)] → hypercube [B, 64w, S/4, S/4, S/4]."""
        return self.trunk_blocks(self.fc(code).view(-1, self.c0, 4, 4, 4))

    def low(self, hyper):
        return self.low_head(hyper)  # [B, 1, S/4, S/4, S/4]

    def high(self, hyper):
        return self.high_head(hyper)  # 4× every side: a slab of depth d → image depth 4d

    def forward(self, code, slab_index: int):
        """Training path: (image slab [B,1,S/8,S,S] starting at slab_index, low-res volume)."""
        h = self.trunk(code)
        start = slab_index // 4  # exact: slab_index is a multiple of 4
        return self.high(h[:, :, start : start + self.size // 32]), self.low(h)


class Discriminator(nn.Module):
    """D^H on (slab, position) and D^L on the low-res volume; returns their averaged logits."""

    def __init__(self, size: int, num_classes: int = 0, width: float = 1.0):
        super().__init__()
        c = channels(width)
        self.size, self.num_classes = size, num_classes
        rows, cin = DH_ROWS[4 - levels(size) :], 1
        layers = []
        for cout, k, s, p in rows:
            layers.append(sn_conv_lrelu(cin, c(cout), k, s, p))
            cin = c(cout)
        self.high = nn.Sequential(*layers)
        self.fc1 = spectral_norm(nn.Linear(cin + 1, c(64)))  # +1: the slab position
        self.fc2 = spectral_norm(nn.Linear(c(64), 1))
        if num_classes:
            self.fc2_class = spectral_norm(nn.Linear(c(64), num_classes))
        ladder, cin, layers = LADDER[-levels(size) :], 1, []
        for cout in ladder:
            layers.append(sn_conv_lrelu(cin, c(cout), 4, 2, 1))
            cin = c(cout)
        layers.append(spectral_norm(nn.Conv3d(cin, 1 + num_classes, 4, 1, 0)))
        self.low = nn.Sequential(*layers)

    def forward(self, slab, low, slab_index: int):
        """logit [B] (and class logits [B, N] when conditional), each the D^H/D^L average."""
        h = self.high(slab).flatten(1)  # [B, 128w]; flatten, not squeeze, so B=1 works
        pos = h.new_full((h.shape[0], 1), slab_index / (self.size * 7 / 8))
        h = F.leaky_relu(self.fc1(torch.cat([h, pos], 1)), 0.2)
        out_l = self.low(low).flatten(1)  # [B, 1+N]
        logit = (self.fc2(h)[:, 0] + out_l[:, 0]) / 2
        if not self.num_classes:
            return logit
        return logit, (self.fc2_class(h) + out_l[:, 1:]) / 2


class SlabEncoder(nn.Module):
    """E^H: image slab (1, d, S, S) → hypercube slab (64w, d/4, S/4, S/4); inverts G^H."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        c = channels(width)
        self.net = nn.Sequential(
            conv_gn_relu(1, c(32), 4, 2, 1),
            conv_gn_relu(c(32), c(32), 3, 1, 1),
            conv_gn_relu(c(32), c(64), 4, 2, 1),
        )

    def forward(self, x):
        return self.net(x)


class HyperEncoder(nn.Module):
    """E^G: hypercube (64w, S/4, S/4, S/4) → latent [B, 1024]."""

    def __init__(self, size: int, width: float = 1.0):
        super().__init__()
        c = channels(width)
        cin, layers = c(64), []
        for cout in LADDER[-levels(size) :]:
            layers.append(conv_gn_relu(cin, c(cout), 4, 2, 1))
            cin = c(cout)
        layers.append(nn.Conv3d(cin, LATENT, 4, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, hyper):
        return self.net(hyper).flatten(1)


def build(size: int, num_classes: int = 0, width: float = 1.0) -> dict[str, nn.Module]:
    """The four networks at image size S; PyTorch default init, as the official code."""
    return {
        "g": Generator(size, num_classes, width),
        "d": Discriminator(size, num_classes, width),
        "eh": SlabEncoder(width),
        "eg": HyperEncoder(size, width),
    }


def optimizers(nets) -> dict[str, torch.optim.Optimizer]:
    """The official optimisers: Adam betas (0, 0.999), lr G 1e-4, D 4e-4, E^H and E^G 1e-4."""
    lr = {"g": 1e-4, "d": 4e-4, "eh": 1e-4, "eg": 1e-4}
    return {k: torch.optim.Adam(nets[k].parameters(), lr[k], betas=(0.0, 0.999)) for k in nets}


def _code(g: Generator, z, labels):
    """z with the one-hot class appended when conditional (AC-GAN style)."""
    if not g.num_classes:
        return z
    return torch.cat([z, F.one_hot(labels, g.num_classes).to(z.dtype)], 1)


def _logits(out):
    return out if isinstance(out, tuple) else (out, None)


def _only_trainable(nets, key):
    # Freezing the others (requires_grad False) skips their weight gradients while gradients still
    # flow through them, as the official code does.
    for k, net in nets.items():
        net.requires_grad_(k == key)


def _step(opt, loss):
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def iteration(nets, opts, real_full, slab_index: int, labels=None) -> dict[str, float]:
    """One official training iteration on real volumes [B, 1, S, S, S]; returns the four losses.

    The real slab (S/8 slices from slab_index) and the nearest ÷4 low-res volume are derived from
    real_full here, as the official code does; E^G's step needs the whole volume anyway.
    """
    g, d, eh, eg = nets["g"], nets["d"], nets["eh"], nets["eg"]
    size, depth = g.size, g.size // 8
    if slab_index % 4 or not 0 <= slab_index <= size - depth:
        raise ValueError(f"slab_index must be a multiple of 4 in [0, {size - depth}]")
    for net in nets.values():
        net.train()  # spectral norm advances u on each D call (3 per iteration)
    b = real_full.shape[0]
    real_slab = real_full[:, :, slab_index : slab_index + depth]
    real_low = F.interpolate(real_full, scale_factor=0.25, mode="nearest")
    ones, zeros = real_full.new_ones(b), real_full.new_zeros(b)
    bce, l1 = F.binary_cross_entropy_with_logits, F.l1_loss
    losses = {}

    # 1. D: real → 1, fake → 0 (+ class cross-entropy on real); G's forward builds no graph.
    _only_trainable(nets, "d")
    with torch.no_grad():
        fake = g(_code(g, torch.randn(b, LATENT), labels), slab_index)
    real_logit, real_cls = _logits(d(real_slab, real_low, slab_index))
    fake_logit, _ = _logits(d(*fake, slab_index))
    loss = bce(real_logit, ones) + bce(fake_logit, zeros)
    if real_cls is not None:
        loss = loss + F.cross_entropy(real_cls, labels)
    losses["d"] = _step(opts["d"], loss)

    # 2. G: non-saturating BCE with a fresh z (+ 0.1 class cross-entropy on fake).
    _only_trainable(nets, "g")
    fake = g(_code(g, torch.randn(b, LATENT), labels), slab_index)
    fake_logit, fake_cls = _logits(d(*fake, slab_index))
    loss = bce(fake_logit, ones)
    if fake_cls is not None:
        loss = loss + 0.1 * F.cross_entropy(fake_cls, labels)
    losses["g"] = _step(opts["g"], loss)

    # 3. E^H: reconstruct the real slab through G^H.
    _only_trainable(nets, "eh")
    losses["eh"] = _step(opts["eh"], l1(g.high(eh(real_slab)), real_slab))

    # 4. E^G: E^H over the 8 slabs of the whole volume → hypercube → ẑ → G, same slab_index.
    _only_trainable(nets, "eg")
    with torch.no_grad():
        hyper = torch.cat([eh(real_full[:, :, i : i + depth]) for i in range(0, size, depth)], 2)
    fake_slab, fake_low = g(_code(g, eg(hyper), labels), slab_index)
    loss = (l1(fake_slab, real_slab) + l1(fake_low, real_low)) / 2
    losses["eg"] = _step(opts["eg"], loss)

    for net in nets.values():
        net.requires_grad_(True)
    return losses


@torch.no_grad()
def generate(nets, n: int = 1, labels=None):
    """Full-resolution volumes [n, 1, S, S, S] in one pass, as the official inference: G^A →
    hypercube → G^H on the whole hypercube (no slabs, no chunking), eval mode."""
    g = nets["g"].eval()
    return g.high(g.trunk(_code(g, torch.randn(n, LATENT), labels)))


def _median_seconds(fn, runs: int) -> float:
    """Median wall time of `runs` calls after one untimed warm-up (allocator, oneDNN primitives)."""
    times = []
    for k in range(runs + 1):
        t0 = time.perf_counter()
        fn()
        if k:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="timed iterations after 1 warm-up")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed generations after 1 warm-up")
    parser.add_argument("--what", choices=("train", "generate", "both"), default="both")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    size = args.size
    nets = build(size)
    iteration_s = volume_s = None
    if args.what in ("train", "both"):
        opts = optimizers(nets)
        real = torch.rand(args.batch, 1, size, size, size) * 2 - 1  # values do not change cost
        iteration_s = _median_seconds(
            lambda: iteration(nets, opts, real, 4 * rng.randint(0, 7 * size // 32)), args.steps
        )
        del opts, real
    if args.what in ("generate", "both"):
        volume_s = _median_seconds(lambda: generate(nets, 1), args.repeats)
    print(
        json.dumps(
            {
                "impl": "torch",
                "what": args.what,
                "size": size,
                "batch": args.batch if iteration_s is not None else None,
                "steps": args.steps if iteration_s is not None else None,
                "threads": args.threads,
                "iteration_seconds": iteration_s,
                "volume_seconds": volume_s,
                # ru_maxrss is KiB on Linux
                "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "torch_version": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
