"""MMCGAN's CLI: `train mmcgan`, `generate` for an MMCGAN run (a cohort of table rows + CTs),
`impute` (CTs for rows, rows for CTs) and `report` (the paper's figures)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from jaxsyn.cli.common import apply_overrides, numeric_conditions, store_for
from jaxsyn.errors import ConfigError


def train(args, overrides: list[str]) -> None:
    from jaxsyn.train import mmcgan

    config = (mmcgan.MMCGANTrainConfig.tiny if args.tiny else mmcgan.MMCGANTrainConfig)(
        seed=args.seed
    )
    if args.condition_columns:  # CLASS[,CONTINUOUS...]
        names = args.condition_columns.split(",")
        image = dataclasses.replace(
            config.model.image, num_classes=args.num_classes, num_continuous=len(names) - 1
        )
        config = dataclasses.replace(
            config,
            model=dataclasses.replace(config.model, image=image),
            class_column=names[0],
            continuous_columns=tuple(names[1:]),
        )
    config = apply_overrides(config, overrides)
    if args.data is None:
        raise ConfigError("--data is required for mmcgan: a store folder or phantom:ct:N")
    if args.steps is not None and args.epochs is not None:
        raise ConfigError("give --steps or --epochs for mmcgan, not both")
    store = store_for(args.data, args.out, config.model.image.size, args.seed)
    mmcgan.run(
        args.out,
        store,
        steps=args.steps,
        epochs=args.epochs,
        config=config,
        resume=args.resume,
        checkpoint_every=args.checkpoint_every,
    )
    print(f"trained mmcgan in {args.out}")


def generate(args) -> None:
    from jaxsyn.infer.mmcgan import write_cohort

    conditions = numeric_conditions(args.condition)
    out = write_cohort(
        args.run, args.out, n=args.n, seed=args.seed, conditions=conditions, chunk=args.chunk,
        latents=args.latents,
    )  # fmt: skip
    print(f"wrote {args.n} patients (synthetic.parquet, NIfTI volumes, manifest.json) to {out}")


def impute(args) -> None:
    from jaxsyn.infer import mmcgan_impute

    if (args.table is None) == (args.images is None):
        raise ConfigError("give exactly one of --table ROWS.csv and --images DIR")
    if args.table is not None:
        out = mmcgan_impute.impute_table(args.run, args.table, args.out, seed=args.seed)
        print(f"wrote CT volumes for the rows of {args.table} to {out}")
        return
    result = mmcgan_impute.impute_images(
        args.run, args.images, args.out, seed=args.seed, truth=args.truth
    )
    print(f"wrote {result['n']} imputed rows to {args.out / 'imputed.parquet'}")
    if match := result.get("class_match"):
        print(class_match_line(match))


def class_match_line(match: dict) -> str:
    """impute's accuracy, saying whether the model saw those volumes in training."""
    n, seen, held = match["n"], match.get("in_training"), match.get("held_out")
    line = (f"recovered {match['column']} matches the truth for {match['accuracy']:.1%} of {n} "
            f"volumes (majority-class rate {match['chance']:.1%})")  # fmt: skip
    if seen is None:
        return line + "; whether the model was trained on them is unknown (its store is gone)"
    if seen == n:
        return line + ": all of them training volumes, so this is no held-out figure"
    if seen == 0:
        return line + ": held out, none of them was in the model's training data"
    return line + (f"; {seen} of them were training volumes, on the {held['n']} held-out ones "
                   f"{held['accuracy']:.1%}")  # fmt: skip


def report(args) -> None:
    from jaxsyn.eval.mmcgan import mmcgan_report

    slices, classes = None, None
    if args.run is not None:
        from jaxsyn.infer.mmcgan import MMCGANSynthesizer

        syn = MMCGANSynthesizer.load(args.run)
        slices = syn.centre_slices(args.latents, seed=args.seed)
        classes = list(range(slices.shape[0]))
    index = mmcgan_report(
        args.real,
        args.synthetic,
        args.out,
        class_column=args.class_column,
        slices=slices,
        slice_classes=classes,
        umap=None if not args.no_umap else False,
        seed=args.seed,
    )
    import json

    numbers = json.loads((args.out / "report.json").read_text())
    for cohort in ("real", "synthetic"):
        r = numbers["conditioning"][cohort]["spearman_class_fat"]
        print(
            f"{cohort}: Spearman rho({args.class_column}, fat fraction) = {r['rho']:.3f} "
            f"(p = {r['p_value']:.2g}, n = {r['n']})"
        )
    print(fidelity_lines(numbers, args.class_column))
    print(f"wrote {index} and report.json")


def fidelity_lines(numbers: dict, class_column: str) -> str:
    """The report's fidelity numbers as a short table (synthetic / real; 1 = equal)."""
    fid = numbers["fidelity"]
    f = lambda x: "   -" if x is None else f"{x:4.2f}"  # noqa: E731
    lines = [f"{class_column}  n real/syn  fat  soft  fat sd  distance   (synthetic / real)"]
    for c, r in fid["by_class"].items():
        lines.append(
            f"{c:>{len(class_column)}}  {r['n_real']:4d}/{r['n_synthetic']:<4d}  {f(r['fat_ratio'])} "
            f"{f(r['soft_tissue_ratio'])}  {f(r['fat_sd_ratio'])}    {f(r['distance_ratio'])}"
        )
    if missing := fid["missing"]["in_synthetic"]:
        lines.append(f"classes with no synthetic patient: {missing}")
    q = numbers.get("tabular", {}).get("quality", {})
    if "overall" in q:
        lines.append(f"rows' quality (SDMetrics-style overall): {q['overall']:.3f}")
    return "\n".join(lines)


def add_parsers(verbs) -> None:
    p = verbs.add_parser(
        "impute", help="MMCGAN cross-modal imputation: CTs for rows, or rows for CTs"
    )
    p.add_argument("--run", type=Path, required=True, help="a run folder of `jaxsyn train mmcgan`")
    p.add_argument("--table", type=Path, help="rows (CSV/Parquet) with the condition columns")
    p.add_argument("--images", type=Path, help="a folder of CT volumes (NIfTI/DICOM)")
    p.add_argument("--truth", type=Path, help="--images: a table with the true classes")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=impute)

    p = verbs.add_parser(
        "report", help="MMCGAN's figures: tissue fractions by class, slices, columns, UMAPs"
    )
    p.add_argument("--real", type=Path, required=True, help="real cohort: volumes + table.csv")
    p.add_argument("--synthetic", type=Path, required=True, help="a `jaxsyn generate` cohort")
    p.add_argument("--out", type=Path, required=True, help="report folder (index.html)")
    p.add_argument("--run", type=Path, help="the MMCGAN run: adds the centre-slice grid")
    p.add_argument("--latents", type=int, default=8, help="noise columns of the slice grid")
    p.add_argument("--class-column", default="bmi_class")
    p.add_argument("--no-umap", action="store_true", help="skip the UMAP figures")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=report)
