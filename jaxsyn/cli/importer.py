"""The `import` verb: another implementation's checkpoints as a jaxsyn run folder.

jaxsyn import hagan --checkpoint-dir checkpoint/HA_GAN_run1 --iteration 80000 --out runs/copd
jaxsyn generate --run runs/copd --n 4 --out synthetic/
"""

from __future__ import annotations

from pathlib import Path

from jaxsyn.errors import ConfigError

HAGAN_HELP = """Read the reference HA-GAN's (github.com/batmanlab/HA-GAN) train.py checkpoints
G_iterN.pth (required), D_iterN.pth, E_iterN.pth and Sub_E_iterN.pth (imported when present)
without torch, and write a run folder that `jaxsyn generate --run` and jaxsyn.infer.hagan use.
Optimizer entries are ignored: the run holds fresh Adam moments and cannot be resumed with
`jaxsyn train --resume`. The folder appears whole or not at all."""


def import_hagan(args) -> None:
    from jaxsyn.compat import hagan

    try:
        lo, hi = (float(v) for v in args.window.split(","))
    except ValueError:
        raise ConfigError(f"--window is {args.window!r}; expected LO,HI in HU") from None
    out = hagan.import_run(
        args.checkpoint_dir,
        args.iteration,
        args.out,
        size=args.size,
        num_classes=args.num_class,
        latent_dim=args.latent_dim,
        window=(lo, hi),
        spacing_mm=args.spacing_mm,
    )
    print(f"imported iteration {args.iteration} of {args.checkpoint_dir} into {out}")


def add_parsers(verbs) -> None:
    p = verbs.add_parser("import", help="turn another implementation's checkpoints into a run")
    families = p.add_subparsers(dest="family", required=True, metavar="FAMILY")
    h = families.add_parser(
        "hagan", help="the reference HA-GAN's train.py checkpoints", description=HAGAN_HELP
    )
    h.add_argument(
        "--checkpoint-dir", type=Path, required=True, help="train.py's checkpoint/<exp_name>"
    )
    h.add_argument("--iteration", type=int, required=True, help="N of G_iterN.pth")
    h.add_argument(
        "--size",
        type=int,
        choices=(128, 256),
        help="train.py --img-size (default: read from D/Sub_E; needed for G alone)",
    )
    h.add_argument(
        "--num-class", type=int, help="train.py --num-class (default: read from the files)"
    )
    h.add_argument("--latent-dim", type=int, default=1024, help="train.py --latent-dim")
    h.add_argument(
        "--window",
        default="-1024,600",
        help="--window=LO,HI: the HU window the training data were scaled from to [-1, 1] (the reference's CT: -1024,600)",
    )
    h.add_argument("--spacing-mm", type=float, default=1.0, help="voxel size of generated volumes")
    h.add_argument("--out", type=Path, required=True, help="the new run folder")
    h.set_defaults(handler=import_hagan)
