"""DUIIT's CLI: `train duiit` (every setting), `translate` and `predict` from a run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from jaxsyn.cli.common import apply_overrides
from jaxsyn.errors import ConfigError


def train(args, overrides: list[str]) -> None:
    from jaxsyn.models.duiit import SETTINGS
    from jaxsyn.train import duiit

    setting = args.setting or "joint"
    if setting not in SETTINGS:
        raise ConfigError(f"--setting is {setting!r}; expected one of {', '.join(SETTINGS)}")
    if args.target is None:
        raise ConfigError("--target is required for duiit: an image folder or phantom:head-ct:N")
    if args.steps is None:
        raise ConfigError("--steps is required for duiit")
    sources = list(args.source or [])
    if setting in duiit.NEEDS_SOURCES and not sources:
        raise ConfigError(f"--source is required for --setting {setting}: a folder or "
                          "phantom:head-mri:N (repeat it for several modalities)")  # fmt: skip
    if setting not in duiit.NEEDS_SOURCES and sources:
        print(f"--setting {setting} trains on the target alone: --source ignored")
        sources = []
    if args.label is None and setting != "cyclegan":
        raise ConfigError(f"--label is required for --setting {setting}: the label column of "
                          "labels.csv (e.g. age); only cyclegan trains without one")  # fmt: skip
    pet = any("pet" in str(s).lower() for s in sources)
    config = duiit.setting_defaults(setting, sources=len(sources) or 1, pet=pet, tiny=args.tiny,
                                    seed=args.seed)  # fmt: skip
    if args.label is None:  # cyclegan: the translators alone
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, predict=False))
    config = apply_overrides(config, overrides)
    duiit.run(args.out, args.target, sources, label=args.label, steps=args.steps, config=config,
              resume=args.resume, checkpoint_every=args.checkpoint_every)  # fmt: skip
    print(f"trained duiit ({setting}) to step {args.steps} in {args.out}")


def translate(args) -> None:
    from jaxsyn.infer.duiit import write_translations

    out = write_translations(args.run, args.images, args.out, source=args.source,
                             reverse=args.reverse, n=args.n, seed=args.seed)  # fmt: skip
    print(f"wrote translated images, labels.csv and manifest.json to {out}")


def predict(args) -> None:
    from jaxsyn.infer.duiit import write_predictions

    out = write_predictions(args.run, args.images, args.out)
    print(f"wrote predictions.csv and manifest.json to {out}")


def add_parsers(verbs) -> None:
    p = verbs.add_parser(
        "translate", help="DUIIT: translate images into the target modality with a trained run"
    )
    p.add_argument("--run", type=Path, required=True, help="a run of `jaxsyn train duiit`")
    p.add_argument("--images", required=True,
                   help="a folder of images (or NIfTI volumes) with labels.csv, or "
                        "phantom:head-mri|head-pet|head-ct:N (drawn from --seed)")  # fmt: skip
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, default=None, help="translate the first N images only")
    p.add_argument("--seed", type=int, default=0, help="the phantoms' seed (phantom:...)")
    p.add_argument("--source", type=int, default=0,
                   help="which source modality's translator (the order of --source in training)")  # fmt: skip
    p.add_argument("--reverse", action="store_true",
                   help="target -> source instead (CycleGAN's F)")  # fmt: skip
    p.set_defaults(handler=translate)
    p = verbs.add_parser("predict", help="DUIIT: predict the label of images with a trained run")
    p.add_argument("--run", type=Path, required=True, help="a run of `jaxsyn train duiit`")
    p.add_argument("--images", type=Path, required=True,
                   help="a folder of images (or NIfTI volumes) with labels.csv")  # fmt: skip
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(handler=predict)
