"""Model cards (`model.json`): read, validate against the shipped JSON Schema, check every file's
hash, and build one from a run folder and a `jaxsyn evaluate` report (`pack`).

A card holds medigan's three blocks plus the files:

    {"card_version": 1, "model_id": "00003_HAGAN_CT_PHANTOM_32",
     "execution": {"family", "jaxsyn_version", "run", "config", "conditions", "output"},
     "selection": {"modality", "anatomy", "dimensionality", "dataset", "tags",
                   "performance": {"FID": .., "FID_ratio": .., "CLF": {"trained_on_fake": {"auc": ..}},
                                   "privacy": {"pairwise_attack_auc": ..}, ...},
                   "performance_settings": {"date", "report", ...}},
     "description": {"title", "authors", "licence", "training_data", "intended_use"},
     "files": {"run/config.json": "<sha256>", ...}}

Nothing in a model folder is ever executed or unpickled: the arrays are an Orbax checkpoint read
by the family's own loader in `jaxsyn.infer`, after `check_files` has hashed every file.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

from jaxsyn import files
from jaxsyn.errors import CheckpointError, ConfigError

CARD = "model.json"
RUN = "run"
ID_PATTERN = re.compile(r"^(\d{5})_([A-Z0-9][A-Z0-9_]*)$")
FAMILIES = ("hagan", "mmcgan", "ctgan", "acgan", "proggan", "cpdgan", "duiit")


def schema() -> dict:
    """The card's JSON Schema, shipped as package data (jaxsyn/zoo/card.schema.json)."""
    return json.loads(resources.files("jaxsyn.zoo").joinpath("card.schema.json").read_text())


