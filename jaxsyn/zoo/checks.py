"""`jaxsyn models test ID`: a few samples, checked against the card.

Every model: the card's shape, finite values, values inside the output's range (HU window for
CTs, [0, 1] for images, each numeric column inside the training data's [min, max] for tables).
A conditional model also: two different conditions give different outputs, and where the family
has a rule relating output to condition, it holds (a table's conditioned discrete column equals
the condition; an image's labels.csv and an MMCGAN patient's row carry the asked class).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxsyn.errors import DataError
from jaxsyn.zoo import sampling


def _fail(card: dict, what: str) -> None:
    raise DataError(f"model {card['model_id']}: {what}")


def _arrays(out: dict) -> np.ndarray:
    return out["volumes"] if "volumes" in out else out.get("images")


def check_output(card: dict, out: dict, n: int) -> list[str]:
    """Shape, finiteness and range of one generated batch; the checks that passed."""
    spec, done = card["execution"]["output"], []
    array = _arrays(out)
    if array is not None:
        want = (n, *spec["shape"])
        if tuple(array.shape) != want:
            _fail(
                card,
                f"generated shape {list(array.shape)}; expected {list(want)} (the card's output.shape)",
            )
        if not np.isfinite(array).all():
            _fail(card, "generated values hold NaN or infinity; expected finite values")
        # CTs: generated intensities are tanh outputs unwindowed, so inside the HU window
        lo, hi = spec["window_hu"] if "volumes" in out else (0.0, 1.0)
        if array.min() < lo - 1 or array.max() > hi + 1:
            _fail(card, f"values in [{array.min()}, {array.max()}]; expected [{lo}, {hi}]")
        done += ["shape", "finite", "range"]
    if "table" in out:
        table = out["table"]
        if len(table) != n:
            _fail(card, f"{len(table)} rows; expected {n}")
        for name, schema in card["execution"]["conditions"].items():
            if schema["type"] == "number" and "minimum" in schema and name in table:
                col = table[name].dropna().astype(float)
                if len(col) and (
                    col.min() < schema["minimum"] - 1e-9 or col.max() > schema["maximum"] + 1e-9
                ):
                    _fail(
                        card,
                        f"column {name} in [{col.min()}, {col.max()}]; expected the training range [{schema['minimum']}, {schema['maximum']}]",
                    )
            if schema["type"] == "category" and name in table:
                bad = set(table[name].dropna().astype(str)) - {str(v) for v in schema["values"]}
                if bad:
                    _fail(
                        card,
                        f"column {name} holds {sorted(bad)}; expected among {schema['values']}",
                    )
        numeric = table.select_dtypes("number").to_numpy(dtype=float)
        if numeric.size and not np.isfinite(numeric[~np.isnan(numeric)]).all():
            _fail(card, "table holds infinite values")
        done += ["rows", "table ranges"]
    return done


def _condition_pair(schema: dict) -> tuple[str, Any, Any] | None:
    """A condition and two values of it to compare (the first and last class/category)."""
    for name, s in schema.items():
        if s["type"] in ("class", "binary", "category") and len(s["values"]) >= 2:
            return name, s["values"][0], s["values"][-1]
    for name, s in schema.items():
        if s["type"] == "number" and "minimum" in s:
            return name, s["minimum"], s["maximum"]
    return None


def _filled(card: dict, name: str | None = None, value: Any = None) -> dict:
    """`{name: value}` plus values for the other required conditions (their first value; 0)."""
    out = {}
    for other, s in card["execution"]["conditions"].items():
        if s.get("required") and other != name:
            out[other] = s["values"][0] if "values" in s else s.get("minimum", 0.0)
    if name is not None:
        out[name] = value
    return out


def _rule(card: dict, out: dict, name: str, value: Any) -> str | None:
    """The family's output-agrees-with-condition rule, checked; its name, or None if none."""
    family, spec = card["execution"]["family"], card["execution"]["conditions"][name]
    if family == "ctgan" and spec["type"] == "category":
        col = out["table"][name].astype(str)
        if (
            not (col == str(value)).all()
            and not (out["table"][name].astype(float) == float(value)).all()
        ):
            _fail(
                card,
                f"rows conditioned on {name}={value} hold {sorted(set(col))}; expected only {value}",
            )
        return f"conditioned column {name} equals the condition"
    if family == "mmcgan" and spec["type"] == "class" and name in out["table"]:
        col = out["table"][name]
        if not (col.astype(float) == float(value)).all():
            _fail(card, f"patients conditioned on {name}={value} have rows with {sorted(set(col))}")
        return f"each patient's row carries its class {name}"
    if family in ("acgan", "proggan", "cpdgan") and name in out["labels"]:
        col = out["labels"][name].astype(str)
        if not (col == str(value)).all():
            _fail(
                card, f"labels.csv of images conditioned on {name}={value} says {sorted(set(col))}"
            )
        return f"labels.csv carries {name}"
    return None


def test_model(card: dict, n: int = 3, seed: int = 0) -> dict:
    """Generate n samples (and, if conditional, n for each of two conditions); check them."""
    out = sampling.generate(card, n, save_images=False, seed=seed, progress=False,
                            conditions=_filled(card))  # fmt: skip
    report: dict = {"model_id": card["model_id"], "n": n, "checks": check_output(card, out, n)}
    pair = _condition_pair(card["execution"]["conditions"])
    if pair is None:
        return report
    name, a, b = pair
    outs = []
    for value in (a, b):
        o = sampling.generate(card, n, save_images=False, seed=seed, progress=False,
                              conditions=_filled(card, name, value))  # fmt: skip
        report["checks"] += [f"{c} ({name}={value})" for c in check_output(card, o, n)]
        if rule := _rule(card, o, name, value):
            report["checks"].append(f"{rule} ({name}={value})")
        outs.append(o)
    first, second = (
        _arrays(o) if _arrays(o) is not None else o["table"].select_dtypes("number").to_numpy()
        for o in outs
    )
    if first.shape == second.shape and np.array_equal(first, second):
        _fail(
            card,
            f"the same output for {name}={a} and {name}={b} (seed {seed}); expected the condition to change it",
        )
    report["checks"].append(f"{name}={a} and {name}={b} give different outputs")
    report["condition"] = {"name": name, "values": [a, b]}
    return report
