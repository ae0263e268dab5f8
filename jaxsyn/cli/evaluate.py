"""The `evaluate` verb: fidelity, utility and privacy of synthetic images, volumes or tables."""

from __future__ import annotations

from pathlib import Path


def evaluate(args) -> None:
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
        features_train=args.features_train,
        val=args.val,
        compare_ids=not args.ids_per_folder,
        seed=args.seed,
    )
    print(f"wrote {index} and report.json")


def add_parsers(verbs) -> None:
    p = verbs.add_parser(
        "evaluate",
        help="fidelity, utility and privacy of synthetic images, volumes or tables: a report",
    )
    p.add_argument(
        "--real",
        type=Path,
        required=True,
        help="the generator's training data (volumes: or its store)",
    )
    p.add_argument("--synthetic", type=Path, required=True, help="generated data, same kind")
    p.add_argument("--holdout", type=Path, help="real data the generator never saw (privacy)")
    p.add_argument("--out", type=Path, required=True, help="report folder (index.html)")
    p.add_argument(
        "--features",
        action="append",
        default=[],
        metavar="NAME[=PATH]",
        help="pixels, inception[=WEIGHTS], domain (default: images pixels + inception if "
        "installed; volumes pixels, + the 3D domain features with --labels)",
    )
    p.add_argument(
        "--umap", action="store_true", help="UMAP figures and UMAP-space attacks (umap extra)"
    )
    p.add_argument("--test", type=Path, help="utility: held-out real data with labels")
    p.add_argument(
        "--features-train",
        type=Path,
        help="labelled real data, disjoint from --real, --holdout and --test, that the domain "
        "feature extractor is trained on (without it: on --real, and its attacks are skipped)",
    )
    p.add_argument(
        "--val",
        type=Path,
        help="utility (images, volumes): labelled real validation data, disjoint from --real, "
        "--holdout and --test, that selects the real-trained classifier's epoch; the "
        "synthetic-trained one is selected on synthetic samples held out of --synthetic "
        "(DuMont et al.). Without it every classifier keeps its last epoch",
    )
    p.add_argument(
        "--ids-per-folder",
        action="store_true",
        help="ids only number each folder's files (phantom cohorts): --test and "
        "--features-train are checked against --real/--holdout by contents, not ids",
    )
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
    p.set_defaults(handler=evaluate)
