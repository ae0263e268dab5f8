"""The `jaxsyn` command: one verb per task, `--help` on each.

Errors the user can fix (`JaxsynError`) print as one line and exit 1; `--debug` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jaxsyn.errors import ConfigError, JaxsynError


def _override(config, assignment: str):
    """Apply `FIELD=VALUE` to a (nested) frozen dataclass config; the model's fields first."""
    import dataclasses

    name, _, text = assignment.partition("=")
    if "." in name:  # a dotted path into nested configs, e.g. model.image.size=64
        head, _, rest = name.partition(".")
        fields = {f.name for f in dataclasses.fields(config)}
        if head not in fields or not dataclasses.is_dataclass(getattr(config, head)):
            raise ConfigError(f"--config.{name}: {head!r} is not a nested config field")
        inner = _override(getattr(config, head), f"{rest}={text}")
        return dataclasses.replace(config, **{head: inner})
    targets = [config.model, config] if hasattr(config, "model") else [config]
    for target in targets:
        fields = {f.name: f for f in dataclasses.fields(target)}
        if name in fields:
            value = _coerce(getattr(target, name), text, name)
            new = dataclasses.replace(target, **{name: value})
            return dataclasses.replace(config, model=new) if target is not config else new
    known = sorted({f.name for t in targets for f in dataclasses.fields(t)} - {"model"})
    raise ConfigError(f"--config.{name}: no such field; expected one of {known}")


def _coerce(current, text: str, name: str):
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if isinstance(current, tuple):
            kind = type(current[0]) if current else str
            return tuple(kind(v) for v in text.split(",") if v)
        if current is None:
            return None if text.lower() in ("", "none") else text
        return type(current)(text)
    except ValueError:
        raise ConfigError(f"--config.{name}={text}: expected a value like {current!r}") from None


def _store_for(data: str, out: Path, size: int, seed: int):
    """--data STORE | phantom:ct:N (written under OUT/data/ and ingested, once)."""
    from jaxsyn.data.store import VolumeStore, ingest

    if not data.startswith("phantom:"):
        return VolumeStore(data)
    from jaxsyn.data.phantoms import ct

    parts = data.split(":")
    if len(parts) != 3 or parts[1] != "ct" or not parts[2].isdigit():
        raise ConfigError(f"--data {data}; expected a store folder or phantom:ct:N (volumes)")
    n = int(parts[2])
    cohort = out / "data" / f"phantom-{parts[1]}-{n}-{size}-seed{seed}"
    if not (cohort / "table.csv").is_file():
        ct.write_cohort(cohort, n=n, size=size, seed=seed)
    return VolumeStore(
        ingest(cohort, out / "data" / "store", table=cohort / "table.csv", size=size)
    )


def _train_ctgan(args, overrides: list[str]) -> None:
    from jaxsyn.train import ctgan

    if args.data is None or (
        args.data.startswith("phantom:") and not args.data.startswith("phantom:ct-table:")
    ):
        raise ConfigError(
            f"--data is {args.data}; expected a .csv/.parquet table or phantom:ct-table:N for ctgan"
        )
    config = (ctgan.CTGANTrainConfig.tiny if args.tiny else ctgan.CTGANTrainConfig)(seed=args.seed)
    for o in overrides:
        config = _override(config, o)
    table = Path(args.data)
    if args.data.startswith("phantom:"):
        from jaxsyn.data.phantoms.ct import clinical_table

        table = clinical_table(_phantom_n(args.data), seed=args.seed)
    if (args.epochs is None) == (args.steps is None):
        raise ConfigError("ctgan: give exactly one of --epochs and --steps")
    ctgan.run(
        args.out,
        table,
        epochs=args.epochs,
        steps=args.steps,
        config=config,
        discrete=tuple(c for c in (args.discrete or "").split(",") if c),
        id_column=args.id_column,
        resume=args.resume,
        checkpoint_every=args.checkpoint_every,
    )
    print(f"trained ctgan in {args.out}")


def _phantom_n(data: str) -> int:
    n = data.rsplit(":", 1)[-1]
    if not n.isdigit() or int(n) < 1:
        raise ConfigError(f"--data {data}; expected phantom:KIND:N with N >= 1")
    return int(n)


