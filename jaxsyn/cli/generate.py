"""The `generate` verb: the run's config.json names its family, whose module writes the output.

A new family adds `generate(args)` to `jaxsyn/cli/<family>.py` and a line in WRITERS.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

# family (config.json "family") -> the module whose `generate(args)` writes its output
WRITERS = {
    "acgan": "jaxsyn.cli.acgan",
    "cpdgan": "jaxsyn.cli.acgan",
    "ctgan": "jaxsyn.cli.ctgan",
    "hagan": "jaxsyn.cli.hagan",
    "mmcgan": "jaxsyn.cli.mmcgan",
    "proggan": "jaxsyn.cli.acgan",
}
# a run without a family (or none at all) goes to HA-GAN's writer, whose loader says what is wrong
DEFAULT = "jaxsyn.cli.hagan"


def generate(args) -> None:
    info = args.run / "config.json"
    family = json.loads(info.read_text()).get("family") if info.is_file() else None
    importlib.import_module(WRITERS.get(family, DEFAULT)).generate(args)


def add_parsers(verbs) -> None:
    p = verbs.add_parser("generate", help="generate volumes or a table from a trained run")
    p.add_argument("--run", type=Path, required=True, help="a run folder made by `jaxsyn train`")
    p.add_argument("--n", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--condition", action="append", default=[], metavar="NAME=VALUE", help="repeatable"
    )
    p.add_argument("--format", default="nifti", help="nifti, zarr or nifti,zarr")
    p.add_argument("--chunk", type=int, default=4, help="hypercube slices per G^H chunk (memory)")
    p.set_defaults(handler=generate)
