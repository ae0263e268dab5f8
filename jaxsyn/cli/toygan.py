"""The toy GAN's CLI: `train toygan` (the loop's smoke test; no data)."""

from __future__ import annotations

from jaxsyn.cli.common import apply_overrides
from jaxsyn.errors import ConfigError


def train(args, overrides: list[str]) -> None:
    from jaxsyn.train import toygan

    if args.steps is None:
        raise ConfigError(f"--steps is required for {args.family}")
    config = toygan.ToyTrainConfig.tiny() if args.tiny else toygan.ToyTrainConfig()
    config = apply_overrides(config, overrides)
    toygan.run(
        args.out,
        steps=args.steps,
        seed=args.seed,
        resume=args.resume,
        config=config,
        checkpoint_every=args.checkpoint_every,
    )
    print(f"trained {args.family} to step {args.steps} in {args.out}")