def validate(card: Any, source: str | os.PathLike = "model.json") -> dict:
    """`card` if it follows the schema, else a ConfigError naming `source`, the field's path
    (`selection.performance.FID`), what was found and what was expected."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(card), key=lambda e: (len(e.path), list(e.path)))
    if errors:
        e = min(errors, key=lambda e: -len(e.absolute_path))  # the deepest: the most precise
        path = [str(p) for p in e.absolute_path]
        found = json.dumps(e.instance)[:80]
        if e.validator == "required":  # name the missing field itself
            missing = [k for k in e.validator_value if k not in e.instance]
            path, found = [*path, missing[0]], "missing"
        field = ".".join(path) or "(the card)"
        raise ConfigError(f"{source}: field {field}: {found}; expected {_expected(e)}")
    return card


def _expected(e) -> str:
    if e.validator == "required":
        return f"a value (required: {', '.join(e.validator_value)})"
    if e.validator == "additionalProperties" and not isinstance(e.validator_value, dict):
        return f"no other fields ({e.message})"
    if e.validator == "enum":
        return f"one of {e.validator_value}"
    if e.validator == "pattern":
        return f"text matching {e.validator_value}"
    return e.message


def read(folder: str | os.PathLike) -> dict:
    """The validated card of a model folder (without `execution.path`)."""
    path = Path(folder) / CARD
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; expected a model card") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not JSON ({e}); expected a model card") from None
    validate(card, path)
    if Path(folder).name != card["model_id"]:
        raise ConfigError(
            f"{path}: field model_id is {card['model_id']!r}; expected the folder's name "
            f"{Path(folder).name!r}"
        )
    return card


def check_files(folder: str | os.PathLike, card: dict) -> None:
    """Every file the card lists has its sha256, and the folder holds no other file (an unlisted
    file could be read by a loader unchecked); a CheckpointError names the first that differs."""
    folder = Path(folder)
    listed = card["files"]
    for rel, digest in sorted(listed.items()):
        path = folder / rel
        if not path.is_file():
            raise CheckpointError(f"{path}: missing; the card {folder / CARD} lists it")
        if files.sha256(path) != digest:
            raise CheckpointError(
                f"{path}: sha256 differs from the card's ({digest[:12]}...); the file was "
                "changed or damaged, refusing to use the model"
            )
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            raise CheckpointError(f"{path}: a link; expected only the card's plain files")
        if path.is_file() and rel != CARD and rel not in listed:
            raise CheckpointError(f"{path}: not listed in {folder / CARD}; refusing the model")


# --- building a card (pack) ----------------------------------------------------------------------


def conditions_of(info: dict) -> dict:
    """What a run accepts as `conditions`, from its config.json."""
    family, model = info["family"], info.get("model", {})
    if family in ("hagan", "mmcgan"):
        image = model.get("image", model)
        out, required = {}, family == "hagan"
        if info.get("class_column"):
            values = list(range(int(image.get("num_classes", 0))))
            out[info["class_column"]] = {"type": "class", "values": values, "required": required}
        for name in info.get("continuous_columns", []):
            out[name] = {"type": "number", "required": required}
        return out
    if family == "acgan":
        return {info.get("class_column", "class"): {"type": "class", "values": info["classes"]}}
    if family in ("proggan", "cpdgan"):
        return {name: {"type": "binary", "values": [0, 1]} for name in info["labels"]}
    if family == "duiit":  # a translator is driven by its input images, not by conditions
        return {}
    out = {}  # ctgan: a discrete column takes one of its categories, a number a value or range
    for column in info.get("transformer_schema", {}).get("columns", []):
        if column["kind"] == "categorical":
            out[column["name"]] = {"type": "category", "values": column["categories"]}
        elif column["kind"] in ("integer", "float"):
            out[column["name"]] = {"type": "number", "minimum": column["min"],
                                   "maximum": column["max"]}  # fmt: skip
    return out


def output_of(info: dict) -> dict:
    """The output block: kind and shape (and spacing/window for CTs, columns for tables)."""
    family, model = info["family"], info.get("model", {})
    if family == "hagan":
        s = model["size"]
        return {"kind": "volumes", "shape": [s, s, s], "spacing_mm": [info["spacing_mm"]] * 3,
                "window_hu": list(info["window"])}  # fmt: skip
    if family == "mmcgan":
        s = model["image"]["size"]
        return {"kind": "cohort", "shape": [s, s, s], "spacing_mm": [info["spacing_mm"]] * 3,
                "window_hu": list(info["window"])}  # fmt: skip
    if family == "ctgan":
        columns = [c["name"] for c in info.get("transformer_schema", {}).get("columns", [])]
        return {"kind": "table", "columns": columns}
    if family == "duiit":  # source 0's translator (the first --source of training) -> target
        if model.get("setting") not in ("joint", "cyclegan") or not info.get("sources"):
            raise ConfigError(
                f"config.json: field model.setting is {model.get('setting')!r}; expected joint or "
                "cyclegan (the library holds DUIIT's translators; this run has none)"
            )
        s = model["translator"]["size"]
        labels = [info["label"]] if info.get("label") else []
        return {"kind": "translations", "shape": [s, s, 1], "labels": labels,
                "source": str(info["sources"][0]), "target": str(info["target"])}  # fmt: skip
    s, c = model["size"], model.get("channels", 1)
    labels = info.get("labels") or info.get("classes") or []
    return {"kind": "images", "shape": [s, s, c], "labels": [str(x) for x in labels]}


# medigan-style metric name -> where `jaxsyn evaluate` puts it in report.json (the first found
# wins); FEATURES stands for the report's feature spaces, best first (`feature_spaces`)
REPORT_METRICS = {
    "FID": ["fidelity.FEATURES.fid"],
    "FID_ratio": ["fidelity.FEATURES.fid_ratio"],
    "FID_real_real": ["fidelity.FEATURES.fid_real_real"],
    "KID": ["fidelity.FEATURES.kid_mean"],
    "precision": ["fidelity.FEATURES.precision"],
    "recall": ["fidelity.FEATURES.recall"],
    "density": ["fidelity.FEATURES.density"],
    "coverage": ["fidelity.FEATURES.coverage"],
    "quality.overall": ["fidelity.quality.overall", "tabular.quality.overall"],
    "quality.column_shapes": ["fidelity.quality.column_shapes", "tabular.quality.column_shapes"],
    "quality.column_pair_trends": [
        "fidelity.quality.column_pair_trends",
        "tabular.quality.column_pair_trends",
    ],
    "CLF.trained_on_fake.auc": ["utility.auc_syn"],
    "CLF.trained_on_real.auc": ["utility.auc_real"],
    "CLF.trained_on_real_and_fake.auc": ["utility.auc_augmented"],
    "privacy.pairwise_attack_auc": ["privacy.pairwise_attack_auc"],
    "privacy.distribution_attack_auc": ["privacy.distribution_attack_auc"],
    "privacy.dcr_share_closer_to_train": ["privacy.dcr.share_closer_to_train"],
}


# the report's utility fields that say how its AUCs were measured, beside its `settings` (the
# --labels and --utility-model), and their names in the card: `model` is the network itself
# (`ResNetConfig(...)`, `HistGradientBoostingClassifier`)
UTILITY_SETTINGS = {"task": "task", "seeds": "seeds", "model": "classifier",
                    "model_selection": "model_selection"}  # fmt: skip


def feature_spaces(report: dict) -> list[str]:
    """The report's feature spaces holding an FID (`pixels.raw`, `pixels_2p5d`, ...), best
    first: Inception, then domain features, then pixels; raw before normalised."""
    found = []

    def walk(tree, prefix):
        if isinstance(tree, dict):
            if "fid" in tree:
                found.append(prefix)
            for k, v in tree.items():
                walk(v, f"{prefix}.{k}" if prefix else k)

    walk(report.get("fidelity", {}), "")
    kind = lambda p: next((i for i, w in enumerate(("inception", "domain", "pixels")) if w in p), 3)  # noqa: E731
    return sorted(found, key=lambda p: (kind(p), "normalised" in p or "minmax" in p, p))


def _get(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def metrics_from_report(report: dict) -> tuple[dict, dict]:
    """(performance, settings) of a `jaxsyn evaluate` report.json: the metrics under medigan-style
    nested keys (a list of per-seed AUCs becomes its mean), and which report field each came
    from with that field's settings."""
    performance: dict = {}
    sources: dict = {}
    spaces = feature_spaces(report)
    for name, wheres in REPORT_METRICS.items():
        candidates = (
            [w.replace("FEATURES", f) for w in wheres for f in spaces]
            if "FEATURES" in wheres[0]
            else wheres
        )
        for path in candidates:
            value = _get(report, path)
            if isinstance(value, list) and value and all(isinstance(v, int | float) for v in value):
                value = sum(value) / len(value)
            if isinstance(value, int | float) and not isinstance(value, bool):
                _put(performance, name, float(value))
                parent = path.rsplit(".", 1)[0]
                settings = _get(report, f"{parent}.settings")
                if parent == "utility":  # how the classifiers were scored: task, seeds, network
                    found = report["utility"]
                    extra = {v: found[k] for k, v in UTILITY_SETTINGS.items() if found.get(k)}
                    settings = {**(settings or {}), **extra} or None
                sources[name] = {"from": path, **({"settings": settings} if settings else {})}
                break
    if not performance:
        raise ConfigError(
            "report.json holds none of the metrics a card records "
            f"({', '.join(REPORT_METRICS)}); expected a report written by `jaxsyn evaluate`"
        )
    return performance, sources


