"""The `jaxsyn` command: one verb per task, `--help` on each.

Errors the user can fix (`JaxsynError`) print as one line and exit 1; `--debug` (before or after
the verb) shows the traceback instead. Each verb group is a module of `jaxsyn.cli` with an
`add_parsers(verbs)`; this module only puts them together.
"""

from __future__ import annotations

import argparse
import sys

from jaxsyn.cli import (
    acgan,
    bench,
    cache,
    data,
    duiit,
    evaluate,
    generate,
    importer,
    mmcgan,
    models,
    reader_study,
    train,
)
from jaxsyn.errors import ConfigError, JaxsynError

# in the order `jaxsyn --help` lists them
VERB_GROUPS = (
    data,
    train,
    generate,
    evaluate,
    mmcgan,
    acgan,
    duiit,
    importer,
    models,
    reader_study,
    bench,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxsyn", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="do not keep compiled programs on disk (default: kept in $JAXSYN_CACHE_DIR or "
        "~/.cache/jaxsyn/jax, so a second run starts faster)",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for group in VERB_GROUPS:
        group.add_parsers(verbs)
    return parser


def split_argv(argv: list[str]) -> tuple[bool, list[str], list[str]]:
    """(debug, overrides, the rest for argparse) of a command line.

    `--debug` and `--config.FIELD=VALUE` may stand anywhere, so they are taken out before
    argparse, whose sub-parsers would reject a top-level flag after the verb; `--config.FIELD
    VALUE` (a space) is read as `--config.FIELD=VALUE`. A value that starts with a minus and a
    digit is joined to its flag (`--window -1024,600` -> `--window=-1024,600`): argparse takes
    only plain negative numbers as values and would read `-1024,600` as an unknown option.
    """
    debug, overrides, rest = False, [], []
    tokens = iter(argv)
    for token in tokens:
        if token == "--debug":
            debug = True
        elif token.startswith("--config."):
            if "=" not in token:
                value = next(tokens, None)
                if value is None or value.startswith("--"):
                    raise ConfigError(f"{token}: no value; expected {token}=VALUE")
                token = f"{token}={value}"
            overrides.append(token[len("--config.") :])
        elif rest and _negative_value(token) and _flag_without_value(rest[-1]):
            rest[-1] = f"{rest[-1]}={token}"
        else:
            rest.append(token)
    return debug, overrides, rest


def _negative_value(token: str) -> bool:
    return len(token) > 1 and token[0] == "-" and (token[1].isdigit() or token[1] == ".")


def _flag_without_value(token: str) -> bool:
    return token.startswith("--") and "=" not in token


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    use_cache = "--no-compile-cache" not in argv  # anywhere on the line, like --debug
    argv = [a for a in argv if a != "--no-compile-cache"]
    try:
        debug, overrides, rest = split_argv(argv)
    except ConfigError as e:
        print(f"jaxsyn: error: {e}", file=sys.stderr)
        return 1
    args = build_parser().parse_args(rest)
    cache.configure(use_cache)
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
