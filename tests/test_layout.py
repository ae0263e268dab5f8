"""The package's import graph follows shared/DESIGN.md: no two files import each other (no circle
of any length), and the layers point one way (cli above zoo/compat above eval/infer/train above
models above nn above kernels; models and data independent; eval never imports train)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for jaxsyn/ and kernels/ (installed as jaxsyn.kernels)."""
    mods = {}
    for path in [*ROOT.glob("jaxsyn/**/*.py"), *ROOT.glob("kernels/**/*.py")]:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        parts = ["jaxsyn", *parts] if parts[0] == "kernels" else parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def _imports(name: str, path: Path, mods: dict) -> set[str]:
    """The jaxsyn modules `name` imports anywhere in its file (function-level imports included:
    a lazy import is still a dependency). `from pkg import sub` depends on pkg.sub only."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            subs = {f"{base}.{a.name}" for a in node.names}
            found |= (subs & mods.keys()) or {base}
    return {m for m in found if m in mods and m != name}


def graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, mods) for name, path in mods.items()}


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the list of modules along it, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(m):
        state[m] = 1
        path.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                return [*path[path.index(n) :], n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = 2
        path.pop()
        return None

    for m in sorted(edges):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_circle():
    assert _cycle(graph()) is None, " -> ".join(_cycle(graph()))


def test_the_cycle_finder_finds_a_circle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle(edges) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "jaxsyn"


# layer -> the jaxsyn layers it must never import (DESIGN.md "Imports point one way")
FORBIDDEN = {
    "kernels": {"nn", "models", "data", "train", "infer", "eval", "zoo", "compat", "cli"},
    "nn": {"models", "data", "train", "infer", "eval", "zoo", "compat", "cli", "errors"},
    "models": {"data", "train", "infer", "eval", "zoo", "compat", "cli"},
    "data": {"models", "nn", "train", "infer", "eval", "zoo", "compat", "cli"},
    "train": {"eval", "zoo", "compat", "cli"},
    "infer": {"train", "eval", "zoo", "compat", "cli"},
    "eval": {"train", "zoo", "compat", "cli"},
    "zoo": {"cli"},
    "compat": {"cli", "zoo"},
}


def test_layers_point_one_way():
    wrong = [
        f"{m} imports {n}"
        for m, targets in graph().items()
        for n in targets
        if _layer(n) in FORBIDDEN.get(_layer(m), ())
    ]
    assert not wrong, wrong


def test_the_graph_sees_lazy_and_relative_imports(tmp_path):
    pkg = tmp_path / "jaxsyn"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from jaxsyn import b\n")
    (pkg / "b.py").write_text("from . import a\nimport jaxsyn.c\n")
    (pkg / "c.py").write_text("from jaxsyn.b import x\n")
    mods = {"jaxsyn": pkg / "__init__.py", **{f"jaxsyn.{m}": pkg / f"{m}.py" for m in "abc"}}
    assert _imports("jaxsyn.a", pkg / "a.py", mods) == {"jaxsyn.b"}
    assert _imports("jaxsyn.b", pkg / "b.py", mods) == {"jaxsyn.a", "jaxsyn.c"}
    assert _imports("jaxsyn.c", pkg / "c.py", mods) == {"jaxsyn.b"}


@pytest.mark.xdist_group("layout")
def test_xdist_groups_take_effect(request):
    """`make test` runs with --dist loadgroup: modules with a costly fixture share one worker only
    if xdist can tag their node ids (it cannot under pytest 9, which pyproject therefore excludes)."""
    if not getattr(request.config.option, "loadgroup", False):  # set on xdist workers
        pytest.skip("not running under pytest-xdist --dist loadgroup")
    assert request.node.nodeid.endswith("@layout"), request.node.nodeid
