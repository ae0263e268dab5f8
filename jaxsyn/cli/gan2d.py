"""prog-GAN's and cpD-GAN's CLI: `train proggan|cpdgan` (their images are written by the 2D
writer shared with AC-GAN: `generate` goes through `jaxsyn.cli.acgan.generate`)."""

from __future__ import annotations

from jaxsyn.cli.common import apply_overrides
from jaxsyn.errors import ConfigError


def train(args, overrides: list[str]) -> None:
    from jaxsyn.train import gan2d

    if args.steps is None:
        raise ConfigError(f"--steps is required for {args.family}")
    if args.data is None:
        raise ConfigError(f"--data is required for {args.family}: an image folder with "
                          "labels.csv, phantom:cxr:N or phantom:headct:N")  # fmt: skip
    config = gan2d.default_config(args.family, tiny=args.tiny, seed=args.seed)
    config = apply_overrides(config, overrides)
    gan2d.run(args.out, args.data, steps=args.steps, config=config, resume=args.resume,
              checkpoint_every=args.checkpoint_every)  # fmt: skip
    print(f"trained {args.family} to step {args.steps} in {args.out}")
