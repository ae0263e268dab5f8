"""`jaxsyn reader-study make|serve|score`: the visual Turing test (jaxsyn.zoo.reader_study).

    jaxsyn reader-study make --real DIR --synthetic DIR --n 50 --out STUDY
    jaxsyn reader-study serve STUDY --port 8765
    jaxsyn reader-study score STUDY

`make` reads `--n` files drawn (seeded) from each folder: images (.png, .jpg, .npy, .dcm, ...;
RGB shown as grey, a multi-channel .npy as its middle channel) and volumes (.nii, .nii.gz, DICOM
folders; the central axial slice, windowed by --window in HU). Every picture goes through the
same steps (grey in [0, 1], bilinear resize to --size, 8 bits), so format, size and intensity
range say nothing about the source. `--model ID` draws the synthetic side from the model library.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from jaxsyn.cli.common import name_value
from jaxsyn.errors import ConfigError, DataError


def _window(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}; expected LOW,HIGH in HU, e.g. -1024,600"
        ) from None
    return lo, hi


def folder_files(folder: Path) -> list[Path]:
    """Every image file and volume (file or DICOM folder) directly in `folder`, sorted."""
    from jaxsyn.data.images import SUFFIXES
    from jaxsyn.data.volumes import is_volume_path

    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    return sorted(
        p
        for p in folder.iterdir()
        if is_volume_path(p) or (p.is_file() and p.suffix.lower() in SUFFIXES)
    )


def to_picture(x: np.ndarray, volume: bool, size: int, window: tuple[float, float], origin: str):
    """A volume [D, H, W] (its central axial slice, in HU, windowed) or an image [H, W] /
    [H, W, C] in [0, 1] as a study Picture: uint8 [size, size]."""
    from jaxsyn.data.images import resize
    from jaxsyn.zoo.pages import to_uint8
    from jaxsyn.zoo.reader_study import Picture

    x = np.asarray(x, np.float32)
    if volume:
        x = x.reshape(x.shape[:3])  # [D, H, W] or [D, H, W, 1]
        grey = (x[x.shape[0] // 2, ::-1, ::-1] - window[0]) / (window[1] - window[0])
    elif x.ndim == 3:
        grey = x.mean(-1) if x.shape[-1] == 3 else x[..., x.shape[-1] // 2]
    elif x.ndim == 2:
        grey = x
    else:
        raise DataError(f"{origin}: array of shape {list(x.shape)}; expected an image or a volume")
    grey = np.clip(np.ascontiguousarray(grey, np.float32), 0, 1)
    return Picture(to_uint8(resize(grey[..., None], size)[..., 0], (0.0, 1.0)), origin)


def folder_pictures(folder: Path, n: int, rng, size: int, window, what: str) -> list:
    from jaxsyn.data.images import read_image
    from jaxsyn.data.volumes import is_volume_path, load_volume

    paths = folder_files(folder)
    if len(paths) < n:
        raise DataError(
            f"--{what} {folder}: {len(paths)} images or volumes; expected at least --n {n}"
        )
    chosen = [paths[i] for i in sorted(rng.choice(len(paths), n, replace=False))]
    pictures = []
    for p in tqdm(chosen, desc=f"{what} images", unit="img"):
        volume = is_volume_path(p)
        x = load_volume(p).hu if volume else read_image(p)
        pictures.append(to_picture(x, volume, size, window, p.name))
    return pictures


def model_pictures(model_id: str, n: int, seed: int, size: int, window, library=None,
                   conditions: dict | None = None) -> list:  # fmt: skip
    """`n` samples of library model `model_id` (jaxsyn.zoo.Generators), as Pictures.

    Conditions not given with a list of values (classes, findings) are spread over the samples:
    `n` split as evenly as it goes over every combination of those values, one call each (seed
    `seed + k` for the k-th), as a real set holds every class."""
    from jaxsyn.zoo import Generators

    generators = Generators(library=library or None)
    schema = generators.get_generate_function(model_id).conditions_schema
    fixed = dict(conditions or {})
    free = {k: v["enum"] for k, v in schema.items() if k not in fixed and "enum" in v}
    combos = [dict(zip(free, values, strict=True)) for values in itertools.product(*free.values())]
    pictures = []
    for k, combo in enumerate(combos):
        count = n // len(combos) + (k < n % len(combos))
        if count == 0:
            continue
        samples = generators.generate(model_id, num_samples=count, save_images=False,
                                      seed=seed + k, conditions={**fixed, **combo})  # fmt: skip
        kind = next((key for key in ("volumes", "images") if key in samples), None)
        if kind is None or len(samples[kind]) != count:
            raise DataError(f"--model {model_id}: did not give {count} images or volumes")
        given = json.dumps({**fixed, **combo})
        for i, x in enumerate(np.asarray(samples[kind])):
            origin = f"{model_id} seed {seed + k} #{i} {given}"
            pictures.append(to_picture(x, kind == "volumes", size, window, origin))
    return pictures


def _make(args) -> None:
    from jaxsyn.zoo.reader_study import make_study

    if (args.synthetic is None) == (args.model is None):
        raise ConfigError("reader-study make: give exactly one of --synthetic DIR and --model ID")
    if args.size < 16:
        raise ConfigError(f"--size {args.size}: expected >= 16 pixels")
    if args.out.exists():
        raise ConfigError(f"--out {args.out}: already exists; expected a new folder for the study")
    rng = np.random.default_rng(args.seed)
    real = folder_pictures(args.real, args.n, rng, args.size, args.window, "real")
    if args.model is not None:
        synthetic = model_pictures(
            args.model,
            args.n,
            args.seed,
            args.size,
            args.window,
            args.library,
            dict(name_value(c) for c in args.condition),
        )
    else:
        synthetic = folder_pictures(
            args.synthetic, args.n, rng, args.size, args.window, "synthetic"
        )
    meta = {"real": str(args.real), "synthetic": str(args.synthetic or f"model {args.model}")}
    make_study(args.out, real, synthetic, seed=args.seed, meta=meta)
    print(
        f"wrote {args.out}: {2 * args.n} images; key.json holds the answers, keep it from the readers"
    )


def _serve(args) -> None:
    from jaxsyn.zoo.reader_page import serve

    serve(args.study, args.host, args.port)


def _score(args) -> None:
    from jaxsyn.zoo.reader_study import score

    report = score(args.study, args.out)
    for reader, r in report.get("readers", {}).items():
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        print(
            f"{reader}: {r['answered']} answered, accuracy {acc}, binomial p {r['binomial_pvalue']}"
        )
    out = args.out or args.study / "report"
    print(f"wrote {out}/report.json and {out}/index.html")


def add_parsers(verbs) -> None:
    group = verbs.add_parser("reader-study", help="a blinded real-or-synthetic reader study")
    sub = group.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = sub.add_parser("make", help="build a blinded set of real and synthetic images")
    p.add_argument("--real", type=Path, required=True, help="folder of real images or volumes")
    p.add_argument("--synthetic", type=Path, help="folder of synthetic images or volumes")
    p.add_argument("--model", help="or a model library id to generate the synthetic images")
    p.add_argument(
        "--library",
        action="append",
        default=[],
        metavar="DIR",
        help="a model library folder for --model (repeatable), after the shipped models and $JAXSYN_MODELS",
    )
    p.add_argument(
        "--condition",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a condition for --model (repeatable); class conditions not given are spread over the samples",
    )
    p.add_argument("--n", type=int, default=50, help="images per source (default 50)")
    p.add_argument("--out", type=Path, required=True, help="study folder to create")
    p.add_argument("--size", type=int, default=256, help="picture side in pixels (default 256)")
    p.add_argument(
        "--window",
        type=_window,
        default=(-1024.0, 600.0),
        help="HU window of volume slices (default -1024,600)",
    )
    p.add_argument("--seed", type=int, default=0, help="draws the files and the readers' orders")
    p.set_defaults(handler=_make)

    p = sub.add_parser("serve", help="show the study to readers on 127.0.0.1")
    p.add_argument("study", type=Path)
    p.add_argument("--host", default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="default: a free port, printed")
    p.set_defaults(handler=_serve)

    p = sub.add_parser("score", help="accuracy, counts and tests per reader and across readers")
    p.add_argument("study", type=Path)
    p.add_argument("--out", type=Path, help="report folder (default STUDY/report)")
    p.set_defaults(handler=_score)
