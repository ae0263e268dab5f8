"""The `generate` verb: the run's config.json names its family, whose module writes the output.

A new family adds `generate(args)` to `jaxsyn/cli/<family>.py` and a line in WRITERS.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from jaxsyn.errors import ConfigError
from jaxsyn.infer import run_info

# family (config.json "family") -> the module whose `generate(args)` writes its output
WRITERS = {
    "acgan": "jaxsyn.cli.acgan",
    "cpdgan": "jaxsyn.cli.acgan",
    "ctgan": "jaxsyn.cli.ctgan",
    "hagan": "jaxsyn.cli.hagan",
    "mmcgan": "jaxsyn.cli.mmcgan",
    "proggan": "jaxsyn.cli.acgan",
}

# families whose cohorts split over processes (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
# JAX_PROCESS_ID set on every host; jaxsyn.infer.hosts)
HOSTS = ("hagan", "mmcgan")


def generate(args) -> None:
    # a missing run, or one of no family we know, is refused naming every family
    family = run_info(args.run, tuple(WRITERS))["family"]
    if args.latents is not None:
        args.latents = read_latents(args.latents)
        if args.n is not None and args.n != len(args.latents):
            raise ConfigError(
                f"--n is {args.n} and --latents holds {len(args.latents)} vectors; expected equal (or no --n)"
            )
        args.n = len(args.latents)
    args.n = 1 if args.n is None else args.n
    if family in HOSTS:  # join a multi-process run named by the environment, if any
        from jaxsyn.train.parallel import initialize_distributed

        initialize_distributed()
    importlib.import_module(WRITERS[family]).generate(args)


def read_latents(path: Path) -> np.ndarray:
    """[N, latent] float32 noise vectors from a .npy file, or a one-line error naming it."""
    try:
        z = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ConfigError(f"--latents {path}: no such file") from None
    except (ValueError, OSError) as e:
        raise ConfigError(f"--latents {path}: not a .npy array file ({e})") from None
    if z.ndim != 2 or z.shape[0] < 1 or not np.issubdtype(z.dtype, np.number):
        raise ConfigError(
            f"--latents {path}: {z.dtype} array of shape {list(z.shape)}; expected numbers of shape [N, latent size], N >= 1"
        )
    return z.astype(np.float32)


def add_parsers(verbs) -> None:
    p = verbs.add_parser("generate", help="generate volumes or a table from a trained run")
    p.add_argument("--run", type=Path, required=True, help="a run folder made by `jaxsyn train`")
    p.add_argument("--n", type=int, default=None, help="how many (default 1, or --latents' N)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--condition", action="append", default=[], metavar="NAME=VALUE", help="repeatable"
    )
    p.add_argument("--format", default="nifti", help="nifti, zarr or nifti,zarr")
    p.add_argument("--chunk", type=int, default=4, help="hypercube slices per G^H chunk (memory)")
    p.add_argument(
        "--latents",
        type=Path,
        default=None,
        metavar="FILE.npy",
        help="[N, latent] noise vectors to use instead of drawn noise, one sample each (other "
        "randomness still follows --seed; --condition applies to every sample)",
    )
    p.set_defaults(handler=generate)