def _train_acgan(args, overrides: list[str]) -> None:
    from jaxsyn.train import acgan

    if args.data is None:
        raise ConfigError("--data is required for acgan: an image folder or phantom:vertebra:N")
    if args.steps is None:
        raise ConfigError("--steps is required for acgan")
    config = (acgan.ACGANTrainConfig.tiny if args.tiny else acgan.ACGANTrainConfig)(seed=args.seed)
    for o in overrides:
        config = _override(config, o)
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


def _morph(args) -> None:
    from jaxsyn.infer.acgan import morph_strip

    out = morph_strip(
        args.run, args.out, source=args.source, target=args.target, frames=args.frames,
        seed=args.seed,
    )  # fmt: skip
    print(f"wrote {out}")


def _train(args, overrides: list[str]) -> None:
    if args.family == "ctgan":
        return _train_ctgan(args, overrides)
    if args.family == "acgan":
        return _train_acgan(args, overrides)
    if args.family == "mmcgan":
        from jaxsyn import cli_mmcgan

        cli_mmcgan.train(args, overrides, override=_override, store_for=_store_for)
        return print(f"trained mmcgan in {args.out}")
    if args.steps is None:
        raise ConfigError(f"--steps is required for {args.family}")
    if args.family in ("proggan", "cpdgan"):
        from jaxsyn.train import gan2d

        if args.data is None:
            raise ConfigError(f"--data is required for {args.family}: an image folder with "
                              "labels.csv, phantom:cxr:N or phantom:headct:N")  # fmt: skip
        config = gan2d.default_config(args.family, tiny=args.tiny, seed=args.seed)
        for o in overrides:
            config = _override(config, o)
        gan2d.run(args.out, args.data, steps=args.steps, config=config, resume=args.resume,
                  checkpoint_every=args.checkpoint_every)  # fmt: skip
    elif args.family == "toygan":
        from jaxsyn.train import toygan

        config = toygan.ToyTrainConfig.tiny() if args.tiny else toygan.ToyTrainConfig()
        for o in overrides:
            config = _override(config, o)
        toygan.run(
            args.out,
            steps=args.steps,
            seed=args.seed,
            resume=args.resume,
            config=config,
            checkpoint_every=args.checkpoint_every,
        )
    else:
        import dataclasses

        from jaxsyn.train import hagan

        config = (hagan.HAGANTrainConfig.tiny if args.tiny else hagan.HAGANTrainConfig)(
            seed=args.seed
        )
        for o in overrides:
            config = _override(config, o)
        if args.condition_columns:
            names = args.condition_columns.split(",")
            model = dataclasses.replace(
                config.model, num_classes=args.num_classes, num_continuous=len(names) - 1
            )
            config = dataclasses.replace(
                config, model=model, class_column=names[0], continuous_columns=tuple(names[1:])
            )
        if args.data is None:
            raise ConfigError("--data is required for hagan: a store folder or phantom:ct:N")
        store = _store_for(args.data, args.out, config.model.size, args.seed)
        hagan.run(
            args.out,
            store,
            steps=args.steps,
            config=config,
            resume=args.resume,
            checkpoint_every=args.checkpoint_every,
            preview_every=args.preview_every,
        )
    print(f"trained {args.family} to step {args.steps} in {args.out}")


def _generate(args) -> None:
    import json

    info = args.run / "config.json"
    family = json.loads(info.read_text()).get("family") if info.is_file() else None
    if family == "mmcgan":
        from jaxsyn import cli_mmcgan

        return cli_mmcgan.generate(args, name_value=_name_value)
    if family in ("acgan", "proggan", "cpdgan"):
        from jaxsyn.infer.acgan import write_images

        conditions = dict(_name_value(c) for c in args.condition)
        out = write_images(args.run, args.out, n=args.n, seed=args.seed, conditions=conditions)
        print(f"wrote {args.n} images, labels.csv and manifest.json to {out}")
        return
    if family == "ctgan":
        from jaxsyn.infer import ctgan

        conditions = dict(_name_value(c) for c in args.condition)
        out = ctgan.write_table(args.run, args.out, n=args.n, seed=args.seed, conditions=conditions)
        print(f"wrote {args.n} rows to {out / 'synthetic.parquet'} and manifest.json")
        return
    from jaxsyn.infer import hagan

    conditions = {}
    for c in args.condition:
        name, _, value = c.partition("=")
        try:
            conditions[name] = float(value)
        except ValueError:
            raise ConfigError(f"--condition {c}: expected NAME=NUMBER") from None
    out = hagan.write_volumes(
        args.run,
        args.out,
        n=args.n,
        seed=args.seed,
        conditions=conditions,
        formats=tuple(args.format.split(",")),
        chunk=args.chunk,
    )
    print(f"wrote {args.n} volumes and manifest.json to {out}")


