"""MMCGAN's joint step beside HA-GAN's, same image networks, same batch, same process.

    .venv/bin/python benchmarks/mmcgan.py --size 64 --batch 2 --steps 3

Prints one JSON line per size: seconds per step (median of --steps after one warm-up each) of
  hagan          HA-GAN's four-step iteration (D, G, E^H, E^G)
  mmcgan_image   an MMCGAN step that trains the image heads (every 5th): tabular D + image D +
                 joint G + E^H + E^G
  mmcgan_table   an MMCGAN step between them: tabular D + joint G through G^A and the tabular head
and the derived figures: `image_overhead` = mmcgan_image / hagan - 1 (what the tabular head adds
to an HA-GAN iteration) and `cycle_seconds_per_step` = (mmcgan_image + 4 mmcgan_table) / 5.
Data are random volumes and rows: throughput does not depend on them. The model is the full-width
HA-GAN at --size (HAGANConfig(size=...)) with a 4-class condition and the default tabular head on
the CT phantom table's encoded layout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

import jax
import numpy as np


def _time(step, state, batch, steps: int) -> tuple[float, object]:
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        state, metrics = step(state, batch)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]), state


def bench(size: int, batch: int, steps: int) -> dict:
    from jaxsyn.data.phantoms.ct import clinical_table
    from jaxsyn.data.tabular import TableTransformer, infer_schema
    from jaxsyn.models.hagan import HAGANConfig
    from jaxsyn.models.mmcgan import MMCGANConfig
    from jaxsyn.train import hagan, mmcgan, parallel
    from jaxsyn.train.state import born_replicated

    mesh = parallel.make_mesh(jax.devices()[:1])
    image = HAGANConfig(size=size, batch_size=batch, num_classes=4)
    rng = np.random.default_rng(0)
    s = size
    volume = rng.uniform(-1, 1, (batch, s, s, s, 1)).astype(np.float32)
    host = {
        "volume": volume,
        "slab": volume[:, : s // 8],
        "low": volume[:, ::4, ::4, ::4],
        "slab_index": np.zeros((batch,), np.int32),
        "conditions": rng.integers(0, 4, (batch, 1)).astype(np.float32),
    }
    out = {"size": size, "batch": batch, "devices": 1, "platform": jax.devices()[0].platform}
    with jax.set_mesh(mesh):
        h_config = hagan.HAGANTrainConfig(model=image, class_column="bmi_class")
        h_state = hagan.make_state(h_config, mesh)
        out["hagan"], _ = _time(
            hagan.make_step(h_config, mesh), h_state, parallel.shard_batch(host, mesh), steps
        )
        del h_state
        table = clinical_table(256, seed=0)
        schema = infer_schema(table, id_column="patient_id", kinds={"bmi_class": "categorical"})
        transformer = TableTransformer.fit(table, schema, progress=False)
        config = mmcgan.MMCGANTrainConfig(model=MMCGANConfig(image=image), batch_size=batch)
        config = dataclasses.replace(config, model=config.model.bind(transformer.layout))
        layout = transformer.layout
        host = {**host, "row": rng.uniform(0, 1, (batch, layout.dim)).astype(np.float32),
                "tab_cond": np.zeros((batch, layout.cond_dim), np.float32)}  # fmt: skip
        data = parallel.shard_batch(host, mesh)
        step = mmcgan.make_step(config, mesh)
        state = born_replicated(lambda: mmcgan.init_state(config), mesh)
        # step k trains the image heads when (k + 1) % 5 == 0: time each kind at its own steps
        table_times, image_times = [], []
        state, m = step(state, data)  # step 1 (tabular; warm-up and compile)
        jax.block_until_ready(m)
        for k in range(1, 5 * (steps + 1)):
            t0 = time.perf_counter()
            state, m = step(state, data)
            jax.block_until_ready(m)
            (image_times if (k + 1) % 5 == 0 else table_times).append(time.perf_counter() - t0)
            if len(image_times) > steps and len(table_times) > steps:
                break
    out["mmcgan_image"] = statistics.median(image_times[1:] or image_times)
    out["mmcgan_table"] = statistics.median(table_times[1:])
    out["image_overhead"] = out["mmcgan_image"] / out["hagan"] - 1
    out["cycle_seconds_per_step"] = (out["mmcgan_image"] + 4 * out["mmcgan_table"]) / 5
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="64", help="volume sides, comma-separated")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args()
    for size in map(int, args.size.split(",")):
        print(json.dumps(bench(size, args.batch, args.steps)), flush=True)


if __name__ == "__main__":
    main()
