"""What several verb groups share: `--config.FIELD=VALUE` overrides, `NAME=VALUE` conditions and
`--data phantom:...` cohorts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from jaxsyn.errors import ConfigError


def override(config, assignment: str):
    """Apply `FIELD=VALUE` to a (nested) frozen dataclass config; the model's fields first."""
    name, _, text = assignment.partition("=")
    if "." in name:  # a dotted path into nested configs, e.g. model.image.size=64
        head, _, rest = name.partition(".")
        fields = {f.name for f in dataclasses.fields(config)}
        if head not in fields or not dataclasses.is_dataclass(getattr(config, head)):
            raise ConfigError(f"--config.{name}: {head!r} is not a nested config field")
        inner = override(getattr(config, head), f"{rest}={text}")
        return dataclasses.replace(config, **{head: inner})
    targets = [config.model, config] if hasattr(config, "model") else [config]
    for target in targets:
        fields = {f.name: f for f in dataclasses.fields(target)}
        if name in fields:
            value = _coerce(getattr(target, name), text, name)
            new = dataclasses.replace(target, **{name: value})
            return dataclasses.replace(config, model=new) if target is not config else new
    known = sorted({f.name for t in targets for f in dataclasses.fields(t)} - {"model"})
    raise ConfigError(f"--config.{name}: no such field; expected one of {known}")


def apply_overrides(config, overrides: list[str]):
    for o in overrides:
        config = override(config, o)
    return config


def _coerce(current, text: str, name: str):
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if isinstance(current, tuple):
            kind = type(current[0]) if current else str
            return tuple(kind(v) for v in text.split(",") if v)
        if current is None:
            return None if text.lower() in ("", "none") else text
        return type(current)(text)
    except ValueError:
        raise ConfigError(f"--config.{name}={text}: expected a value like {current!r}") from None


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
