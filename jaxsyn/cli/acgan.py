"""AC-GAN's CLI: `train acgan`, `morph` (condition morphing), and `generate` for the 2D families
(acgan, proggan, cpdgan share one image writer: `<id>.png` + `labels.csv`)."""

from __future__ import annotations

from pathlib import Path

from jaxsyn.cli.common import apply_overrides, name_value
from jaxsyn.errors import ConfigError


def train(args, overrides: list[str]) -> None:
    from jaxsyn.train import acgan

    if args.data is None:
        raise ConfigError("--data is required for acgan: an image folder or phantom:vertebra:N")
    if args.steps is None:
        raise ConfigError("--steps is required for acgan")
    config = (acgan.ACGANTrainConfig.tiny if args.tiny else acgan.ACGANTrainConfig)(seed=args.seed)
    config = apply_overrides(config, overrides)
    acgan.run(
        args.out,
        args.data,
        steps=args.steps,
        config=config,
        class_column=args.class_column,
        resume=args.resume,
        checkpoint_every=args.checkpoint_every,
    )
    print(f"trained acgan to step {args.steps} in {args.out}")


def generate(args) -> None:
    from jaxsyn.infer.acgan import write_images

    conditions = dict(name_value(c) for c in args.condition)
    out = write_images(
        args.run, args.out, n=args.n, seed=args.seed, conditions=conditions, latents=args.latents
    )
    print(f"wrote {args.n} images, labels.csv and manifest.json to {out}")


def morph(args) -> None:
    from jaxsyn.infer.acgan import morph_strip

    out = morph_strip(
        args.run, args.out, source=args.source, target=args.target, frames=args.frames,
        seed=args.seed,
    )  # fmt: skip
    print(
        f"wrote {out}: {args.frames + 1} images, {args.source} to {args.target} in {args.frames} steps"
    )


def add_parsers(verbs) -> None:
    p = verbs.add_parser(
        "morph", help="AC-GAN condition morphing: a strip from one class to another"
    )
    p.add_argument("--run", type=Path, required=True, help="a run folder of `jaxsyn train acgan`")
    p.add_argument("--from", dest="source", required=True, help="start class (name or index)")
    p.add_argument("--to", dest="target", required=True, help="end class (name or index)")
    p.add_argument(
        "--frames",
        type=int,
        default=8,
        help="steps n between the classes; the strip shows n + 1 images, both classes included",
    )
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--seed", type=int, default=0, help="the fixed noise z")
    p.set_defaults(handler=morph)
