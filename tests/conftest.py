"""Test session set-up: 8 simulated CPU devices, JAX's persistent compilation cache, and XLA's
CPU backend at LLVM optimisation level 0.

All must be configured before any computation runs, so they live here, at import time.

Level 0: the tests' arrays are tiny, so compiling is most of their cost; unoptimised machine code
compiles about a third faster and, on these sizes, runs faster overall (tests/eval/
test_classifiers.py and tests/test_readme.py: 95 s -> 56 s from a cold cache; with the other
changes of the test-suite issue, pytest went 738 s -> 369 s, benchmarks/RESULTS.md). Float32 results can differ from the default level's in
the last bit (other vectorisation and FMA contraction), so bitwise checks compare runs made at the
same level: subprocess workers get the flag too (tests/train/helpers.worker_env).
JAXSYN_TEST_XLA_OPT=1 keeps XLA's default; benchmarks never use this.
"""

import os
from pathlib import Path

if os.environ.get("JAXSYN_TEST_XLA_OPT") != "1":
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=0".strip()

import jax  # noqa: E402  (after XLA_FLAGS)
import pytest  # noqa: E402

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
