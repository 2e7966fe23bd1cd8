"""The chunk size: the request's, or one the engine learns from each chunk's time."""

from django.test import override_settings

from bulkops.sizing import ChunkSizer


def test_a_given_batch_size_is_every_chunk_s_size_however_long_chunks_take():
    sizer = ChunkSizer(7)
    for seconds in (0.001, 5.0, 0.001):
        sizer.learn(7, seconds)
        assert sizer.limit == 7


@override_settings(BULKOPS_FIRST_CHUNK_SIZE=100, BULKOPS_CHUNK_LOCK_MS=250, BULKOPS_MAX_BATCH_SIZE=1000)
def test_fast_chunks_grow_at_most_twofold_up_to_the_largest_batch_size():
    sizer = ChunkSizer()
    sizes = [sizer.limit]
    for _ in range(5):
        sizer.learn(sizer.limit, 0.001)  # far under 250 ms
        sizes.append(sizer.limit)
    assert sizes == [100, 200, 400, 800, 1000, 1000]


@override_settings(BULKOPS_FIRST_CHUNK_SIZE=100, BULKOPS_CHUNK_LOCK_MS=250, BULKOPS_MAX_BATCH_SIZE=1000)
def test_a_chunk_over_the_lock_time_shrinks_the_next_one_to_what_fits():
    sizer = ChunkSizer()
    sizer.learn(100, 0.125)  # 1.25 ms an item: 200 fit in 250 ms
    assert sizer.limit == 200
    sizer.learn(200, 1.0)  # 5 ms an item now (contention): 50 fit
    assert sizer.limit == 50
    sizer.learn(50, 100.0)  # pathological: never below one item
    assert sizer.limit == 1


@override_settings(BULKOPS_FIRST_CHUNK_SIZE=100)
def test_a_short_chunk_the_end_of_a_range_teaches_nothing():
    sizer = ChunkSizer()
    sizer.learn(3, 10.0)
    assert sizer.limit == 100
