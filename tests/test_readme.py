"""The README runs as written: its blocks, top to bottom, in one empty folder (issue 22 item 4).

Which blocks: ```bash and ```python ones. ```text blocks are usage synopses and templates (a
cluster's addresses) and are not run; `make` lines (Quick start) are what CI itself runs.

Fast checks (default suite): every `jaxsyn` line parses as the command parses it, its overrides
name real config fields, every path a line reads was written by an earlier line, no line writes
over an earlier line's output unless it resumes that run, a volume model is trained at its store's
size. Slow: the Python blocks that need nothing from the shell lines run on their own, printing
what their comments say (moved out of the default suite when `make test` reached 10 minutes).

The slow check runs every block in order at tiny sizes. `tiny()` rewrites each shell line (and
nothing else): every size (`--size`, `--config.size`, `--config.model.image.size`) becomes 32, a
feature-map cap 8, `--steps N` becomes ceil(N / 2000) capped at 4 (a resumed run still grows),
`--epochs` 1, `--n` and `phantom:KIND:N` at most 16, and `train` gets `--tiny`.
"""

import dataclasses
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path, PurePosixPath

import jax
import pytest

from jaxsyn.cli import build_parser
from jaxsyn.cli.app import split_argv
from jaxsyn.cli.common import apply_overrides

README = Path(__file__).parent.parent / "README.md"
INPUTS = ("images", "table", "data", "run", "real", "synthetic", "holdout", "test")


@dataclasses.dataclass(frozen=True)
class Block:
    language: str  # bash or python
    text: str
    line: int  # where it starts in README.md


