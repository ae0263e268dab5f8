"""The `jaxsyn` command: one verb per task, `--help` on each.

Errors the user can fix (`JaxsynError`) print as one line and exit 1; `--debug` (before or after
the verb) shows the traceback instead. Each verb group is a module of `jaxsyn.cli` with an
`add_parsers(verbs)`; this module only puts them together.
"""

from __future__ import annotations

import argparse
import sys

from jaxsyn.cli import acgan, data, evaluate, generate, importer, mmcgan, train
from jaxsyn.errors import ConfigError, JaxsynError

# in the order `jaxsyn --help` lists them
VERB_GROUPS = (data, train, generate, evaluate, mmcgan, acgan, importer)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxsyn", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for group in VERB_GROUPS:
        group.add_parsers(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug and --config.FIELD=VALUE may stand anywhere, so they are taken out before argparse,
    # whose sub-parsers would reject a top-level flag after the verb
    debug = "--debug" in argv
    overrides = [a[len("--config.") :] for a in argv if a.startswith("--config.")]
    rest = [a for a in argv if a != "--debug" and not a.startswith("--config.")]
    args = build_parser().parse_args(rest)
    try:
        if getattr(args, "n", 1) is not None and getattr(args, "n", 1) < 1:
            raise ConfigError(f"--n is {args.n}; expected >= 1")
        if overrides and args.verb != "train":
            raise ConfigError(f"--config.* overrides are for `jaxsyn train`, not {args.verb}")
        args.handler(args, overrides) if args.verb == "train" else args.handler(args)
    except JaxsynError as e:
        if debug:
            raise
        print(f"jaxsyn {args.verb}: error: {e}", file=sys.stderr)
        return 1
    return 0
