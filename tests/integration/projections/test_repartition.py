"""A rebuild into another partition count, under live members and traffic: the new generation is split as asked,
verified user by user against the live one, flipped; the members move to the new partitions by themselves; every
partition equals a fresh projection split alike, key for key; a rollback goes back to the old count the same way."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import redis

from projections import layout
from projections.keys import KeySpace
from projections.maintenance.control import Unattended
from projections.maintenance.generations import live_generation, switch_to
from projections.maintenance.retention import settle_flip
from projections.partitions import Partition, partitions_of
from projections.projector.runner import Runner
from projections.queries import Queries
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections.helpers import append_market, config, generation_content, head_for
from tests.integration.projections.test_generations import Appender
from tests.integration.projections.test_partitioned import member_processes
from tests.waiting import wait_until

P = "portfolio"


def content(client: redis.Redis, generation: int, part: Partition) -> dict[str, Any]:
    found = generation_content(client, generation, part.tag)
    found.pop("checkpoint", None)
    return found


def checkpoint(client: redis.Redis, generation: int, part: Partition) -> int:
    return int(client.get(layout.space(part, generation).checkpoint) or 0)


def run_by_members(client: redis.Redis, generation: int, count: int, uri: str) -> None:
    """Wait until the members own the ``count`` partitions of ``generation`` and each stands at the head."""
    wanted = partitions_of(P, count)

    def owned() -> bool:
        rows = [r for r in Queries(client).shards().partitions if r.partition.projection == P]
        return [r.partition for r in rows] == wanted and all(r.owner in ("a", "b") for r in rows)

    wait_until(owned, 30, what=f"the members to own the {count} partition(s) of generation {generation}")
    wait_until(lambda: all(checkpoint(client, generation, p) >= head_for(uri, P) for p in wanted), 60,
               what=f"the {count} partition(s) of generation {generation} to catch up")


def equal_to_fresh(client: redis.Redis, generation: int, count: int, redis_url: str, uri: str) -> None:
    fresh_url = redis_url.rsplit("/", 1)[0] + "/9"
    fresh = redis.Redis.from_url(fresh_url)
    fresh.flushdb()
    for part in partitions_of(P, count):
        Runner(config(P, fresh_url, uri, partition=part.index, partitions=part.count)).run()
    for part in partitions_of(P, count):
        assert content(client, generation, part) == content(fresh, 1, part), part.label
        assert content(client, generation, part), part.label  # not two empty partitions found equal


def test_a_rebuild_into_another_partition_count_moves_the_members_and_equals_a_fresh_projection(
        tmp_path: Path, redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 1200, bad_ratio=0.01)
    client = redis.Redis.from_url(redis_process.url)
    assert layout.record(client, P, 1, 1) == 1  # the live generation: one partition
    members = member_processes(tmp_path, redis_process, store_process, [P])
    for member in members:
        member.start()
    base = config(P, redis_process.url, store_process.uri, exit_when_caught_up=False)
    traffic = Appender(store_process.uri, 100)
    try:
        run_by_members(client, 1, 1, store_process.uri)
        traffic.start()
        done = switch_to(client, base, 2, Unattended(), partitions=4)  # 1 → 4, under traffic
        assert (done.from_generation, done.to_generation, done.difference_count) == (1, 2, 0)
        assert done.compared >= 20  # users compared, each looked up in its partition of generation 2
        assert live_generation(client, P) == 2 and layout.recorded(client, P, 2) == 4
        run_by_members(client, 2, 4, store_process.uri)
        traffic.halt.set()
        traffic.join(10)
        run_by_members(client, 2, 4, store_process.uri)
        equal_to_fresh(client, 2, 4, redis_process.url, store_process.uri)

        assert settle_flip(client, P, 1, Unattended()) == []  # generation 1 (one partition) kept for a rollback
        traffic = Appender(store_process.uri, 100)
        traffic.start()
        back = switch_to(client, base, 1, Unattended(), verify=False)  # the rollback: 4 → 1
        assert (back.from_generation, back.to_generation) == (2, 1)
        run_by_members(client, 1, 1, store_process.uri)
        traffic.halt.set()
        traffic.join(10)
        run_by_members(client, 1, 1, store_process.uri)
    finally:
        traffic.halt.set()
        for member in members:
            member.stop()
    assert not client.exists(KeySpace(P, 1, "portfolio.p00").checkpoint)  # generation 1 was never split
    equal_to_fresh(client, 1, 1, redis_process.url, store_process.uri)
