"""Two processes on loopback, 4 CPU devices each, train what one process with 8 devices trains.

Each process joins through the environment (`JAX_COORDINATOR_ADDRESS=127.0.0.1:<port>`,
`JAX_NUM_PROCESSES=2`, `JAX_PROCESS_ID=i`), reads its own Grain shard and writes its part of the
shared checkpoints; CPU collectives across processes go through Gloo (jax's default on CPU).
Tolerance as in test_train_parallel (rtol = atol = 1e-5): the mesh is the same 8 devices, but the
cross-process all-reduce may add in another order than the in-process one.
"""

from __future__ import annotations

import jax

from jaxsyn.checkpoint import Checkpointer
from jaxsyn.train import loop, parallel, toygan
from tests.train.helpers import (
    TINY,
    N,
    assert_trees_close,
    free_port,
    host,
    run_workers,
    worker,
    worker_env,
)

TOL = dict(rtol=1e-5, atol=1e-5)


def test_two_processes_match_one(tmp_path, reference_run):
    out = tmp_path / "run"
    address = f"127.0.0.1:{free_port()}"
    cmds, envs = [], []
    for i in range(2):
        cmds.append(worker(out, steps=2 * N, devices=4, checkpoint_every=N))
        envs.append(
            worker_env(
                **{
                    parallel.COORDINATOR_ENV: address,
                    parallel.NUM_PROCESSES_ENV: "2",
                    parallel.PROCESS_ID_ENV: str(i),
                }
            )
        )
    results = run_workers(cmds, envs, timeout=240)
    for i, (code, output) in enumerate(results):
        assert code == 0, f"process {i}:\n{output[-4000:]}"

    # Both processes saved their own data position into the shared checkpoint.
    data = out / "checkpoints" / str(2 * N) / "data"
    assert sorted(p.name for p in data.glob("process_*.json")) == [
        "process_0-of-2.json",
        "process_1-of-2.json",
    ]
    # Read back here, by one process with 8 devices: the state only (the data position belongs
    # to a 2-process topology).
    with Checkpointer(out / "checkpoints", TINY) as ckpt:
        state = ckpt.restore(toygan.abstract_state(TINY, parallel.make_mesh()))
    assert len(jax.devices()) == 8
    assert_trees_close(host(state), reference_run.state, **TOL)
    metrics = loop.read_metrics(out / "metrics.jsonl")  # process 0 alone writes it
    assert [row["step"] for row in metrics] == list(range(1, 2 * N + 1))
    for got, want in zip(metrics, reference_run.metrics, strict=True):
        assert_trees_close(
            {k: v for k, v in got.items() if v is not None},
            {k: v for k, v in want.items() if v is not None},
            **TOL,
        )
