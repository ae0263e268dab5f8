"""CTGAN's CLI: `train ctgan` (a table) and `generate` for a ctgan run (`synthetic.parquet`)."""

from __future__ import annotations

from pathlib import Path

from jaxsyn.cli.common import apply_overrides, name_value, phantom_n
from jaxsyn.errors import ConfigError


def train(args, overrides: list[str]) -> None:
    from jaxsyn.train import ctgan

    if args.data is None or (
        args.data.startswith("phantom:") and not args.data.startswith("phantom:ct-table:")
    ):
        raise ConfigError(
            f"--data is {args.data}; expected a .csv/.parquet table or phantom:ct-table:N for ctgan"
        )
    config = (ctgan.CTGANTrainConfig.tiny if args.tiny else ctgan.CTGANTrainConfig)(seed=args.seed)
    config = apply_overrides(config, overrides)
    table = Path(args.data)
    if args.data.startswith("phantom:"):
        from jaxsyn.data.phantoms.ct import clinical_table

        table = clinical_table(phantom_n(args.data), seed=args.seed)
    if (args.epochs is None) == (args.steps is None):
        raise ConfigError("ctgan: give exactly one of --epochs and --steps")
    schema = None
    if args.metadata is not None:
        table, schema = _with_metadata(args, table)
    ctgan.run(
        args.out,
        table,
        epochs=args.epochs,
        steps=args.steps,
        config=config,
        schema=schema,
        discrete=tuple(c for c in (args.discrete or "").split(",") if c),
        id_column=args.id_column,
        resume=args.resume,
        checkpoint_every=args.checkpoint_every,
    )
    print(f"trained ctgan in {args.out}")


def _with_metadata(args, table):
    """(the table, its schema) from SDV single-table metadata (`--metadata FILE`)."""
    from jaxsyn.data.clinical import read_table
    from jaxsyn.data.tabular.metadata import apply_metadata, read_metadata

    if args.discrete or args.id_column:
        raise ConfigError(
            "ctgan: --metadata describes every column; expected no --discrete or --id-column "
            "with it"
        )
    metadata = read_metadata(args.metadata)
    if isinstance(table, Path):
        return apply_metadata(read_table(table), metadata, str(table))
    return apply_metadata(table, metadata, args.data)


def generate(args) -> None:
    from jaxsyn.infer import ctgan

    conditions = dict(name_value(c) for c in args.condition)
    out = ctgan.write_table(
        args.run, args.out, n=args.n, seed=args.seed, conditions=conditions, latents=args.latents
    )
    print(f"wrote {args.n} rows to {out / 'synthetic.parquet'} and manifest.json")
