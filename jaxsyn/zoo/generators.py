"""`Generators`: medigan's face over jaxsyn's model library (search, rank, load by id, generate).

    from jaxsyn.zoo import Generators
    g = Generators(library="my_models")                  # + shipped models + $JAXSYN_MODELS
    g.find_matching_models_by_values(["ct", "3d"])        # -> [ModelMatchCandidate(model_id=...)]
    g.rank_models_by_performance(metric="FID", order="asc")   # -> [{"model_id": .., "FID": ..}]
    g.generate("3", num_samples=4, output_path="out")     # files, as `jaxsyn generate` writes
    g.generate(3, num_samples=4, save_images=False, seed=1, conditions={"bmi_class": 2})
    g.generate(7, num_samples=4, output_path="ct", images="mri")   # a translator: MRI -> CT

Names and arguments follow medigan's `Generators` where they make sense; the differences: a model
is a card + arrays, never code (no executor, no pip installs), every file is hash-checked before
use, short ids accept 3, "3" and "00003", and `get_as_dataset` returns a Grain dataset.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxsyn.errors import ConfigError
from jaxsyn.zoo import cards, library, sampling

OPERATORS = ("AND", "OR", "XOR")
EXPLORED_SOURCES = 4  # source images the explorer shows for a translator


@dataclasses.dataclass
class MatchedEntry:
    """One value of a search found in a card: where (`key`), what matched, and the value."""

    key: str
    value: Any
    matching_element: str


@dataclasses.dataclass
class ModelMatchCandidate:
    """A model considered by a search (medigan's name): its id, the entries that matched and
    whether it is a match under the operator."""

    model_id: str
    target_values: list
    target_values_operator: str = "AND"
    is_case_sensitive: bool = False
    are_keys_also_matched: bool = False
    matched_entries: list[MatchedEntry] = dataclasses.field(default_factory=list)
    is_match: bool = False

    def get_all_matching_elements(self) -> list[str]:
        return [m.matching_element for m in self.matched_entries]

    def __len__(self) -> int:
        return len(self.matched_entries)


def _walk(tree: Any, prefix: str = ""):
    """(dotted key, leaf value) of every leaf of a card block; list items are leaves of their key."""
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            yield from _walk(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(tree, list):
        for v in tree:
            yield from _walk(v, prefix)
    else:
        yield prefix, tree


class Generators:
    """The models found in the shipped library, `$JAXSYN_MODELS` and `library` (a folder or a
    list of them), in that order; the same id in two places is an error naming both."""

    def __init__(self, library: str | os.PathLike | list | None = None):
        self.folders = library
        self.refresh()

    def refresh(self) -> None:
        """Look for models again (after something was added)."""
        self._search = library.search_path(self.folders)
        self._paths = library.discover(self._search)
        self._cards: dict[str, dict] = {}

    # --- reading cards ---------------------------------------------------------------------

    def list_models(self) -> list[str]:
        """Every model id, sorted."""
        return sorted(self._paths)

    def resolve(self, model_id: str | int) -> str:
        return library.resolve(model_id, self._paths)

    def _card(self, model_id: str | int) -> dict:
        full = self.resolve(model_id)
        if full not in self._cards:  # hashes are checked again by every generate
            card = cards.read(self._paths[full])
            card["execution"]["path"] = str(self._paths[full].absolute())
            self._cards[full] = card
        return self._cards[full]

    def get_config_by_id(self, model_id: str | int, config_key: str | None = None) -> Any:
        """The card as a dict (`execution.path`: the model's folder), or one dotted key of it."""
        import copy

        card = copy.deepcopy(self._card(model_id))
        if config_key is None:
            return card
        value = card
        for part in config_key.split("."):
            if not isinstance(value, Mapping) or part not in value:
                raise ConfigError(f"model {card['model_id']}: no field {config_key!r} in its card")
            value = value[part]
        return value

    def get_selection_criteria_by_id(
        self, model_id: str | int, is_model_id_removed: bool = True
    ) -> dict:
        selection = self.get_config_by_id(model_id, "selection")
        return (
            selection
            if is_model_id_removed
            else {"model_id": self.resolve(model_id), "selection": selection}
        )

    def get_selection_criteria_by_ids(self, model_ids: list | None = None) -> list[dict]:
        ids = self.list_models() if model_ids is None else [self.resolve(m) for m in model_ids]
        return [self.get_selection_criteria_by_id(m) for m in ids]

    # --- search and rank ---------------------------------------------------------------------

    def get_models_by_key_value_pair(
        self, key1: str, value1: Any, is_case_sensitive: bool = False
    ) -> list[dict]:
        """[{"model_id": id, key1: value1}] of the models whose selection `key1` (dotted) equals
        `value1` or, for a list, holds it."""
        fold = (lambda s: s) if is_case_sensitive else str.lower
        out = []
        for model_id in self.list_models():
            value: Any = self._card(model_id)["selection"]
            for part in key1.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            items = value if isinstance(value, list) else [value]
            if (
                value is not None
                and not isinstance(value, Mapping)
                and any(fold(str(v)) == fold(str(value1)) for v in items)
            ):
                out.append({"model_id": model_id, key1: value1})
        return out

    def find_matching_models_by_values(self, values: list | str, target_values_operator: str = "AND",
                                       are_keys_also_matched: bool = False,
                                       is_case_sensitive: bool = False) -> list[ModelMatchCandidate]:  # fmt: skip
        """Models whose card (selection and description blocks, and the family) holds the
        `values`: AND every value, OR at least one, XOR exactly one. A value matches a leaf that
        equals it as text (list items one by one); `are_keys_also_matched`: keys count too."""
        values = [values] if isinstance(values, str) else list(values)
        if target_values_operator not in OPERATORS:
            raise ConfigError(
                f"target_values_operator is {target_values_operator!r}; expected one of {list(OPERATORS)}"
            )
        fold = (lambda s: s) if is_case_sensitive else str.lower
        matches = []
        for model_id in self.list_models():
            card = self._card(model_id)
            cand = ModelMatchCandidate(model_id, values, target_values_operator, is_case_sensitive,
                                       are_keys_also_matched)  # fmt: skip
            blocks = {"selection": card["selection"], "description": card["description"],
                      "execution": {"family": card["execution"]["family"]}}  # fmt: skip
            for key, leaf in _walk(blocks):
                for target in values:
                    t = fold(str(target))
                    hit = leaf is not None and fold(str(leaf)) == t
                    if not hit and are_keys_also_matched:
                        hit = t in (fold(k) for k in key.split("."))
                    if hit:
                        cand.matched_entries.append(MatchedEntry(key, leaf, str(target)))
            found = {fold(m.matching_element) for m in cand.matched_entries}
            wanted = {fold(str(v)) for v in values}
            cand.is_match = {"AND": found >= wanted and bool(wanted), "OR": bool(found),
                             "XOR": len(found & wanted) == 1}[target_values_operator]  # fmt: skip
            if cand.is_match:
                matches.append(cand)
        return matches

    def output_kind(self, model_id: str | int) -> str:
        """What a model generates: its card's execution.output.kind ("volumes", "cohort",
        "images", "table", "translations"). A metric compares models of one kind only: an FID of
        volumes and an FID of radiographs are not on one scale."""
        return self._card(self.resolve(model_id))["execution"]["output"]["kind"]

    def rank_models_by_performance(self, model_ids: list | None = None, metric: str = "FID",
                                   order: str = "asc", kind: str | None = None) -> list[dict]:  # fmt: skip
        """[{"model_id": id, metric: value}] sorted by `metric` (a dotted key of
        selection.performance, e.g. "CLF.trained_on_fake.auc"); models without it are left out.
        A list value counts as its best: min for "asc", max for "desc". `kind`: only models with
        that output kind (`output_kind`)."""
        if order not in ("asc", "desc"):
            raise ConfigError(f"order is {order!r}; expected 'asc' or 'desc'")
        ids = self.list_models() if model_ids is None else [self.resolve(m) for m in model_ids]
        if kind is not None:
            ids = [m for m in ids if self.output_kind(m) == kind]
        ranked = []
        for model_id in ids:
            value: Any = self._card(model_id)["selection"]["performance"]
            for part in metric.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            if isinstance(value, list) and value:
                value = min(value) if order == "asc" else max(value)
            if isinstance(value, int | float) and not isinstance(value, bool):
                ranked.append({"model_id": model_id, metric: value})
        ranked.sort(key=lambda r: r[metric], reverse=order == "desc")  # stable: ties by id
        return ranked

    def find_models_and_rank(self, values: list | str, target_values_operator: str = "AND",
                             are_keys_also_matched: bool = False, is_case_sensitive: bool = False,
                             metric: str = "FID", order: str = "asc",
                             kind: str | None = None) -> list[dict]:  # fmt: skip
        found = self.find_matching_models_by_values(values, target_values_operator,
                                                    are_keys_also_matched, is_case_sensitive)  # fmt: skip
        return (
            self.rank_models_by_performance([m.model_id for m in found], metric, order, kind)
            if found
            else []
        )

    def find_model_and_generate(self, values: list | str, target_values_operator: str = "AND",
                                are_keys_also_matched: bool = False, is_case_sensitive: bool = False,
                                metric: str = "FID", order: str = "asc", num_samples: int = 30,
                                output_path=None, save_images: bool = True, **kwargs):  # fmt: skip
        """Generate with the best-ranked model among those the search finds."""
        ranked = self.find_models_and_rank(values, target_values_operator, are_keys_also_matched,
                                           is_case_sensitive, metric, order)  # fmt: skip
        if not ranked:
            raise ConfigError(
                f"no model matches {values} ({target_values_operator}) and has metric {metric!r}"
            )
        return self.generate(ranked[0]["model_id"], num_samples, output_path, save_images, **kwargs)

    # --- generation --------------------------------------------------------------------------

    def checked_card(self, model_id: str | int) -> dict:
        """The card after every file's hash was checked (a tampered file: CheckpointError)."""
        full = self.resolve(model_id)
        return sampling.model_folder_card(self._paths[full])

    def generate(self, model_id: str | int, num_samples: int = 30, output_path=None,
                 save_images: bool = True, **kwargs):  # fmt: skip
        """num_samples from a model: files in `output_path` as `jaxsyn generate` writes them
        (returns the folder), or with save_images=False the arrays (`jaxsyn.zoo.sampling`).
        kwargs: seed (0), conditions ({name: value}), batch_size, latents [N, latent], progress;
        a translator (duiit): images (a folder or [N, H, W(, 1)] in [0, 1]; default: num_samples
        head phantoms of its source modality drawn from the seed), translated as `jaxsyn
        translate` does."""
        allowed = {"seed", "conditions", "batch_size", "latents", "images", "progress"}
        if unknown := sorted(set(kwargs) - allowed):
            raise ConfigError(
                f"generate: unknown arguments {unknown}; expected some of {sorted(allowed)}"
            )
        card = self.checked_card(model_id)
        return sampling.generate(card, num_samples, output_path=output_path,
                                 save_images=save_images, **kwargs)  # fmt: skip

    def get_generate_function(self, model_id: str | int) -> GenerateFunction:
        """A callable bound to one model (hashes checked once, now): see `GenerateFunction`."""
        return GenerateFunction(self.checked_card(model_id))

    def test_model(self, model_id: str | int, num_samples: int = 3, seed: int = 0) -> dict:
        """Generate a few samples and check them (`jaxsyn.zoo.checks`); a dict of what was
        checked, or a DataError naming the first failed check."""
        from jaxsyn.zoo import checks

        return checks.test_model(self.checked_card(model_id), num_samples, seed)

    def add_model_to_config(self, model: str | os.PathLike, library_dir: str | os.PathLike | None = None,
                            replace: bool = False) -> str:  # fmt: skip
        """Install a MODEL.zip (or a model folder) into `library_dir` (default: the last library
        given, else the first `$JAXSYN_MODELS` folder); returns its id."""
        target = library_dir or default_library(self.folders)
        model_id, _ = library.add(model, target, replace=replace, others=self._search)
        self.refresh()
        return model_id

    def get_as_dataset(self, model_id: str | int, num_samples: int, seed: int = 0,
                       conditions: Mapping[str, Any] | None = None, mix_with=None,
                       synthetic_fraction: float = 0.5, batch_size: int | None = None):  # fmt: skip
        """A Grain `MapDataset` of num_samples synthetic examples (dicts; the same for the same
        seed). With `mix_with` (a Grain MapDataset or sequence of dicts with the same keys),
        batches of `batch_size` where round(synthetic_fraction * batch_size) examples are
        synthetic; each example gains "synthetic" (bool)."""
        from jaxsyn.zoo import datasets

        arrays = self.generate(model_id, num_samples, save_images=False, seed=seed,
                               conditions=conditions, progress=False)  # fmt: skip
        synthetic = datasets.examples(arrays)
        if mix_with is None:
            return datasets.source(synthetic, batch_size)
        return datasets.mix(synthetic, mix_with, synthetic_fraction, batch_size, seed)


class GenerateFunction:
    """One model, hash-checked once, ready to generate.

    `f(num_samples, seed=0, conditions=None, latents=None)` -> the arrays of `Generators.generate`.
    It also follows the explorer's protocol (`jaxsyn.zoo.explorer`): `latent_dim`,
    `conditions_schema` ({name: {"type": "integer"|"number"|"string", "enum"|"minimum"/"maximum",
    "default"}}) and `generate(latents [latent_dim] | None, seed, conditions)` -> one sample as
    {"latents", and "volume" [D, H, W] HU + "window" | "images" [1, H, W, C] | "rows"}. The card's
    own condition schema is `card["execution"]["conditions"]`. A translator has no latents
    (latent_dim 0): `generate` shows source phantoms drawn from the seed beside their translations.
    """

    def __init__(self, card: dict):
        self.card = card
        self.model_id = card["model_id"]
        self.latent_dim = sampling.latent_dim(card)
        self.output = card["execution"]["output"]
        self.conditions_schema = explorer_schema(card)

    def __call__(
        self, num_samples: int = 1, seed: int = 0, conditions=None, latents=None, **kwargs
    ):
        return sampling.generate(self.card, num_samples, save_images=False, seed=seed,
                                 conditions=conditions, latents=latents, progress=False, **kwargs)  # fmt: skip

    def generate(
        self, latents: np.ndarray | None, seed: int, conditions: Mapping[str, Any] | None
    ) -> dict:
        if self.card["execution"]["family"] == "duiit":
            return self._translations(seed)
        if latents is None:  # drawn on the host from the seed, so the sliders can start there
            latents = np.random.default_rng(seed).standard_normal(self.latent_dim)
        z = np.asarray(latents, np.float32).reshape(1, self.latent_dim)
        arrays = self(1, seed=seed, conditions=conditions, latents=z)
        out: dict[str, Any] = {"latents": z[0]}
        if "volumes" in arrays:
            out["volume"] = arrays["volumes"][0].astype(np.float32)
            out["window"] = tuple(self.output.get("window_hu", (-1024.0, 600.0)))
        if "images" in arrays:
            out["images"] = arrays["images"]
        if "table" in arrays:
            out["rows"] = arrays["table"]
        elif "labels" in arrays:
            out["rows"] = arrays["labels"]
        return out

    def _translations(self, seed: int, k: int = EXPLORED_SOURCES) -> dict:
        """A translator in the explorer: `k` source phantoms drawn from the seed, each shown
        beside its translation ([k, S, 2S, 1]: source | translation), and their labels."""
        from jaxsyn.data.labelled import load_labelled

        spec = sampling.source_spec(self.card, k)
        size = int(self.output["shape"][0])
        sources = load_labelled(spec, None, size, seed, progress=False)
        arrays = self(k, seed=seed, images=spec)
        left = (sources.images + 1.0) / 2.0
        titles = [f"{i}: source | translation" for i in sources.image_ids]
        return {"latents": np.zeros(0, np.float32), "rows": arrays["labels"], "titles": titles,
                "images": np.concatenate([left, arrays["images"]], axis=2)}  # fmt: skip


def explorer_schema(card: dict) -> dict:
    """The card's conditions in the explorer's terms. A table's numeric columns are left out:
    they condition by rejection sampling, which given noise cannot follow."""
    schema = {}
    for name, spec in card["execution"]["conditions"].items():
        if spec["type"] == "number":
            if card["execution"]["family"] == "ctgan":
                continue
            lo, hi = spec.get("minimum", -3.0), spec.get("maximum", 3.0)
            schema[name] = {
                "type": "number",
                "minimum": lo,
                "maximum": hi,
                "default": (lo + hi) / 2,
            }
            continue
        values = spec["values"]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        ints = numeric and all(float(v).is_integer() for v in values)
        kind = "integer" if ints else "number" if numeric else "string"
        schema[name] = {"type": kind, "enum": [int(v) if ints else v for v in values]}
    return schema


def default_library(given) -> Path:
    if given:
        return Path(given if isinstance(given, str | os.PathLike) else list(given)[-1])
    env = [p for p in os.environ.get(library.ENV, "").split(":") if p]
    if env:
        return Path(env[0])
    raise ConfigError(f"no library folder to add to; expected --library DIR or ${library.ENV}")
