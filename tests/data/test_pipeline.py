import json

import pytest

from r1jax.data import pipeline


def _indices(dataset):
    return [index for index, _ in dataset]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("num_records", [10, 11])
def test_process_shards_are_disjoint_and_cover_each_epoch(shuffle, num_records):
    source = [f"r{i}" for i in range(num_records)]
    shards = [
        list(
            pipeline.record_dataset(
                source, seed=7, shuffle=shuffle, num_epochs=2, process_index=p, process_count=2
            )
        )
        for p in range(2)
    ]
    assert all(record == f"r{index}" for shard in shards for index, record in shard)
    # Position k of the global order goes to process k % 2: rebuild the global order.
    merged = [None] * (2 * num_records)
    for p, shard in enumerate(shards):
        merged[p::2] = [index for index, _ in shard]
    for epoch in range(2):
        assert sorted(merged[epoch * num_records : (epoch + 1) * num_records]) == list(
            range(num_records)
        )
    first_epoch = [set(merged[p:num_records:2]) for p in range(2)]
    assert not first_epoch[0] & first_epoch[1]


def test_drop_remainder_gives_equal_shards():
    shards = [
        _indices(
            pipeline.record_dataset(
                list(range(11)),
                seed=0,
                num_epochs=1,
                process_index=p,
                process_count=3,
                drop_remainder=True,
            )
        )
        for p in range(3)
    ]
    assert [len(s) for s in shards] == [3, 3, 3]
    assert len(set().union(*shards)) == 9


def test_shuffle_is_seeded_and_reshuffles_each_epoch():
    def order(seed):
        ds = pipeline.record_dataset(
            list(range(20)), seed=seed, num_epochs=2, process_index=0, process_count=1
        )
        return _indices(ds)

    assert order(1) == order(1)
    assert order(1) != order(2)
    assert order(1)[:20] != order(1)[20:]
    assert sorted(order(1)[20:]) == list(range(20))


def test_endless_source_is_not_repeated_and_indexes_far():
    ds = pipeline.record_dataset(
        range(5), shuffle=False, num_epochs=None, process_index=0, process_count=1
    )
    assert ds[10**12][0] == (10**12) % 5


def test_process_index_is_checked():
    with pytest.raises(ValueError, match="process_index 2 not in"):
        pipeline.record_dataset([1], process_index=2, process_count=2)


def test_resumable_batches_resume_exactly_after_json_round_trip():
    ds = pipeline.record_dataset(
        list(range(30)), seed=3, num_epochs=3, process_index=1, process_count=2
    )

    def take(record, counts):
        if record[0] % 4 == 0:
            counts["dropped"] += 1
            return None
        return record

    def make():
        return pipeline.ResumableBatches(ds, batch_size=4, take=take, make_batch=_indices)

    full = make()
    reference = list(full)
    iterator = make()
    for _ in range(3):
        next(iterator)
    state = json.loads(json.dumps(iterator.get_state()))
    resumed = make()
    resumed.set_state(state)
    assert list(resumed) == reference[3:]
    assert resumed.counts == full.counts and full.counts["dropped"] > 0


def test_last_short_batch_is_dropped_or_kept():
    ds = pipeline.record_dataset(
        list(range(5)), shuffle=False, num_epochs=1, process_index=0, process_count=1
    )

    def batches(drop):
        return list(
            pipeline.ResumableBatches(
                ds, batch_size=2, take=lambda r, c: r, make_batch=_indices, drop_remainder=drop
            )
        )

    assert batches(True) == [[0, 1], [2, 3]]
    assert batches(False) == [[0, 1], [2, 3], [4]]
