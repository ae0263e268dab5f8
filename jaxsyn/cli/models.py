"""The `models` verb: the model library (`jaxsyn.zoo`) from the command line.

    jaxsyn models list | search VALUE... | show ID | rank --metric FID
    jaxsyn models generate ID --n 8 --out DIR [--condition NAME=VALUE] [--seed K] [--images DIR]
    jaxsyn models test ID | validate ID|FOLDER|MODEL.zip
    jaxsyn models pack RUN --card CARD.json --report REPORT_DIR --out MODEL.zip
    jaxsyn models add MODEL.zip [--library DIR] | explore ID

Every subcommand takes `--library DIR` (repeatable): searched after the shipped models and
$JAXSYN_MODELS.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from jaxsyn.cli.common import name_value
from jaxsyn.errors import ConfigError


def _generators(args):
    from jaxsyn.zoo import Generators

    return Generators(library=args.library or None)


def list_models(args) -> None:
    g = _generators(args)
    ids = g.list_models()
    if not ids:
        print("no models (shipped, $JAXSYN_MODELS or --library)")
    for model_id in ids:
        card = g.get_config_by_id(model_id)
        s, perf = card["selection"], card["selection"]["performance"]
        fid = f"FID {perf['FID']:.3g}" if isinstance(perf.get("FID"), int | float) else ""
        print(f"{model_id:36s} {card['execution']['family']:8s} {s['modality']:6s} "
              f"{s['dimensionality']:10s} {fid:10s} {card['description']['title']}")  # fmt: skip


def search(args) -> None:
    g = _generators(args)
    found = g.find_matching_models_by_values(
        args.values, args.operator, args.keys, args.case_sensitive
    )
    for m in found:
        print(f"{m.model_id}  ({', '.join(sorted(set(e.key for e in m.matched_entries)))})")
    if not found:
        print(f"no model matches {args.values} ({args.operator})")


def show(args) -> None:
    print(json.dumps(_generators(args).get_config_by_id(args.id), indent=2))


def rank(args) -> None:
    """Ranked within each output kind: one list when the models share a kind (or `--kind`),
    else a list per kind under a `# kind` line (a volume FID and a radiograph FID do not
    compare)."""
    g = _generators(args)
    if args.values:
        ranked = g.find_models_and_rank(args.values, args.operator, metric=args.metric,
                                        order=args.order, kind=args.kind)  # fmt: skip
    else:
        ranked = g.rank_models_by_performance(None, args.metric, args.order, args.kind)
    by_kind: dict[str, list[dict]] = {}
    for r in ranked:
        by_kind.setdefault(g.output_kind(r["model_id"]), []).append(r)
    for kind, group in sorted(by_kind.items()):
        if len(by_kind) > 1:
            print(f"# {kind}")
        for r in group:
            print(f"{r['model_id']:36s} {args.metric} = {r[args.metric]:.6g}")
    if len(by_kind) > 1:
        print(f"note: {args.metric} ranked within each output kind ({', '.join(sorted(by_kind))}); "
              "--kind KIND for one", file=sys.stderr)  # fmt: skip
    if not ranked:
        print(f"no model records {args.metric}" + (f" among {args.kind}" if args.kind else ""))


def generate(args) -> None:
    conditions = dict(name_value(c) for c in args.condition)
    out = _generators(args).generate(
        args.id, args.n, args.out, True, seed=args.seed, conditions=conditions,
        batch_size=args.batch_size, images=args.images,
    )  # fmt: skip
    print(f"wrote {args.n} samples and manifest.json to {out}")


def test(args) -> None:
    report = _generators(args).test_model(args.id, args.n, args.seed)
    for check in report["checks"]:
        print(f"ok  {check}")
    print(f"{report['model_id']}: {len(report['checks'])} checks passed")


def validate(args) -> None:
    """A model folder, a MODEL.zip (unpacked into a temporary folder) or an id: card + hashes."""
    from jaxsyn.zoo import cards, library

    target = Path(args.target)
    if target.is_file() and target.suffix == ".zip":
        with tempfile.TemporaryDirectory() as tmp:
            model_id, _ = library.add(target, tmp)
        print(f"{target}: model {model_id}: card valid, every file's sha256 matches")
        return
    if target.is_dir():
        card = cards.read(target)
        cards.check_files(target, card)
        model_id = card["model_id"]
    else:
        model_id = _generators(args).checked_card(args.target)["model_id"]
    print(f"{model_id}: card valid, every file's sha256 matches")


def pack(args) -> None:
    from jaxsyn.zoo import library

    card = library.pack(args.run, args.card, args.out, args.report)
    metrics = ", ".join(sorted(card["selection"]["performance"])) or "none"
    print(
        f"packed {card['model_id']} ({len(card['files'])} files; metrics: {metrics}) into {args.out}"
    )


def add(args) -> None:
    g = _generators(args)  # installs into the last --library, else the first $JAXSYN_MODELS
    model_id = g.add_model_to_config(args.model, replace=args.replace)
    print(f"installed {model_id} into {g.get_config_by_id(model_id)['execution']['path']}")


def explore(args) -> None:
    try:
        from jaxsyn.zoo.explorer import serve
    except ImportError as e:
        raise ConfigError(f"the explorer is not available ({e})") from None
    serve(_generators(args), args.id, host=args.host, port=args.port, seed=args.seed)


def add_parsers(verbs) -> None:
    p = verbs.add_parser("models", help="the model library: list, search, rank, generate by id")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name, handler, help):
        a = sub.add_parser(name, help=help)
        a.add_argument("--library", action="append", default=[], metavar="DIR",
                       help="a model library folder (repeatable), after the shipped models and $JAXSYN_MODELS")  # fmt: skip
        a.set_defaults(handler=handler)
        return a

    def search_flags(a, nargs):
        a.add_argument(
            "values", nargs=nargs, help="values to find in the cards (modality, tags...)"
        )
        a.add_argument("--operator", choices=("AND", "OR", "XOR"), default="AND")

    action("list", list_models, "every model: id, family, modality, FID, title")
    a = action("search", search, "models whose cards hold these values")
    search_flags(a, "+")
    a.add_argument("--keys", action="store_true", help="match the cards' keys too")
    a.add_argument("--case-sensitive", action="store_true")
    a = action("show", show, "a model's card (JSON)")
    a.add_argument("id", help="00003_NAME, 00003 or 3")
    a = action("rank", rank, "models ranked by a metric of their cards")
    search_flags(a, "*")
    a.add_argument("--metric", default="FID", help="e.g. FID, FID_ratio, CLF.trained_on_fake.auc")
    a.add_argument("--order", choices=("asc", "desc"), default="asc")
    a.add_argument("--kind", help="only models of this output kind: volumes, cohort, images, "
                   "table, translations (default: every kind, ranked within each)")  # fmt: skip
    a = action("generate", generate, "generate from a model (the layout of `jaxsyn generate`)")
    a.add_argument("id")
    a.add_argument("--n", type=int, default=1)
    a.add_argument("--out", type=Path, required=True)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--condition", action="append", default=[], metavar="NAME=VALUE")
    a.add_argument("--batch-size", type=int, default=None, help="patients per batch (mmcgan)")
    a.add_argument("--images", default=None,
                   help="a translator (duiit): a folder of source images, its first N translated "
                        "(default: N source phantoms drawn from --seed)")  # fmt: skip
    a = action("test", test, "generate a few samples and check them against the card")
    a.add_argument("id")
    a.add_argument("--n", type=int, default=3)
    a.add_argument("--seed", type=int, default=0)
    a = action("validate", validate, "check a card and every file's sha256")
    a.add_argument("target", help="a model id, a model folder or a MODEL.zip")
    a = action("pack", pack, "a run + a card template + an evaluate report -> MODEL.zip")
    a.add_argument("run", type=Path, help="a run folder made by `jaxsyn train`")
    a.add_argument(
        "--card", type=Path, required=True, help="JSON: model_id, selection, description"
    )
    a.add_argument("--report", type=Path, help="a `jaxsyn evaluate` folder (its report.json)")
    a.add_argument("--out", type=Path, required=True)
    a = action(
        "add",
        add,
        "install a MODEL.zip into the last --library (else the first $JAXSYN_MODELS folder), checked, atomically",
    )
    a.add_argument("model", type=Path, help="MODEL.zip (or a model folder)")
    a.add_argument("--replace", action="store_true", help="replace a model of the same id there")
    a = action("explore", explore, "a page on 127.0.0.1 driving the model live")
    a.add_argument("id")
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=int, default=0, help="0: any free port")
    a.add_argument("--seed", type=int, default=0)
