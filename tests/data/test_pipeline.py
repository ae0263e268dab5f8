import numpy as np
import pytest

from jaxsyn.data.pipeline import PipelineConfig, make_dataset
from jaxsyn.data.store import VolumeStore, ingest
from jaxsyn.data.volumes import window
from jaxsyn.errors import ConfigError
from tests.helpers import coded_volume


@pytest.fixture
def store(cohort, tmp_path):
    images, table = cohort
    return VolumeStore(ingest(images, tmp_path / "s", table=table, size=32, progress=False))


def take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_examples_hold_the_windowed_store_contents(store):
    ds = make_dataset(store, PipelineConfig(batch_size=2, seed=3, conditions=("bmi_class",)))
    for batch in take(iter(ds), 4):
        assert batch["low"].shape == (2, 8, 8, 8, 1) and batch["low"].dtype == np.float32
        assert batch["slab"].shape == (2, 4, 32, 32, 1)
        for b in range(2):
            i, start = int(batch["record"][b]), int(batch["slab_index"][b])
            assert 0 <= start <= 28  # 7S/8
            full = window(coded_volume(i, 32))
            np.testing.assert_allclose(batch["slab"][b, ..., 0], full[start : start + 4], rtol=1e-6)
            np.testing.assert_allclose(batch["low"][b, ..., 0], full[::4, ::4, ::4], rtol=1e-6)
            assert batch["conditions"][b, 0] == i  # bmi_class of P{i} is i


def test_order_and_slabs_follow_the_seed(store):
    def run(seed):
        batches = take(iter(make_dataset(store, PipelineConfig(batch_size=2, seed=seed))), 6)
        return np.stack([np.stack([b["record"], b["slab_index"]]) for b in batches])

    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


def test_every_epoch_visits_each_volume_once_in_a_new_order(store):
    ds = make_dataset(store, PipelineConfig(batch_size=4, seed=0, num_epochs=3))
    epochs = [b["record"] for b in iter(ds)]
    assert len(epochs) == 3
    for records in epochs:
        assert sorted(records) == [0, 1, 2, 3]
    assert len({tuple(r) for r in epochs}) > 1


def test_iterator_state_resumes_exactly(store):
    config = PipelineConfig(batch_size=2, seed=5)
    straight = take(iter(make_dataset(store, config)), 7)
    first = iter(make_dataset(store, config))
    take(first, 3)
    state = first.get_state()
    resumed = iter(make_dataset(store, config))
    resumed.set_state(state)
    for a, b in zip(straight[3:], take(resumed, 4), strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_process_shards_split_the_global_batch(store):
    whole = take(iter(make_dataset(store, PipelineConfig(batch_size=4, seed=2))), 3)
    shards = [
        take(
            iter(
                make_dataset(
                    store, PipelineConfig(batch_size=2, seed=2), shard_index=k, shard_count=2
                )
            ),
            3,
        )
        for k in range(2)
    ]
    for step, batch in enumerate(whole):
        for key in batch:
            stacked = np.concatenate([shards[k][step][key] for k in range(2)])
            np.testing.assert_array_equal(stacked, batch[key])


def test_bad_pipeline_arguments(store):
    with pytest.raises(ConfigError, match="batch_size is 0"):
        PipelineConfig(batch_size=0)
    with pytest.raises(ConfigError, match="shard_index 2"):
        make_dataset(store, PipelineConfig(), shard_index=2, shard_count=2)


def test_aligned_slabs_and_whole_volumes(store):
    config = PipelineConfig(batch_size=2, seed=1, slab_step=4, whole_volume=True)
    for batch in take(iter(make_dataset(store, config)), 6):
        assert np.all(batch["slab_index"] % 4 == 0) and np.all(batch["slab_index"] <= 28)
        for b in range(2):
            full = window(coded_volume(int(batch["record"][b]), 32))
            np.testing.assert_allclose(batch["volume"][b, ..., 0], full, rtol=1e-6)
            start = int(batch["slab_index"][b])
            np.testing.assert_array_equal(batch["slab"][b], batch["volume"][b, start : start + 4])