def _evaluate(args) -> None:
    from jaxsyn.eval.evaluate import evaluate, parse_features

    features = parse_features(args.features) if args.features else None
    index = evaluate(
        args.real,
        args.synthetic,
        args.out,
        holdout=args.holdout,
        features=features,
        umap=args.umap,
        test=args.test,
        labels=[c for c in (args.labels or "").split(",") if c],
        utility_model=args.utility_model,
        utility_epochs=args.utility_epochs,
        augment=args.augment,
        occlusion=args.occlusion,
        volume_size=args.volume_size,
        seed=args.seed,
    )
    print(f"wrote {index} and report.json")


def _name_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ConfigError(f"--condition {text}: expected NAME=VALUE (or NAME=LO:HI for a range)")
    return name, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxsyn", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    from jaxsyn.cli_data import add_data_parsers

    add_data_parsers(verbs)

    p = verbs.add_parser(
        "train", help="train a model family; --config.FIELD=VALUE overrides its config"
    )
    p.add_argument(
        "family", choices=("acgan", "cpdgan", "ctgan", "hagan", "mmcgan", "proggan", "toygan")
    )
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
    p.set_defaults(handler=_train)

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
    p.set_defaults(handler=_generate)

    p = verbs.add_parser(
        "evaluate",
        help="fidelity, utility and privacy of synthetic images, volumes or tables: a report",
    )
    p.add_argument("--real", type=Path, required=True, help="the generator's training data")
    p.add_argument("--synthetic", type=Path, required=True, help="generated data, same kind")
    p.add_argument("--holdout", type=Path, help="real data the generator never saw (privacy)")
    p.add_argument("--out", type=Path, required=True, help="report folder (index.html)")
    p.add_argument(
        "--features",
        action="append",
        default=[],
        metavar="NAME[=PATH]",
        help="pixels, inception[=WEIGHTS], domain (default: pixels + inception if installed; "
        "volumes with --labels: + the 3D domain features)",
    )
    p.add_argument(
        "--umap", action="store_true", help="UMAP figures and UMAP-space attacks (umap extra)"
    )
    p.add_argument("--test", type=Path, help="utility: held-out real data with labels")
    p.add_argument("--labels", help="utility: label columns a,b (tables: the target column)")
    p.add_argument(
        "--utility-model",
        default=None,
        help="images: densenet121 (default), resnet18, densenet-tiny, resnet-tiny; volumes: "
        "resnet3d-10 (default), resnet3d-18, resnet3d-tiny; tables: hgb (default) or mlp",
    )
    p.add_argument("--utility-epochs", type=int, default=10)
    p.add_argument(
        "--volume-size", type=int, default=64, help="volumes: side of the 3D classifier's input"
    )
    p.add_argument("--augment", action="store_true", help="utility: also train on real + synthetic")
    p.add_argument(
        "--occlusion", action="store_true", help="utility: occlusion maps, real vs synthetic"
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_evaluate)

    from jaxsyn.cli_mmcgan import add_impute_parser, add_report_parser

    add_impute_parser(verbs)
    add_report_parser(verbs)

    p = verbs.add_parser(
        "morph", help="AC-GAN condition morphing: a strip from one class to another"
    )
    p.add_argument("--run", type=Path, required=True, help="a run folder of `jaxsyn train acgan`")
    p.add_argument("--from", dest="source", required=True, help="start class (name or index)")
    p.add_argument("--to", dest="target", required=True, help="end class (name or index)")
    p.add_argument("--frames", type=int, default=8, help="steps between the classes")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--seed", type=int, default=0, help="the fixed noise z")
    p.set_defaults(handler=_morph)

    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    overrides = [a[len("--config.") :] for a in argv if a.startswith("--config.")]
    args = build_parser().parse_args([a for a in argv if not a.startswith("--config.")])
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


if __name__ == "__main__":
    sys.exit(main())