def _put(tree: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[last] = value


def build(run_dir: Path, template: dict, report_dir: Path | None, run_files: dict) -> dict:
    """The card of a packed model: the template's id, selection and description, the execution
    block read from the run's config.json, the report's metrics, and `run_files` (the hashes)."""
    from jaxsyn import __version__

    info = json.loads((run_dir / "config.json").read_text())
    if info.get("family") == "ctgan" and (run_dir / "transformer.json").is_file():
        info["transformer_schema"] = json.loads((run_dir / "transformer.json").read_text())[
            "schema"
        ]
    if info.get("family") not in FAMILIES:
        raise ConfigError(
            f"{run_dir / 'config.json'}: field family is {info.get('family')!r}; expected one of "
            f"{list(FAMILIES)}"
        )
    selection = dict(template.get("selection", {}))
    if report_dir is not None:
        path = Path(report_dir) / "report.json"
        if not path.is_file():
            raise ConfigError(
                f"--report {report_dir}: no report.json; expected a `jaxsyn evaluate` folder"
            )
        report = json.loads(path.read_text())
        performance, sources = metrics_from_report(report)
        date = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC)
        selection["performance"] = {**selection.get("performance", {}), **performance}
        selection["performance_settings"] = {
            "date": date.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "report": {"title": report.get("title"), "inputs": report.get("inputs", {})},
            "metrics": sources,
        }
    selection.setdefault("performance", {})
    card = {
        "card_version": 1,
        "model_id": template.get("model_id"),
        "execution": {
            "family": info["family"],
            "jaxsyn_version": __version__,
            "run": RUN,
            "config": info.get("model", {}),
            "conditions": conditions_of(info),
            "output": output_of(info),
        },
        "selection": selection,
        "description": template.get("description"),
        "files": run_files,
    }
    return card
