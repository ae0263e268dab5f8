"""A non-editable install carries the whole package: the wheel built from a copy of the source
holds every subpackage (jaxsyn/ and kernels/ as jaxsyn.kernels), every data file and the entry
point, and the unpacked wheel imports and runs `jaxsyn --help` from another folder."""

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SOURCES = ("pyproject.toml", "setup.py", "README.md", "jaxsyn", "kernels")
IGNORE = shutil.ignore_patterns("__pycache__", "*.so", "*.pyc")


def _packages() -> dict[str, Path]:
    """Every folder of Python files in the source tree, as the package it installs as."""
    found = {}
    for init in [*ROOT.glob("jaxsyn/**/__init__.py"), *ROOT.glob("kernels/**/__init__.py")]:
        parts = init.parent.relative_to(ROOT).parts
        found[".".join(("jaxsyn", *parts) if parts[0] == "kernels" else parts)] = init.parent
    return found


def _data_files() -> list[Path]:
    """Tracked non-Python files inside the packages (schemas, shipped models); not C++ sources."""
    out = subprocess.run(["git", "ls-files", "jaxsyn"], cwd=ROOT, capture_output=True, text=True)
    return [ROOT / f for f in out.stdout.split() if not f.endswith((".py", ".cc"))]


def _in_wheel(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return str(Path("jaxsyn", *rel.parts) if rel.parts[0] == "kernels" else rel)


def test_pyproject_lists_every_package():
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert sorted(listed) == sorted(_packages())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=IGNORE)
        else:
            shutil.copy2(ROOT / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    # no build isolation: the venv's setuptools (dev extra); the optional oneDNN extension is
    # skipped where its headers are absent, which does not change the Python contents
    env = {**os.environ, "PIP_NO_INDEX": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", dist,
         src],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (whl,) = dist.glob("jaxsyn-*.whl")
    return whl


def test_wheel_holds_every_module_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = [_in_wheel(p) for d in _packages().values() for p in d.glob("*.py")]
    expected += [_in_wheel(p) for p in _data_files()]
    missing = sorted(set(expected) - names)
    assert not missing, f"not in {wheel.name}: {missing}"
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "jaxsyn = jaxsyn.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_unpacked_wheel_runs_from_another_folder(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import importlib, pkgutil, jaxsyn\n"
        "print(jaxsyn.__file__)\n"
        "for m in pkgutil.walk_packages(jaxsyn.__path__, 'jaxsyn.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site), "JAX_PLATFORMS": "cpu"}
    run = dict(cwd=elsewhere, capture_output=True, text=True, env=env)
    proc = subprocess.run([sys.executable, "-c", code], **run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().startswith(str(site)), proc.stdout[:500]  # not the source tree
    proc = subprocess.run([sys.executable, "-m", "jaxsyn.cli", "evaluate", "--help"], **run)
    assert proc.returncode == 0 and "usage: jaxsyn evaluate" in proc.stdout, proc.stderr[-3000:]
