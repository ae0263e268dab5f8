"""`jaxsyn models test ID`: a few samples, checked against the card.

Every model: the card's shape, finite values, values inside the output's range (HU window for
CTs, [0, 1] for images, each numeric column inside the training data's [min, max] for tables).
A conditional model also: two different conditions give different outputs, and where the family
has a rule relating output to condition, it holds (a table's conditioned discrete column equals
the condition; an image's labels.csv and an MMCGAN patient's row carry the asked class).
A translator (duiit) has no condition; it is checked on max(n, TRANSLATION_N) source phantoms
drawn from the seed (shape, finite, range), and its rule: different source images give different
translations, and (when it was trained on phantoms) its translations of TRANSLATION_N source
phantoms are closer to TRANSLATION_N real target phantoms than the sources are, by both of
`translation_distances`: the RMS difference of the mean images and the Wasserstein-1 distance
between pixel intensities (each on [0, 1]).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxsyn.errors import DataError
from jaxsyn.zoo import sampling

TRANSLATION_N = 16  # source and target phantoms the translator's rule compares


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


def translation_distances(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """How far images a [N, H, W, 1] lie from images b [M, H, W, 1] (both [0, 1]): the RMS
    difference of their mean images, and the Wasserstein-1 distance of their pixel intensities."""
    from scipy.stats import wasserstein_distance

    mean = float(np.sqrt(np.mean((a.mean(0) - b.mean(0)) ** 2)))
    return {
        "mean_image_rms": mean,
        "intensity_w1": float(wasserstein_distance(a.ravel(), b.ravel())),
    }


def _test_translator(card: dict, n: int, seed: int) -> dict:
    """A translator's checks (module docstring) on max(n, TRANSLATION_N) source phantoms drawn
    from the seed: shape, finite, range, then its rule; the report holds the distances."""
    from jaxsyn.data.labelled import load_labelled

    m = max(n, TRANSLATION_N)
    out = sampling.generate(card, m, save_images=False, seed=seed, progress=False)
    report = {"model_id": card["model_id"], "n": m, "checks": check_output(card, out, m)}
    fake = out["images"]
    if np.abs(fake - fake[:1]).max() < 1.5 / 255:
        _fail(card, f"the same translation for all {m} source images (seed {seed}); expected the "
                    "source image to change it")  # fmt: skip
    report["checks"].append(f"{m} different source images give different translations")
    target = card["execution"]["output"].get("target", "")
    if not target.startswith("phantom:") or target.count(":") != 2:
        report["distances"] = {"note": f"trained on {target!r}: no real target phantoms"}
        return report
    size = fake.shape[1]
    spec = sampling.source_spec(card, m)
    sources = (load_labelled(spec, None, size, seed, progress=False).images + 1.0) / 2.0
    real_spec = f"{target.rsplit(':', 1)[0]}:{m}"
    real = (load_labelled(real_spec, None, size, seed, progress=False).images + 1.0) / 2.0
    d_fake, d_source = translation_distances(fake, real), translation_distances(sources, real)
    for name in d_fake:
        if not d_fake[name] < d_source[name]:
            _fail(card, f"translations lie {d_fake[name]:.4f} from real {real_spec} ({name}); "
                        f"expected closer than their sources' {d_source[name]:.4f}")  # fmt: skip
        report["checks"].append(f"translations closer to real target phantoms than the sources "
                                f"({name} {d_fake[name]:.4f} < {d_source[name]:.4f})")  # fmt: skip
    report["distances"] = {"translations": d_fake, "sources": d_source, "real": real_spec}
    return report


def test_model(card: dict, n: int = 3, seed: int = 0) -> dict:
    """Generate n samples (and, if conditional, n for each of two conditions); check them."""
    if card["execution"]["family"] == "duiit":
        return _test_translator(card, n, seed)
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
