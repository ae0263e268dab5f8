"""The `train` verb: one parser for every family, each family's run in its own module.

A new family adds `jaxsyn/cli/<family>.py` with `train(args, overrides)` and a line in FAMILIES.
"""

from __future__ import annotations

import importlib
from pathlib import Path

# family -> the module whose `train(args, overrides)` runs it
FAMILIES = {
    "acgan": "jaxsyn.cli.acgan",
    "cpdgan": "jaxsyn.cli.gan2d",
    "ctgan": "jaxsyn.cli.ctgan",
    "duiit": "jaxsyn.cli.duiit",
    "hagan": "jaxsyn.cli.hagan",
    "mmcgan": "jaxsyn.cli.mmcgan",
    "proggan": "jaxsyn.cli.gan2d",
    "toygan": "jaxsyn.cli.toygan",
}


def train(args, overrides: list[str]) -> None:
    importlib.import_module(FAMILIES[args.family]).train(args, overrides)


def add_parsers(verbs) -> None:
    p = verbs.add_parser(
        "train", help="train a model family; --config.FIELD=VALUE overrides its config"
    )
    p.add_argument("family", choices=tuple(FAMILIES))
    p.add_argument(
        "--data",
        help="hagan: a store folder or phantom:ct:N; ctgan: a .csv/.parquet table or "
        "phantom:ct-table:N; acgan: an image folder or phantom:vertebra:N; proggan, cpdgan: an "
        "image folder with 0/1 finding columns in labels.csv, phantom:cxr:N or phantom:headct:N",
    )
    p.add_argument(
        "--out", type=Path, required=True, help="run folder (checkpoints, metrics, previews)"
    )
    p.add_argument("--steps", type=int, help="train until this step")
    p.add_argument("--epochs", type=int, help="ctgan, mmcgan: epochs as the reference counts them")
    p.add_argument("--discrete", help="ctgan: columns to model as categorical, a,b,c")
    p.add_argument("--id-column", help="ctgan: the table's id column (default: detected)")
    p.add_argument(
        "--metadata",
        type=Path,
        help="ctgan: SDV single-table metadata JSON describing the columns (instead of "
        "--discrete/--id-column)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint in --out"
    )
    p.add_argument(
        "--tiny", action="store_true", help="start from the family's tiny config (smoke runs)"
    )
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument(
        "--preview-every", type=int, default=500, help="hagan: PNG previews every N steps"
    )
    p.add_argument("--condition-columns", help="hagan, mmcgan: CLASS[,CONTINUOUS...] table columns")
    p.add_argument("--num-classes", type=int, default=4, help="hagan: classes of the class column")
    p.add_argument("--class-column", default="region", help="acgan: the label column (classes)")
    p.add_argument(
        "--target", help="duiit: the target modality's images (folder or phantom:head-ct:N)"
    )
    p.add_argument(
        "--source",
        action="append",
        help="duiit: a source modality's images (folder or phantom:head-mri:N); repeatable",
    )
    p.add_argument("--label", help="duiit: the label column of labels.csv (e.g. age)")
    p.add_argument(
        "--setting",
        help="duiit: joint (default), pure, cyclegan, tl, mtl, dann, augment, autoaugment, erasing",
    )
    p.set_defaults(handler=train)
