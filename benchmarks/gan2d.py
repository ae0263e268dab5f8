"""2D GAN throughput: training and generation images/s per model and resolution.

    .venv/bin/python benchmarks/gan2d.py --model acgan --size 64 --batch 32 --steps 20

Prints one JSON object per line and size: model, size, batch, channels, width, devices,
train_images_per_second (median step time over --steps steps after one warm-up/compile step, one
D and one G update per step), generate_images_per_second (one batch of --batch images from the
generator, median of 5 after a warm-up), compile_seconds (the first step), and the machine.
Data are random images in [-1, 1] and random labels: throughput does not depend on them.

    .venv/bin/python benchmarks/gan2d.py --model proggan,cpdgan --size 32 --batch 32 --width 64

prog-GAN is measured at its final stage (grown to --size, alpha 1: the most expensive stage),
cpD-GAN at --size; both with --width feature maps at every resolution (fmap_max; the papers'
512 is far beyond a 2-core CPU), 6 findings, 1 channel, latent 512, one D (with the WGAN-GP
double backward) and one G update per step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time


def acgan(size: int, batch: int, steps: int, width: int, batch_norm: bool) -> dict:
    import jax
    import numpy as np

    from jaxsyn.models import acgan as model
    from jaxsyn.train import acgan as train
    from jaxsyn.train import parallel

    config = train.ACGANTrainConfig(
        model=model.ACGANConfig(size=size, width=width, batch_norm=batch_norm), batch_size=batch
    )
    mesh = parallel.make_mesh(jax.devices()[:1])
    rng = np.random.default_rng(0)
    batch_np = {
        "image": rng.uniform(-1, 1, (batch, size, size, config.model.channels)).astype(np.float32),
        "label": rng.integers(0, config.model.num_classes, batch).astype(np.int32),
    }
    step = train.make_step(config, mesh)
    with jax.set_mesh(mesh):
        state = train.make_state(config, mesh)
        data = parallel.shard_batch(batch_np, mesh)
        t = time.perf_counter()
        state, metrics = step(state, data)
        jax.block_until_ready(state)
        compile_seconds = time.perf_counter() - t
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            state, metrics = step(state, data)
            jax.block_until_ready(state)
            times.append(time.perf_counter() - t)
    g = state.params["g"]
    stats = state.stats.get("batch_stats") if batch_norm else None
    labels = np.arange(batch) % config.model.num_classes
    gen = jax.jit(lambda p, s, k: model.generate(p, k, labels, config.model, s))
    jax.block_until_ready(gen(g, stats, jax.random.key(0)))
    gen_times = []
    for i in range(5):
        t = time.perf_counter()
        jax.block_until_ready(gen(g, stats, jax.random.key(i + 1)))
        gen_times.append(time.perf_counter() - t)
    return {
        "model": "acgan",
        "size": size,
        "batch": batch,
        "channels": config.model.channels,
        "width": width,
        "batch_norm": batch_norm,
        "devices": [str(d) for d in mesh.devices.flat],
        "compile_seconds": compile_seconds,
        "train_images_per_second": batch / statistics.median(times),
        "generate_images_per_second": batch / statistics.median(gen_times),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
    }


def gan2d(family: str, size: int, batch: int, steps: int, width: int) -> dict:
    import jax
    import numpy as np

    from jaxsyn.models import cpdgan, proggan
    from jaxsyn.train import gan2d as train
    from jaxsyn.train import parallel

    m_kw = dict(num_labels=6, size=size, fmap_base=width * size, fmap_max=width)
    if family == "proggan":
        model = proggan.ProgGANConfig(**m_kw, initial_size=size)  # start grown: the final stage
        config = train.ProgGANTrainConfig(model=model, batch_size=batch)
    else:
        model = cpdgan.CPDGANConfig(**m_kw)
        config = train.CPDGANTrainConfig(model=model, batch_size=batch)
    mesh = parallel.make_mesh(jax.devices()[:1])
    rng = np.random.default_rng(0)
    batch_np = {
        "image": rng.uniform(-1, 1, (batch, size, size, 1)).astype(np.float32),
        "label": (rng.random((batch, 6)) < 0.3).astype(np.float32),
    }
    step = train.StagedStep(config, mesh)
    with jax.set_mesh(mesh):
        state = train.make_state(config, mesh)
        data = parallel.shard_batch(batch_np, mesh)
        t = time.perf_counter()
        state, _ = jax.block_until_ready(step(state, data))
        compile_seconds = time.perf_counter() - t
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            state, _ = jax.block_until_ready(step(state, data))
            times.append(time.perf_counter() - t)
    g = jax.device_get(state.params["g"])
    labels = batch_np["label"]
    if family == "proggan":
        gen = lambda k: proggan.generate(g, k, labels, model)  # noqa: E731
    else:
        gen = lambda k: cpdgan.generate(g, k, labels, model)  # noqa: E731
    jax.block_until_ready(gen(jax.random.key(0)))
    gen_times = []
    for i in range(5):
        t = time.perf_counter()
        jax.block_until_ready(gen(jax.random.key(i + 1)))
        gen_times.append(time.perf_counter() - t)
    return {
        "model": family,
        "size": size,
        "batch": batch,
        "channels": 1,
        "width": width,
        "devices": [str(d) for d in mesh.devices.flat],
        "compile_seconds": compile_seconds,
        "train_images_per_second": batch / statistics.median(times),
        "generate_images_per_second": batch / statistics.median(gen_times),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="acgan", help="acgan, proggan, cpdgan (comma-separated)")
    p.add_argument("--size", default="32,64", help="image sides, comma-separated")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument(
        "--width",
        type=int,
        default=64,
        help="AC-GAN n (pGAN's released weights: 128); prog/cpD-GAN feature maps",
    )
    p.add_argument("--batch-norm", action="store_true", help="AC-GAN generator BatchNorm")
    args = p.parse_args()
    for model in args.model.split(","):
        for size in (int(s) for s in args.size.split(",")):
            if model == "acgan":
                row = acgan(size, args.batch, args.steps, args.width, args.batch_norm)
            elif model in ("proggan", "cpdgan"):
                row = gan2d(model, size, args.batch, args.steps, args.width)
            else:
                raise SystemExit(f"--model {model}: expected acgan, proggan or cpdgan")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
