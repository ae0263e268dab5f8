"""Test session set-up: 8 simulated CPU devices and JAX's persistent compilation cache.

Both must be configured before any computation runs, so they live here, at import time.
"""

import os
from pathlib import Path

import jax
import pytest

jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_num_cpu_devices", 8)
_cache = Path(os.environ.get("JAXSYN_TEST_CACHE", Path(__file__).parent.parent / ".jax_cache"))
jax.config.update("jax_compilation_cache_dir", str(_cache))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

from tests.helpers import cohort  # noqa: E402, F401  (fixture for every test folder)

# Modules that share a session-scoped fixture run on one worker, so it is built once:
# tests/data/tabular/conftest.py's fitted transformer, tests/train/conftest.py's toy-GAN run.
SHARED = {"tests/data/tabular/": "tabular"} | {
    f"tests/train/{name}": "toygan"
    for name in ("test_train_checkpoint.py", "test_train_loop.py", "test_train_multiprocess.py")
}
ROOT = Path(__file__).parent.parent


@pytest.hookimpl(tryfirst=True)  # before xdist tags node ids with their group
def pytest_collection_modifyitems(config, items):
    """Under `--dist loadgroup` (make test) a module's tests share one worker, as with loadfile, so
    its module-scoped fixtures (a trained run, a compiled step) are built once; modules that share
    a session fixture (SHARED) or a compiled step (an explicit `xdist_group` mark, e.g. "hagan")
    share a named group. Groups go to whichever worker is free."""
    for item in items:
        if not any(item.iter_markers("xdist_group")):
            path = item.path.relative_to(ROOT).as_posix()
            group = next((g for prefix, g in SHARED.items() if path.startswith(prefix)), path)
            item.add_marker(pytest.mark.xdist_group(group))
