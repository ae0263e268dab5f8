"""`jaxsyn.infer.hosts.each_device`: a process's share spread over its local devices, one thread
per device (issue 21.6); the writers' byte-for-byte checks are in test_cli_hagan.py and
test_cli_mmcgan.py."""

import threading

import jax
import jax.numpy as jnp
import pytest

from jaxsyn.infer import hosts


def test_items_run_on_their_device_in_order():
    devices = jax.devices()[:3]
    seen, lock = [], threading.Lock()

    def work(item, device):
        x = jnp.full((2,), item)  # made under jax.default_device(device)
        with lock:
            seen.append((item, device, x.devices(), threading.current_thread().name))

    done = []
    hosts.each_device(work, list(range(7)), devices, done=lambda: done.append(1))
    assert len(done) == 7 and sorted(s[0] for s in seen) == list(range(7))
    for item, device, placed, _ in seen:
        assert device == devices[item % 3] and placed == {device}
    for d in devices:  # one thread per device, its items in order
        mine = [s for s in seen if s[1] == d]
        assert [s[0] for s in mine] == list(range(devices.index(d), 7, 3))
        assert len({s[3] for s in mine}) == 1
    assert len({s[3] for s in seen}) == 3


def test_the_first_error_stops_the_rest_and_is_raised():
    ran = []

    def work(item, device):
        ran.append(item)
        if item == 1:
            raise ValueError("patient 1 failed")

    with pytest.raises(ValueError, match="patient 1 failed"):
        hosts.each_device(work, list(range(40)), jax.devices()[:2])
    assert len(ran) < 40
    with pytest.raises(ValueError, match="patient 1 failed"):  # one device: inline
        hosts.each_device(work, [0, 1, 2], jax.devices()[:1])


def test_generation_devices():
    # XLA:CPU's devices share the host's cores: one, unless asked
    assert hosts.generation_devices() == jax.local_devices()[:1]
    assert hosts.generation_devices(jax.devices()[2:4]) == jax.devices()[2:4]
    with pytest.raises(ValueError, match="devices is empty"):
        hosts.generation_devices([])
