"""Each partition's slot holds a copy of the projection's generation pointer, which the live projector's commit
checks (a Redis Cluster cannot check a pointer in another slot). The copies follow the pointer: a copy that is
missing (evicted) is written again from the pointer by the next commit, and a pointer moved with no copy written
(a cluster's stepwise flip whose job stopped between the two) is followed by the live projector, which moves the copy
itself; neither loses or doubles an event."""
from __future__ import annotations

import redis

from projections import keys, layout
from projections.partitions import Partition
from projections.projector.runner import Runner
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections.helpers import append_market, config, head_for, in_thread, split_content
from tests.waiting import wait_until

P = "portfolio"


def test_the_copies_of_the_pointer_follow_it(redis_process: RedisProcess, store_process: StoreProcess) -> None:
    client = redis.Redis.from_url(redis_process.url)
    part = Partition(P, 0, 2)
    copy = keys.generation_pointer(part.tag)
    layout.record(client, P, 1, 2)
    append_market(store_process.uri, 400, bad_ratio=0.0)
    runner = Runner(config(P, redis_process.url, store_process.uri, partition=0, partitions=2, exit_when_caught_up=False))
    thread, errors = in_thread(runner)

    def at_head(generation: int) -> bool:
        return int(client.get(layout.space(part, generation).checkpoint) or 0) >= head_for(store_process.uri, P)

    try:
        wait_until(lambda: at_head(1), 30, what="the partition to catch up")
        assert client.get(copy) == b"1"  # written by its first commit, from the pointer (absent: generation 1)

        client.delete(copy)  # evicted
        append_market(store_process.uri, 100, start=400, bad_ratio=0.0)
        wait_until(lambda: at_head(1), 30, what="the partition to commit past a missing copy")
        assert client.get(copy) == b"1"

        # the pointer moved to generation 2 (split alike), its copy left saying 1: the projector follows the pointer
        layout.record(client, P, 2, 2)
        client.set(keys.generation_pointer(P), "2")
        append_market(store_process.uri, 100, start=500, bad_ratio=0.0)
        wait_until(lambda: at_head(2), 30, what="the projector to follow the pointer to generation 2")
        assert client.get(copy) == b"2"
        assert not errors
    finally:
        runner.stop()
        thread.join(10)
    fresh = redis.Redis.from_url(redis_process.url.rsplit("/", 1)[0] + "/9")
    fresh.flushdb()
    Runner(config(P, redis_process.url.rsplit("/", 1)[0] + "/9", store_process.uri, partition=0, partitions=2)).run()
    assert split_content(client, part, 2) == split_content(fresh, part) != {}
