"""Runs `jaxsyn.train.toygan.run` in its own process, for the kill/resume and multi-host tests.

    python toy_worker.py --config JSON --out DIR --steps N --devices D [--checkpoint-every K]
        [--resume] [--kill-at S --after-checkpoint C] [--cache DIR]

`--config` is `checkpoint.as_json(ToyTrainConfig)`, so the worker trains what the test trains.

Multi-host: set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID; `run` joins.
`--kill-at S` SIGKILLs this process in the hook after step S, once checkpoint C is on disk (its
rename is the commit, so waiting for the directory makes the kill point deterministic).
"""

import argparse
import json
import os
import signal
import time
from pathlib import Path

import jax


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--devices", type=int, required=True)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--kill-at", type=int)
    p.add_argument("--after-checkpoint", type=int)
    p.add_argument("--cache", default="")
    args = p.parse_args()

    # Before anything touches a backend: a subprocess does not inherit the test session's config.
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", args.devices)
    if args.cache:
        jax.config.update("jax_compilation_cache_dir", args.cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

    from jaxsyn.models.toygan import ToyGANConfig
    from jaxsyn.train import loop, toygan

    fields = json.loads(args.config)
    config = toygan.ToyTrainConfig(**{**fields, "model": ToyGANConfig(**fields["model"])})

    hooks = []
    if args.kill_at is not None:
        done = Path(args.out) / "checkpoints" / str(args.after_checkpoint)

        def kill(step, state, batch):
            if step == args.kill_at:
                deadline = time.monotonic() + 60
                while not done.is_dir() and time.monotonic() < deadline:
                    time.sleep(0.05)
                os.kill(os.getpid(), signal.SIGKILL)

        hooks.append(loop.Hook(every=1, fn=kill))
    toygan.run(
        args.out,
        steps=args.steps,
        seed=config.seed,
        resume=args.resume,
        checkpoint_every=args.checkpoint_every,
        config=config,
        progress=False,
        hooks=hooks,
    )


if __name__ == "__main__":
    main()
