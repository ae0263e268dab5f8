"""Shared by the tests in tests/train: the toy config, state comparisons, subprocess workers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

from jaxsyn.checkpoint import as_json
from jaxsyn.train import loop, toygan

# The config every toy test trains: the discriminator every step, the generator every second,
# so schedules are exercised by every resume and multi-device comparison too.
TINY = toygan.ToyTrainConfig.tiny(g_every=2)
N = 3  # steps before the save in the resume tests; the reference run makes 2N
ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("toy_worker.py")


def host(tree) -> dict[str, np.ndarray]:
    """{path: numpy array} of every leaf, typed PRNG keys as their raw data."""

    def to_numpy(x):
        if jax.numpy.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.asarray(jax.device_get(x))

    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path): to_numpy(leaf) for path, leaf in leaves}


def assert_trees_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for path in a:
        np.testing.assert_array_equal(a[path], b[path], err_msg=path)


def assert_trees_close(a: dict, b: dict, *, rtol: float, atol: float) -> None:
    assert a.keys() == b.keys()
    for path in a:
        np.testing.assert_allclose(a[path], b[path], rtol=rtol, atol=atol, err_msg=path)


class BatchRecorder:
    """A loop hook that keeps the data set indices of every batch, in step order."""

    def __init__(self):
        self.steps: list[int] = []
        self.indices: list[list[int]] = []

    def __call__(self, step, state, batch):
        self.steps.append(step)
        self.indices.append(np.asarray(batch["index"]).tolist())

    def hook(self) -> loop.Hook:
        return loop.Hook(every=1, fn=self)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(out: Path, *, steps: int, devices: int, checkpoint_every: int, **flags) -> list[str]:
    """The command line of a toy_worker process; `flags` become --kebab-case options."""
    cmd = [sys.executable, str(WORKER), "--config", json.dumps(as_json(TINY)), "--out", str(out)]
    cmd += ["--steps", str(steps), "--devices", str(devices)]
    cmd += ["--checkpoint-every", str(checkpoint_every)]
    cache = jax.config.jax_compilation_cache_dir
    if cache:  # share the session's compiled steps: a worker then compiles nothing
        cmd += ["--cache", str(cache)]
    for name, value in flags.items():
        flag = "--" + name.replace("_", "-")
        cmd += [flag] if value is True else [flag, str(value)]
    return cmd


def worker_env(**extra: str) -> dict[str, str]:
    """The session's environment without its JAX/XLA settings (a worker sets its own devices),
    except the code generation level tests/conftest.py sets: a worker must compute the session's
    bits (levels differ in the last bit of float32 results); `jaxsyn` workers share the session's
    compilation cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    level = [f for f in os.environ.get("XLA_FLAGS", "").split() if "optimization_level" in f]
    if level:
        env["XLA_FLAGS"] = " ".join(level)
    # a `jaxsyn` worker compiles into the session's cache, not the user's (jaxsyn.cli.cache)
    env["JAXSYN_CACHE_DIR"] = jax.config.jax_compilation_cache_dir or "off"
    env.update(extra)
    return env


def run_workers(cmds: list[list[str]], envs: list[dict], timeout: float) -> list:
    """Start all, wait for all; kill every one if any is late (a lone peer would wait forever)."""
    procs = [
        subprocess.Popen(c, cwd=ROOT, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for c, e in zip(cmds, envs, strict=True)
    ]
    try:
        outs = [p.communicate(timeout=timeout)[0].decode(errors="replace") for p in procs]
    except subprocess.TimeoutExpired as late:
        for p in procs:
            p.kill()
        outs = [p.communicate()[0].decode(errors="replace") for p in procs]
        logs = "\n----\n".join(o[-3000:] for o in outs)
        raise AssertionError(f"workers timed out:\n{logs}") from late
    return [(p.returncode, out) for p, out in zip(procs, outs, strict=True)]
