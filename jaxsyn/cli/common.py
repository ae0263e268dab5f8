"""What several verb groups share: `--config.FIELD=VALUE` overrides, `NAME=VALUE` conditions and
`--data phantom:...` cohorts."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path

from jaxsyn.errors import ConfigError


def override(config, assignment: str, path: str = ""):
    """Apply `FIELD=VALUE` to a (nested) frozen dataclass config; the model's fields first. VALUE
    is read as the field's annotated type (`coerce`). `path` is the dotted prefix already walked
    (for messages: an error names the whole `--config.model.image.size`, not its last part)."""
    name, _, text = assignment.partition("=")
    if "." in name:  # a dotted path into nested configs, e.g. model.image.size=64
        head, _, rest = name.partition(".")
        fields = {f.name for f in dataclasses.fields(config)}
        if head not in fields or not dataclasses.is_dataclass(getattr(config, head)):
            raise ConfigError(f"--config.{path}{name}: {head!r} is not a nested config field")
        inner = override(getattr(config, head), f"{rest}={text}", f"{path}{head}.")
        return dataclasses.replace(config, **{head: inner})
    targets = [config.model, config] if hasattr(config, "model") else [config]
    for target in targets:
        fields = {f.name: f for f in dataclasses.fields(target)}
        if name in fields:
            kind = _field_type(target, name)
            value = coerce(kind, getattr(target, name), text, f"{path}{name}")
            new = dataclasses.replace(target, **{name: value})
            return dataclasses.replace(config, model=new) if target is not config else new
    known = sorted({f.name for t in targets for f in dataclasses.fields(t)} - {"model"})
    raise ConfigError(f"--config.{path}{name}: no such field; expected one of {known}")


def apply_overrides(config, overrides: list[str]):
    for o in overrides:
        config = override(config, o)
    return config


def _field_type(config, name: str):
    """The annotated type of field `name` (the configs' annotations are strings: resolved here);
    None where it cannot be resolved, and the current value's type decides."""
    try:
        return typing.get_type_hints(type(config))[name]
    except Exception:  # an annotation naming something not importable at run time
        return None


def coerce(kind, current, text: str, name: str):
    """`text` as a value of the annotated type `kind`: bool (true/false/1/0), int, float, str,
    `X | None` ("none" or empty for None), tuple[X, ...] and tuple[X, Y] (comma-separated);
    a nested config is refused (set its fields as --config.FIELD.SUB=VALUE). Without an
    annotation, the current value's type. Errors name the field and the expected type."""
    if kind is None:
        kind = type(current) if current is not None else str
        if isinstance(current, tuple):
            kind = tuple[type(current[0]) if current else str, ...]
    try:
        return _as(kind, text)
    except (TypeError, ValueError):
        now = "" if dataclasses.is_dataclass(current) else f" (now {current!r})"
        raise ConfigError(f"--config.{name}={text}: expected {_describe(kind)}{now}") from None


def _as(kind, text: str):
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.strip().lower() in ("", "none"):
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _as(option, text)
            except (TypeError, ValueError):
                continue
        raise ValueError(text)
    if origin is tuple:
        items = [v.strip() for v in text.split(",") if v.strip()]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_as(args[0], v) for v in items)
        if len(items) != len(args):
            raise ValueError(text)
        return tuple(_as(a, v) for a, v in zip(args, items, strict=True))
    if dataclasses.is_dataclass(kind):
        raise TypeError("a nested config")
    if kind is bool:
        if text.strip().lower() not in ("true", "false", "1", "0"):
            raise ValueError(text)
        return text.strip().lower() in ("true", "1")
    if kind is int:
        return int(text)  # "1.5" is refused, not truncated
    if kind in (float, str):
        return kind(text)
    raise TypeError(f"cannot read {kind}")


def _describe(kind) -> str:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) if a is not type(None) else "none" for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            plural = {int: "integers", float: "numbers", str: "texts", bool: "true/false values"}
            return f"comma-separated {plural.get(args[0], _describe(args[0]))}"
        return f"{len(args)} comma-separated values ({', '.join(_describe(a) for a in args)})"
    if dataclasses.is_dataclass(kind):
        return f"fields set one by one (--config.FIELD.SUB=VALUE), not a whole {kind.__name__}"
    if kind is bool:
        return "true or false"
    return {int: "an integer", float: "a number", str: "text"}.get(kind, str(kind))


def name_value(text: str) -> tuple[str, str]:
    """`--condition NAME=VALUE` as (NAME, VALUE)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ConfigError(f"--condition {text}: expected NAME=VALUE (or NAME=LO:HI for a range)")
    return name, value


def numeric_conditions(texts: list[str]) -> dict[str, float]:
    """Repeated `--condition NAME=NUMBER` (volume families) as {NAME: NUMBER}."""
    conditions = {}
    for text in texts:
        name, _, value = text.partition("=")
        try:
            if not name:
                raise ValueError(text)
            conditions[name] = float(value)
        except ValueError:
            raise ConfigError(f"--condition {text}: expected NAME=NUMBER") from None
    return conditions


def phantom_n(data: str) -> int:
    """N of `--data phantom:KIND:N`."""
    n = data.rsplit(":", 1)[-1]
    if not n.isdigit() or int(n) < 1:
        raise ConfigError(f"--data {data}; expected phantom:KIND:N with N >= 1")
    return int(n)


def store_for(data: str, out: Path, size: int, seed: int):
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
