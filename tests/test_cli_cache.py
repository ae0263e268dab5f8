"""`jaxsyn`'s persistent compilation cache (jaxsyn.cli.cache): where it goes, that a caller's own
cache is kept, that it can be turned off, and (slow) that a second run reads every program back."""

import subprocess
import sys

import jax
import numpy as np
import pandas as pd
import pytest

from jaxsyn.cli import cache
from tests.train.helpers import ROOT, worker_env

SETTINGS = (
    "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs",
    "jax_persistent_cache_min_entry_size_bytes",
    "jax_compilation_cache_max_size",
)


@pytest.fixture
def no_cache_configured(monkeypatch):
    """The session's cache settings (tests/conftest.py sets a folder) emptied, then restored."""
    saved = {name: getattr(jax.config, name) for name in SETTINGS}
    jax.config.update("jax_compilation_cache_dir", None)
    monkeypatch.delenv(cache.ENV, raising=False)
    yield
    for name, value in saved.items():
        jax.config.update(name, value)


def test_the_callers_own_cache_is_kept(tmp_path, monkeypatch):
    mine = jax.config.jax_compilation_cache_dir
    assert mine  # tests/conftest.py configured one
    monkeypatch.setenv(cache.ENV, str(tmp_path / "elsewhere"))
    assert cache.configure() == mine
    assert jax.config.jax_compilation_cache_dir == mine
    assert not (tmp_path / "elsewhere").exists()


def test_folder_from_the_environment_or_the_user_cache(no_cache_configured, tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV, str(tmp_path / "c"))
    assert cache.configure() == str(tmp_path / "c")
    assert (tmp_path / "c").is_dir() and jax.config.jax_compilation_cache_dir == str(tmp_path / "c")
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0  # every program kept
    assert jax.config.jax_compilation_cache_max_size == cache.MAX_BYTES
    jax.config.update("jax_compilation_cache_dir", None)
    monkeypatch.delenv(cache.ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.configure() == str(tmp_path / "xdg" / "jaxsyn" / "jax")


@pytest.mark.parametrize("how", ["env", "flag"])
def test_it_can_be_turned_off(no_cache_configured, monkeypatch, how):
    if how == "env":
        monkeypatch.setenv(cache.ENV, "off")
    assert cache.configure(enabled=how != "flag") is None
    assert jax.config.jax_compilation_cache_dir is None


def test_an_unusable_folder_turns_it_off_with_a_line(
    no_cache_configured, tmp_path, monkeypatch, capsys
):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv(cache.ENV, str(tmp_path / "file" / "cache"))
    assert cache.configure() is None
    assert "compilation cache off" in capsys.readouterr().err
    assert jax.config.jax_compilation_cache_dir is None


@pytest.mark.slow  # two CTGAN trainings in fresh processes
def test_a_second_run_reads_every_program_back(tmp_path):
    rng = np.random.default_rng(0)
    pd.DataFrame(
        {"age": rng.normal(50, 10, 120).round(1), "sex": rng.choice(["F", "M"], 120)}
    ).to_csv(tmp_path / "t.csv", index=False)
    env = worker_env(**{cache.ENV: str(tmp_path / "cache")})
    entries = []
    for run in ("a", "b"):
        argv = [sys.executable, "-m", "jaxsyn.cli", "train", "ctgan", "--tiny", "--epochs", "1"]
        argv += [
            "--data",
            str(tmp_path / "t.csv"),
            "--discrete",
            "sex",
            "--out",
            str(tmp_path / run),
        ]
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        entries.append(sorted(p.name for p in (tmp_path / "cache").glob("*-cache")))
    assert entries[0]  # the first run wrote its programs
    assert entries[1] == entries[0]  # the second compiled nothing new: every program was a hit
