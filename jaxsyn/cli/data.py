"""The data verbs of the CLI: `phantom`, `ingest`, `preview`, `stream`."""

from __future__ import annotations

import argparse
from pathlib import Path

PHANTOM_KINDS = ("ct", "cxr", "head", "headct", "vertebra")
HEAD_MODALITIES = ("ct", "mri", "pet")  # jaxsyn.data.phantoms.head.MODALITIES
MIN_SLICES = 8  # jaxsyn.data.store.MIN_SLICES, not imported: `--help` stays free of TensorStore


def _window(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}; expected LOW,HIGH in HU, e.g. -1024,600"
        ) from None
    return lo, hi


def _phantom(args) -> None:
    if args.modality is not None and args.kind != "head":
        from jaxsyn.errors import ConfigError

        raise ConfigError(f"--modality is {args.modality}; expected only with the head phantom")
    if args.kind == "head":
        from jaxsyn.data.phantoms import head

        modality = args.modality or "ct"
        table = head.write_cohort(
            args.out, modality, n=args.n, size=args.size, seed=args.seed, slices=args.slices
        )
        print(
            f"wrote {len(table)} head {modality} images ({args.size}²) of {args.n} patients, "
            f"labels.csv (image_id, patient_id, age) and manifest.json to {args.out}"
        )
        return
    if args.kind in ("cxr", "headct", "vertebra"):
        import importlib

        module = importlib.import_module(f"jaxsyn.data.phantoms.{args.kind}")
        table = module.write_cohort(args.out, n=args.n, size=args.size, seed=args.seed)
        print(f"wrote {len(table)} {args.kind} images ({args.size}²) and labels.csv to {args.out}")
        return
    from jaxsyn.data.phantoms import ct

    table = ct.write_cohort(args.out, n=args.n, size=args.size, seed=args.seed)
    print(f"wrote {len(table)} {args.kind} phantoms ({args.size}³) and table.csv to {args.out}")


def _ingest(args) -> None:
    from jaxsyn.data.store import VolumeStore, ingest

    out = ingest(
        args.images,
        args.out,
        table=args.table,
        id_column=args.id_column,
        size=args.size,
        spacing=args.spacing,
        window=args.window,
        skip_bad=args.skip_bad,
        min_slices=args.min_slices,
    )
    store = VolumeStore(out)
    skipped = store.manifest["skipped"]
    print(
        f"store {out}: {len(store)} volumes at {store.size}³"
        + (f", {len(skipped)} skipped" if skipped else "")
    )
    for s in skipped:
        print(f"  skipped {s['source']}: {s['error']}")


def _preview(args) -> None:
    from jaxsyn.data.preview import orthogonal_slices, save_grid, volume_slices
    from jaxsyn.data.store import VolumeStore
    from jaxsyn.data.volumes import load_volume

    path = Path(args.data)
    if (path / "manifest.json").is_file():
        store = VolumeStore(path)
        n = min(args.n, len(store))
        rows = [orthogonal_slices(store.read(i), store.window) for i in range(n)]
        labels = store.ids[:n]
    else:
        rows, labels = [volume_slices(load_volume(path))], [path.name]  # isotropic first
    save_grid(args.out, rows, labels, scale=max(1, 256 // rows[0].shape[0]))
    print(f"wrote {args.out}")


def _stream(args) -> None:
    import time

    from jaxsyn.data.pipeline import PipelineConfig, make_dataset
    from jaxsyn.data.preview import batch_example_image, save_grid
    from jaxsyn.data.store import VolumeStore
    from jaxsyn.data.volumes import unwindow

    store = VolumeStore(args.data)
    config = PipelineConfig(
        batch_size=args.batch_size, seed=args.seed, conditions=tuple(args.conditions)
    )
    iterator = iter(make_dataset(store, config))
    start = time.perf_counter()
    batches = [next(iterator) for _ in range(args.batches)]
    seconds = time.perf_counter() - start
    n = args.batches * args.batch_size
    print(
        f"streamed {n} examples in {seconds:.2f} s ({n / seconds:.1f} examples/s), slab {batches[0]['slab'].shape[1:]}, low {batches[0]['low'].shape[1:]}"
    )
    if args.out:
        b = batches[0]
        rows, labels = [], []
        for k in range(len(b["record"])):
            low = unwindow(b["low"][k, ..., 0], *store.window)
            slab = unwindow(b["slab"][k, ..., 0], *store.window)
            rows.append(batch_example_image(low, slab, store.window))
            cond = " ".join(
                f"{c}={v:g}" for c, v in zip(args.conditions, b["conditions"][k], strict=True)
            )
            labels.append(f"{store.ids[b['record'][k]]} slab@{b['slab_index'][k]} {cond}")
        panels = ["low-res axial", "low-res coronal", "low-res sagittal", "slab axial"]
        save_grid(args.out, rows, labels, scale=max(1, 256 // store.size), columns=panels)
        print(f"wrote {args.out}")


def add_parsers(verbs) -> None:
    p = verbs.add_parser("phantom", help="write a procedural phantom cohort with known truth")
    p.add_argument("kind", choices=PHANTOM_KINDS)
    p.add_argument("--n", type=int, required=True, help="number of patients")
    p.add_argument(
        "--size",
        type=int,
        default=128,
        help="ct: cube side in voxels (16-256); cxr, head, headct, vertebra: image side",
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--modality",
        choices=HEAD_MODALITIES,
        help="head: ct (HU, brain window), mri (T1-like) or pet (blurred uptake); default ct",
    )
    p.add_argument(
        "--slices", type=int, default=1, help="head: axial slices per patient (default 1)"
    )
    p.set_defaults(handler=_phantom)

    p = verbs.add_parser("ingest", help="turn a folder of volumes (+ table) into a volume store")
    p.add_argument(
        "--images", type=Path, required=True, help="folder of .nii/.nii.gz or DICOM folders"
    )
    p.add_argument("--out", type=Path, required=True, help="store folder to create")
    p.add_argument("--table", type=Path, help="clinical table (.csv/.parquet), one row per patient")
    p.add_argument("--id-column", help="the table's patient id column (default: detected)")
    p.add_argument("--size", type=int, default=256, help="cube side S (power of two)")
    p.add_argument(
        "--spacing", type=float, help="fix the voxel size in mm (default: fit the whole volume)"
    )
    p.add_argument(
        "--window",
        type=_window,
        default=(-1024.0, 600.0),
        help="HU window LOW,HIGH (default -1024,600)",
    )
    p.add_argument(
        "--min-slices",
        type=int,
        default=MIN_SLICES,
        help=f"refuse volumes thinner than this along any axis (default {MIN_SLICES}; 1 takes all)",
    )
    p.add_argument(
        "--skip-bad", action="store_true", help="skip unreadable volumes, list them in the manifest"
    )
    p.set_defaults(handler=_ingest)

    p = verbs.add_parser("preview", help="PNG of central orthogonal slices of a volume or a store")
    p.add_argument("--data", required=True, help="a store folder or one volume file")
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    p.add_argument("--n", type=int, default=4, help="how many store volumes to show")
    p.set_defaults(handler=_preview)

    p = verbs.add_parser("stream", help="stream training examples from a store through Grain")
    p.add_argument("--data", type=Path, required=True, help="a store made by `jaxsyn ingest`")
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--condition",
        dest="conditions",
        action="append",
        default=[],
        metavar="COLUMN",
        help="table column to attach (repeatable)",
    )
    p.add_argument("--out", type=Path, help="PNG of the first batch: low-res volumes and slabs")
    p.set_defaults(handler=_stream)