def blocks() -> list[Block]:
    text = README.read_text()
    found = []
    for m in re.finditer(r"^```(bash|python)\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE):
        found.append(Block(m.group(1), m.group(2), text[: m.start()].count("\n") + 1))
    return found


def commands(block: Block) -> list[list[str]]:
    """The argv of every `jaxsyn` call in a shell block (continuations joined, comments, `make`
    lines and environment assignments dropped; a `for` loop's body counts once)."""
    found = []
    for line in block.text.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split, lexer.commenters = True, "#"
        tokens = list(lexer)
        while "jaxsyn" in tokens:
            tokens = tokens[tokens.index("jaxsyn") + 1 :]
            end = next((i for i, t in enumerate(tokens) if t in (";", "&", "&&", "|")), None)
            found.append(tokens[:end])
    return found


def shell_lines() -> list[tuple[Block, list[str]]]:
    return [(b, argv) for b in blocks() if b.language == "bash" for argv in commands(b)]


def default_config(family: str):
    """The config `jaxsyn train FAMILY` starts from (before overrides)."""
    from jaxsyn.train import acgan, ctgan, duiit, gan2d, hagan, mmcgan, toygan

    return {
        "hagan": hagan.HAGANTrainConfig,
        "mmcgan": mmcgan.MMCGANTrainConfig,
        "acgan": acgan.ACGANTrainConfig,
        "ctgan": ctgan.CTGANTrainConfig,
        "toygan": toygan.ToyTrainConfig,
        "proggan": lambda: gan2d.default_config("proggan"),
        "cpdgan": lambda: gan2d.default_config("cpdgan"),
        "duiit": lambda: duiit.setting_defaults("joint"),
    }[family]()


def volume_size(family: str, config) -> int | None:
    return {"hagan": lambda: config.model.size, "mmcgan": lambda: config.model.image.size}.get(
        family, lambda: None
    )()


def test_readme_has_what_the_checks_read():
    found = blocks()
    assert sum(b.language == "bash" for b in found) >= 5 and len(shell_lines()) >= 20
    assert sum(b.language == "python" for b in found) >= 5


def test_readme_commands_parse_and_follow_each_other():
    made: dict[str, tuple[str, list[str]]] = {}  # --out -> (verb, argv) of the line that wrote it
    store_size: dict[str, int] = {}  # ingest's --out -> its --size
    problems = []
    for block, argv in shell_lines():
        where = f"README.md block at line {block.line}: jaxsyn {shlex.join(argv)}"
        _, overrides, rest = split_argv(argv)
        try:
            args = build_parser().parse_args(rest)
        except SystemExit:
            problems.append(f"{where}: the parser refuses it")
            continue
        if overrides and args.verb != "train":
            problems.append(f"{where}: --config overrides are for train only")
        size = None
        if args.verb == "train":
            config = apply_overrides(default_config(args.family), overrides)
            size = volume_size(args.family, config)
        for flag in INPUTS:
            value = getattr(args, flag, None)
            if value is None or str(value).startswith("phantom:"):
                continue
            path = PurePosixPath(str(value))
            if not any(str(p) in made for p in (path, *path.parents)):
                problems.append(f"{where}: --{flag} {value} is made by no earlier line")
            if flag == "data" and size is not None and store_size.get(str(path), size) != size:
                problems.append(f"{where}: model size {size}, store {store_size[str(path)]}")
        if getattr(args, "out", None) is None:  # a line that writes nothing (models list, ...)
            continue
        out = str(args.out)
        if out in made and not (args.verb == "train" and args.resume):
            problems.append(f"{where}: --out {out} was written by `{made[out][0]}` before")
        made[out] = (args.verb, argv)
        if args.verb == "ingest":
            store_size[out] = args.size
    assert not problems, "\n".join(problems)


@pytest.mark.slow  # 40 s from a cold cache; test_readme_runs_in_order runs every block too
def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    """The Python blocks that read nothing a shell line writes, on their own."""
    outs = {str(getattr(build_parser().parse_args(split_argv(a)[2]), "out", "")) for _, a in
            shell_lines()}  # fmt: skip
    standalone = [
        b.text
        for b in blocks()
        if b.language == "python"
        and not any(s in outs or s.split("/")[0] in outs for s in re.findall(r'"([^"]+)"', b.text))
    ]
    assert len(standalone) >= 4
    monkeypatch.chdir(tmp_path)
    for code in standalone:
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "(32, 32, 32) (12.5, 12.5, 12.5)" in out
    assert "'slab': (2, 4, 32, 32, 1)" in out
    assert "(2, 32, 32, 32, 1) (2, 8, 8, 8, 1)" in out  # the HA-GAN example
    assert "100 {2.0} True" in out  # the CTGAN example: exact and range conditions


def tiny(text: str) -> str:
    """A shell block at test sizes (see the module docstring)."""
    sizes = r"(--size[ =]|--config\.size[ =]|--config\.model\.image\.size[ =])\d+"
    text = re.sub(sizes, r"\g<1>32", text)
    text = re.sub(r"(--config\.(?:model\.)?fmap_max[ =])\d+", r"\g<1>8", text)
    steps = lambda m: f"--steps {min(4, math.ceil(int(m.group(1)) / 2000))}"  # noqa: E731
    text = re.sub(r"--steps[ =](\d+)", steps, text)
    text = re.sub(r"--epochs[ =]\d+", "--epochs 1", text)
    text = re.sub(r"--n[ =](\d+)", lambda m: f"--n {min(16, int(m.group(1)))}", text)
    text = re.sub(r"(phantom:[a-z-]+:)(\d+)", lambda m: f"{m[1]}{min(16, int(m[2]))}", text)
    text = re.sub(r"^make .*$", "", text, flags=re.MULTILINE)
    return re.sub(r"\bjaxsyn train (\w+)", r"jaxsyn train \1 --tiny", text)


def test_tiny_rewrites_sizes_and_lengths():
    line = "jaxsyn train hagan --data store --steps 80000 --config.size 128 --n 500 --epochs 300"
    assert tiny(line) == (
        "jaxsyn train hagan --tiny --data store --steps 4 --config.size 32 --n 16 --epochs 1"
    )
    assert tiny("--steps 2000 --steps 4000 phantom:cxr:2000 --config.model.fmap_max=64") == (
        "--steps 1 --steps 2 phantom:cxr:16 --config.model.fmap_max=8"
    )


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_readme_runs_in_order(tmp_path, monkeypatch):
    """Every block, in order, in one folder, at tiny sizes (shell lines through bash, so they run
    as a user's shell runs them)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["JAX_COMPILATION_CACHE_DIR"] = str(jax.config.jax_compilation_cache_dir)
    monkeypatch.chdir(tmp_path)
    for block in blocks():
        if block.language == "python":
            exec(compile(block.text, str(README), "exec"), {"__name__": "readme"})
            continue
        script = "set -euo pipefail\n" + tiny(block.text)
        proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"block at README.md:{block.line}\n{proc.stderr[-3000:]}"
    for made in ("report/index.html", "strip.png", "mm-report/index.html", "generated/labels.csv"):
        assert (tmp_path / made).is_file(), made
    assert (tmp_path / "runs/toy2/checkpoints").is_dir()  # the two-process run (its `wait` is 0)
