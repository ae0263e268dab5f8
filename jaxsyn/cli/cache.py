"""JAX's persistent compilation cache for `jaxsyn` commands.

A command compiles the same programs every time it runs (a generator's trunk, its G^H chunks, a
training step); XLA's compiled executables are kept on disk and read back by the next run. The
cache lives in `$JAXSYN_CACHE_DIR`, else `$XDG_CACHE_HOME/jaxsyn/jax` (`~/.cache/jaxsyn/jax`);
`JAXSYN_CACHE_DIR=off` or `jaxsyn --no-compile-cache ...` turns it off. A cache directory the
caller already configured (`jax.config.jax_compilation_cache_dir`, e.g. the test suite's, or
`JAX_COMPILATION_CACHE_DIR`) is left as it is. Every compilation is kept (no minimum compile
time: a command's many small programs add up), up to MAX_BYTES, least recently used first out.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import jax

ENV = "JAXSYN_CACHE_DIR"
MAX_BYTES = 4 << 30  # 4 GiB


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxsyn" / "jax"


def configure(enabled: bool = True) -> str | None:
    """Point JAX's compilation cache at jaxsyn's folder (see the module docstring); returns the
    folder in use, or None when there is none."""
    if jax.config.jax_compilation_cache_dir:  # the caller's own: keep it
        return jax.config.jax_compilation_cache_dir
    setting = os.environ.get(ENV, "").strip()
    if not enabled or setting.lower() == "off":
        return None
    path = Path(setting).expanduser() if setting else default_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a read-only home must not stop a command
        print(f"jaxsyn: compilation cache off ({path}: {e.strerror})", file=sys.stderr)
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return str(path)
