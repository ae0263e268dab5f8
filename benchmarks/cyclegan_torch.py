"""CycleGAN in PyTorch, our own implementation, to time jaxsyn's translator against torch in the
same run (`benchmarks/cyclegan.py`).

    .venv/bin/python benchmarks/cyclegan_torch.py --size 128 --steps 5 --threads 2

The architecture of `jaxsyn.models.cyclegan` (Zhu et al. 2017, appendix 7.2), written from the
paper's layer notation, not from the reference code: generator c7s1-64, d128, d256, R256 x n
(9 above 128 px, 6 at 128 px and below), u128, u64, c7s1-1, tanh; reflection padding, instance
norm without affine parameters, ReLU, convolutions with bias, weights N(0, 0.02). 70 x 70
PatchGAN: C64 (no norm), C128, C256 (4x4, stride 2), C512 (stride 1), a 4x4 convolution to one
channel; LeakyReLU 0.2; padding 1. One grey channel.
One training iteration, as CycleGAN trains: the two generators together (LSGAN adversarial loss of
each direction + lambda_cyc 10 x the L1 cycle losses, identity loss when --identity > 0), then the
two discriminators on real images and on a generated image drawn through a 50-image history
buffer (Shrivastava et al. 2017), each with half the LSGAN loss; Adam 2e-4, betas (0.5, 0.999).
Needs the `bench` extra (torch). Prints one JSON line; the time is the median of --steps
iterations after --warmup warm-up iterations.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

POOL = 50  # history buffer size (CycleGAN section 4: the last 50 generated images)


def conv(cin, cout, k, s=1, p=0, pad_mode="zeros"):
    layer = nn.Conv2d(cin, cout, k, s, p, padding_mode=pad_mode)
    nn.init.normal_(layer.weight, 0.0, 0.02)
    nn.init.zeros_(layer.bias)
    return layer


class Residual(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), conv(n, n, 3), nn.InstanceNorm2d(n), nn.ReLU(True),
            nn.ReflectionPad2d(1), conv(n, n, 3), nn.InstanceNorm2d(n),
        )  # fmt: skip

    def forward(self, x):
        return x + self.body(x)


def generator(size: int, width: int = 64, channels: int = 1, blocks: int | None = None):
    """[B, C, S, S] in [-1, 1] -> [B, C, S, S] in [-1, 1]."""
    blocks = (9 if size > 128 else 6) if blocks is None else blocks
    n = width
    layers = [nn.ReflectionPad2d(3), conv(channels, n, 7), nn.InstanceNorm2d(n), nn.ReLU(True)]
    for mult in (1, 2):  # d128, d256
        layers += [conv(n * mult, n * mult * 2, 3, 2, 1), nn.InstanceNorm2d(n * mult * 2),
                   nn.ReLU(True)]  # fmt: skip
    layers += [Residual(n * 4) for _ in range(blocks)]
    for mult in (4, 2):  # u128, u64
        up = nn.ConvTranspose2d(n * mult, n * mult // 2, 3, 2, 1, output_padding=1)
        nn.init.normal_(up.weight, 0.0, 0.02)
        nn.init.zeros_(up.bias)
        layers += [up, nn.InstanceNorm2d(n * mult // 2), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), conv(n, channels, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def discriminator(width: int = 64, channels: int = 1, layers: int = 3):
    """[B, C, S, S] -> LSGAN scores [B, 1, P, P], one per 70 x 70 patch (3 layers)."""
    out = [conv(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    cin = width
    for i in range(1, layers + 1):
        stride = 2 if i < layers else 1
        cout = width * min(2**i, 8)
        out += [conv(cin, cout, 4, stride, 1), nn.InstanceNorm2d(cout), nn.LeakyReLU(0.2, True)]
        cin = cout
    out.append(conv(cin, 1, 4, 1, 1))
    return nn.Sequential(*out)


class History:
    """The 50-image buffer: until full, store and return the new image; then with p 0.5 return a
    stored image and put the new one in its place, else return the new one."""

    def __init__(self, rng: random.Random, size: int = POOL):
        self.rng, self.size, self.images = rng, size, []

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif self.rng.random() < 0.5:
                k = self.rng.randrange(self.size)
                out.append(self.images[k])
                self.images[k] = image
            else:
                out.append(image)
        return torch.stack(out)


def lsgan(scores: torch.Tensor, real: bool) -> torch.Tensor:
    return F.mse_loss(scores, torch.full_like(scores, 1.0 if real else 0.0))


def build(size: int, width: int = 64, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    nets = {"g_ab": generator(size, width), "g_ba": generator(size, width),
            "d_a": discriminator(width), "d_b": discriminator(width)}  # fmt: skip
    adam = dict(lr=2e-4, betas=(0.5, 0.999))
    opts = {
        "g": torch.optim.Adam([*nets["g_ab"].parameters(), *nets["g_ba"].parameters()], **adam),
        "d": torch.optim.Adam([*nets["d_a"].parameters(), *nets["d_b"].parameters()], **adam),
    }
    rng = random.Random(seed)
    return {"nets": nets, "opts": opts, "pool_a": History(rng), "pool_b": History(rng)}


def iteration(model: dict, a: torch.Tensor, b: torch.Tensor, identity: float = 0.0) -> dict:
    """One CycleGAN iteration on real batches a (domain A) and b (domain B)."""
    n, o = model["nets"], model["opts"]
    for d in (n["d_a"], n["d_b"]):
        d.requires_grad_(False)
    fake_b, fake_a = n["g_ab"](a), n["g_ba"](b)
    loss_g = lsgan(n["d_b"](fake_b), True) + lsgan(n["d_a"](fake_a), True)
    loss_cyc = F.l1_loss(n["g_ba"](fake_b), a) + F.l1_loss(n["g_ab"](fake_a), b)
    loss = loss_g + 10.0 * loss_cyc
    if identity > 0:
        loss = loss + identity * 10.0 * (F.l1_loss(n["g_ab"](b), b) + F.l1_loss(n["g_ba"](a), a))
    o["g"].zero_grad(set_to_none=True)
    loss.backward()
    o["g"].step()
    for d in (n["d_a"], n["d_b"]):
        d.requires_grad_(True)
    past_b, past_a = model["pool_b"](fake_b), model["pool_a"](fake_a)
    loss_d = 0.5 * (lsgan(n["d_b"](b), True) + lsgan(n["d_b"](past_b), False))
    loss_d = loss_d + 0.5 * (lsgan(n["d_a"](a), True) + lsgan(n["d_a"](past_a), False))
    o["d"].zero_grad(set_to_none=True)
    loss_d.backward()
    o["d"].step()
    return {"g": loss_g.item(), "cycle": loss_cyc.item(), "d": loss_d.item()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--identity", type=float, default=0.0, help="lambda_identity (0 = off)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = build(args.size, args.width, args.seed)
    g = torch.Generator().manual_seed(args.seed)
    shape = (args.batch, 1, args.size, args.size)
    a, b = torch.rand(shape, generator=g) * 2 - 1, torch.rand(shape, generator=g) * 2 - 1
    times = []
    for _ in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        iteration(model, a, b, args.identity)  # float() of the losses waits for the step
        times.append(time.perf_counter() - t0)
    params = sum(p.numel() for net in model["nets"].values() for p in net.parameters())
    print(json.dumps({"impl": "torch", "size": args.size, "batch": args.batch,
                      "steps": args.steps, "threads": args.threads,
                      "step_seconds": statistics.median(times[args.warmup:]),
                      "first_seconds": times[0], "parameters": params,
                      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "torch_version": torch.__version__}))  # fmt: skip


if __name__ == "__main__":
    main()
