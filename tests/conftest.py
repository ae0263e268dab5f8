"""Test session set-up: 8 simulated CPU devices and JAX's persistent compilation cache.

Both must be configured before any computation runs, so they live here, at import time.
"""

import os
from pathlib import Path

import jax

jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_num_cpu_devices", 8)
_cache = Path(os.environ.get("JAXSYN_TEST_CACHE", Path(__file__).parent.parent / ".jax_cache"))
jax.config.update("jax_compilation_cache_dir", str(_cache))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

from tests.helpers import cohort  # noqa: E402, F401  (fixture for every test folder)
