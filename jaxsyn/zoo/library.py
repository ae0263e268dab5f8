"""Where models live and how they get there: the shipped library, `JAXSYN_MODELS`, `--library`;
ids and short ids; `pack` (a run + a card template + a report -> MODEL.zip) and `add` (MODEL.zip
-> a library folder, checked, atomically).

Search order: the models shipped inside the package (`jaxsyn/zoo/models/`), then every folder of
`JAXSYN_MODELS` (colon-separated), then the `library` folders given. The same id (or the same
five-digit number) in two places is an error naming both: no silent precedence.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import zipfile
from importlib import resources
from pathlib import Path, PurePosixPath

from jaxsyn import files
from jaxsyn.errors import CheckpointError, ConfigError
from jaxsyn.zoo import cards

ENV = "JAXSYN_MODELS"
# what a run folder holds that a model does not need: training data, previews, logs
SKIPPED_DIRS = ("data", "previews", "samples")
SKIPPED_SUFFIXES = (".png", ".jsonl", ".log")


def shipped() -> Path:
    return Path(str(resources.files("jaxsyn.zoo").joinpath("models")))


def search_path(library: str | os.PathLike | list | tuple | None = None) -> list[Path]:
    """The folders searched, in order, each once (a folder named twice counts once)."""
    given = (
        []
        if library is None
        else [library]
        if isinstance(library, str | os.PathLike)
        else list(library)
    )
    env = [p for p in os.environ.get(ENV, "").split(":") if p]
    out, seen = [], set()
    for folder in [shipped(), *env, *given]:
        key = os.path.realpath(folder)
        if key not in seen:
            seen.add(key)
            out.append(Path(folder))
    return out


def discover(folders: list[Path]) -> dict[str, Path]:
    """{model id: its folder} over `folders`; a ConfigError names both places of a repeated id."""
    found: dict[str, Path] = {}
    numbers: dict[str, str] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for sub in sorted(folder.iterdir()):
            match = cards.ID_PATTERN.match(sub.name)
            if not match or not (sub / cards.CARD).is_file():
                continue
            other = found.get(sub.name) or found.get(numbers.get(match[1], ""))
            if other is not None:
                raise ConfigError(
                    f"model {sub.name} is in two places: {other} and {sub}; expected each id "
                    "(and each five-digit number) once across the shipped models, "
                    f"${ENV} and --library"
                )
            found[sub.name] = sub
            numbers[match[1]] = sub.name
    return found


def resolve(model_id: str | int, known: dict[str, Path]) -> str:
    """The full id of `model_id`: itself, or a short id as medigan takes them (3, "3", "00003")."""
    text = str(model_id).strip()
    if text in known:
        return text
    if text.isdigit():
        number = f"{int(text):05d}"
        for full in known:
            if full.startswith(number + "_"):
                return full
    listed = ", ".join(sorted(known)) or "none (see `jaxsyn models list`)"
    raise ConfigError(f"model id {model_id!r}: no such model; expected one of {listed}")


# --- pack -----------------------------------------------------------------------------------------


def run_files(run_dir: Path) -> list[Path]:
    """The files of a run a model needs: config.json, the tables' side files and the latest
    checkpoint (earlier steps, training data, previews and logs stay behind)."""
    checkpoints = run_dir / "checkpoints"
    steps = (
        sorted(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit())
        if checkpoints.is_dir()
        else []
    )
    if not (run_dir / "config.json").is_file() or not steps:
        raise ConfigError(
            f"{run_dir}: no config.json or no checkpoint; expected a run folder made by `jaxsyn train`"
        )
    keep = []
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir)
        if not path.is_file() or path.name.startswith("."):
            continue
        if rel.parts[0] in SKIPPED_DIRS or path.suffix in SKIPPED_SUFFIXES:
            continue
        if rel.parts[0] == "checkpoints" and (len(rel.parts) < 2 or rel.parts[1] != str(steps[-1])):
            continue
        keep.append(path)
    return keep


def pack(run_dir: str | os.PathLike, card_file: str | os.PathLike, out: str | os.PathLike,
         report_dir: str | os.PathLike | None = None) -> dict:  # fmt: skip
    """MODEL.zip holding `<id>/model.json` and `<id>/run/...`; the card gets the execution block
    from the run, the metrics of `report_dir`'s report.json and every file's sha256. Returns it."""
    run_dir = Path(run_dir)
    try:
        template = json.loads(Path(card_file).read_text())
    except (FileNotFoundError, json.JSONDecodeError) as e:
        raise ConfigError(f"--card {card_file}: {e}; expected a JSON card template") from None
    keep = run_files(run_dir)
    hashes = {f"{cards.RUN}/{p.relative_to(run_dir).as_posix()}": files.sha256(p) for p in keep}
    card = cards.validate(cards.build(run_dir, template, report_dir, hashes), card_file)
    model_id = card["model_id"]
    with (
        files.atomic_path(out, ".zip") as tmp,
        zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z,
    ):
        z.writestr(f"{model_id}/{cards.CARD}", json.dumps(card, indent=2, sort_keys=True) + "\n")
        for path in keep:
            z.write(path, f"{model_id}/{cards.RUN}/{path.relative_to(run_dir).as_posix()}")
    return card


# --- add ------------------------------------------------------------------------------------------


def safe_members(archive: zipfile.ZipFile, source: str) -> tuple[str, list[zipfile.ZipInfo]]:
    """(the model id, the archive's file entries), refusing any entry that would land outside
    the model's folder (absolute, `..`, backslashes, links) or outside one top-level folder."""
    tops, members = set(), []
    for info in archive.infolist():
        name = info.filename
        path = PurePosixPath(name)
        mode = info.external_attr >> 16
        if (name.startswith("/") or "\\" in name or ".." in path.parts or ":" in path.parts[0]
                or stat.S_ISLNK(mode)):  # fmt: skip
            raise CheckpointError(
                f"{source}: entry {name!r} would land outside the model folder; refusing the archive"
            )
        tops.add(path.parts[0])
        if not info.is_dir():
            members.append(info)
    if len(tops) != 1:
        raise CheckpointError(
            f"{source}: top-level entries {sorted(tops)}; expected one model folder"
        )
    return tops.pop(), members


def add(archive: str | os.PathLike, library: str | os.PathLike, *, replace: bool = False,
        others: list[Path] | None = None) -> tuple[str, Path]:  # fmt: skip
    """Install MODEL.zip (or a model folder) into `library`: unpacked beside it under a temporary
    name, its card validated and every hash checked, then renamed into place. `others`: the other
    folders searched, where the same id is refused. Returns (model id, its folder)."""
    archive, library = Path(archive), Path(library)
    library.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=library, prefix=".add.") as tmp:
        if archive.is_dir():
            model_id = archive.name
            shutil.copytree(archive, Path(tmp) / model_id, symlinks=True)
        else:
            try:
                with zipfile.ZipFile(archive) as z:
                    model_id, members = safe_members(z, str(archive))
                    for info in members:
                        z.extract(info, tmp)
            except (zipfile.BadZipFile, FileNotFoundError) as e:
                raise ConfigError(
                    f"{archive}: {e}; expected a MODEL.zip made by `jaxsyn models pack`"
                ) from None
        staged = Path(tmp) / model_id
        card = cards.read(staged)
        cards.check_files(staged, card)
        target = library / model_id
        clash = discover(
            [p for p in (others or []) if os.path.realpath(p) != os.path.realpath(library)]
        )
        number = model_id[:5]
        for other_id, where in clash.items():
            if other_id[:5] == number:
                raise ConfigError(
                    f"model {model_id} from {archive}: {where} already holds "
                    f"{'it' if other_id == model_id else other_id}; expected a new id"
                )
        for sub in library.iterdir() if library.is_dir() else []:
            if (
                sub.name[:6] == number + "_"
                and sub.name != model_id
                and (sub / cards.CARD).is_file()
            ):
                raise ConfigError(f"model {model_id}: {sub} has the same number; expected a new id")
        if target.exists() and not replace:
            raise ConfigError(f"{target}: already installed; expected a new id or --replace")
        old = Path(tmp) / ".replaced"
        if target.exists():
            os.replace(target, old)
        os.replace(staged, target)
    return model_id, target
