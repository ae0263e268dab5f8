"""HA-GAN's CLI: `train hagan` (a volume store or phantom:ct:N) and `generate` for a hagan run
(NIfTI and/or zarr volumes at full resolution)."""

from __future__ import annotations

import dataclasses

from jaxsyn.cli.common import apply_overrides, numeric_conditions, store_for
from jaxsyn.errors import ConfigError


def train(args, overrides: list[str]) -> None:
    from jaxsyn.train import hagan

    if args.steps is None:
        raise ConfigError(f"--steps is required for {args.family}")
    config = (hagan.HAGANTrainConfig.tiny if args.tiny else hagan.HAGANTrainConfig)(seed=args.seed)
    config = apply_overrides(config, overrides)
    if args.condition_columns:
        names = args.condition_columns.split(",")
        model = dataclasses.replace(
            config.model, num_classes=args.num_classes, num_continuous=len(names) - 1
        )
        config = dataclasses.replace(
            config, model=model, class_column=names[0], continuous_columns=tuple(names[1:])
        )
    if args.data is None:
        raise ConfigError("--data is required for hagan: a store folder or phantom:ct:N")
    store = store_for(args.data, args.out, config.model.size, args.seed)
    hagan.run(
        args.out,
        store,
        steps=args.steps,
        config=config,
        resume=args.resume,
        checkpoint_every=args.checkpoint_every,
        preview_every=args.preview_every,
    )
    print(f"trained {args.family} to step {args.steps} in {args.out}")


def generate(args) -> None:
    from jaxsyn.infer import hagan

    out = hagan.write_volumes(
        args.run,
        args.out,
        n=args.n,
        seed=args.seed,
        conditions=numeric_conditions(args.condition),
        formats=tuple(args.format.split(",")),
        chunk=args.chunk,
        latents=args.latents,
    )
    print(f"wrote {args.n} volumes and manifest.json to {out}")
