"""The partitioned projector on a Sentinel-managed Redis (``REDIS_URL=redis+sentinel://…``), through a failover:
the primary killed -9 mid-stream under a live market, the Sentinels promote its replica, the members' next commits
reach the new primary; what the old primary acknowledged and the replica never got shows as checkpoints gone back
and is projected again. At the end every partition equals a fresh projection of the same store, key for key."""
from __future__ import annotations

from pathlib import Path

import redis

from projections import layout
from projections.connection import connect
from projections.partitions import Partition, partitions_of
from projections.projector.runner import Runner
from projections.readmodels import PROJECTIONS
from projections.redis_nodes import PRIMARY, REPLICA, redis_nodes
from tests.fixtures.projections import MemberProcess, RedisProcess, StoreProcess
from tests.fixtures.topologies import SentinelSet
from tests.integration.projections.helpers import append_market, config, generation_content, head_for
from tests.integration.projections.test_generations import Appender
from tests.waiting import wait_until

COUNT = 4


def every() -> list[Partition]:
    return [p for name in PROJECTIONS for p in partitions_of(name, layout.count_for(name, COUNT))]


def content(client: redis.Redis, part: Partition) -> dict[str, object]:
    found = generation_content(client, 1, part.tag)
    found.pop("checkpoint", None)
    return found


def at_head(client: redis.Redis, uri: str) -> bool:
    return all(int(client.get(layout.space(p, 1).checkpoint) or 0) >= head_for(uri, p.projection) for p in every())


def test_members_through_a_sentinel_failover_equal_a_fresh_projection(
        tmp_path: Path, sentinel_set: SentinelSet, redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 1500, bad_ratio=0.01)
    client = connect(sentinel_set.url)
    settings = {"projection": "", "redis_url": sentinel_set.url, "eventstore_uri": store_process.uri, "batch_size": 50,
                "lease_ms": 1500, "status_interval": 0.2, "backoff_initial": 0.05, "backoff_max": 0.5}
    members = [MemberProcess(tmp_path / f"{n}.log", n, list(PROJECTIONS), COUNT, **settings) for n in ("a", "b")]
    for member in members:
        member.start()
    traffic = Appender(store_process.uri, 100)
    try:
        wait_until(lambda: at_head(client, store_process.uri), 60, what="the members to catch up on the primary")
        traffic.start()
        old = sentinel_set.primary_port()
        wait_until(lambda: int(client.get(layout.space(Partition("market"), 1).checkpoint) or 0) >
                   head_for(store_process.uri, "market") - 50, 20, what="the market to commit live traffic")
        sentinel_set.node_at(old).kill()  # mid-stream: acknowledged writes the replica may not have yet
        wait_until(lambda: sentinel_set.primary_port() not in (0, old), 30, what="the Sentinels to promote the replica")
        wait_until(lambda: at_head(client, store_process.uri), 60, what="the members to commit on the new primary")
        traffic.halt.set()
        traffic.join(10)
        wait_until(lambda: at_head(client, store_process.uri), 60, what="the members to catch up after the traffic")
    finally:
        traffic.halt.set()
        for member in members:
            member.stop()
    fresh = redis.Redis.from_url(redis_process.url)
    for part in every():
        Runner(config(part.projection, redis_process.url, store_process.uri, partition=part.index,
                      partitions=part.count)).run()
    for part in every():
        assert content(client, part) == content(fresh, part), part.label


def test_the_servers_listed_are_the_sentinels_primary_and_its_replica_and_after_a_failover_the_new_primary(
        sentinel_set: SentinelSet) -> None:
    client = connect(sentinel_set.url)
    client.set("lucent:probe", "1")
    old = sentinel_set.primary_port()
    wait_until(lambda: [(n.role, n.link) for n in redis_nodes(client)] == [(PRIMARY, "up"), (REPLICA, "online")], 20,
               what="the primary and its replica, online")
    primary, replica = redis_nodes(client)
    assert primary.address == f"127.0.0.1:{old}" and replica.used_bytes and replica.used_bytes > 0
    sentinel_set.node_at(old).kill()
    wait_until(lambda: sentinel_set.primary_port() not in (0, old), 30, what="the Sentinels to promote the replica")
    after = wait_until(lambda: redis_nodes(client), 10, what="the new primary to answer")
    assert [(n.address, n.role) for n in after] == [(replica.address, PRIMARY)]  # the old one is gone
    assert client.get("lucent:probe") == b"1"
