"""The partitioned projector on a Sentinel-managed Redis (``REDIS_URL=redis+sentinel://…``), through a failover:
the primary killed -9 mid-stream under a live market, the Sentinels promote its replica, the members' next commits
reach the new primary; what the old primary acknowledged and the replica never got shows as checkpoints gone back
and is projected again. At the end every partition equals a fresh projection of the same store, key for key."""
from __future__ import annotations

from pathlib import Path

from projections import layout
from projections.connection import connect
from projections.partitions import Partition
from projections.redis_nodes import PRIMARY, REPLICA, redis_nodes
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.fixtures.topologies import SentinelSet
from tests.integration.projections.helpers import (
    append_market,
    equal_to_fresh_split,
    head_for,
    split,
    split_at_head,
    start_members,
)
from tests.integration.projections.test_generations import Appender
from tests.waiting import wait_until

COUNT = 4


def test_members_through_a_sentinel_failover_equal_a_fresh_projection(
        tmp_path: Path, sentinel_set: SentinelSet, redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 1500, bad_ratio=0.01)
    client = connect(sentinel_set.url)
    members = start_members(tmp_path, sentinel_set.url, store_process.uri, COUNT)
    parts = split(COUNT)
    traffic = Appender(store_process.uri, 100)
    try:
        wait_until(lambda: split_at_head(client, store_process.uri, parts), 60,
                   what="the members to catch up on the primary")
        traffic.start()
        old = sentinel_set.primary_port()
        wait_until(lambda: int(client.get(layout.space(Partition("market"), 1).checkpoint) or 0) >
                   head_for(store_process.uri, "market") - 50, 20, what="the market to commit live traffic")
        sentinel_set.node_at(old).kill()  # mid-stream: acknowledged writes the replica may not have yet
        wait_until(lambda: sentinel_set.primary_port() not in (0, old), 30, what="the Sentinels to promote the replica")
        wait_until(lambda: split_at_head(client, store_process.uri, parts), 60, what="the members to commit on the new primary")
        traffic.halt.set()
        traffic.join(10)
        wait_until(lambda: split_at_head(client, store_process.uri, parts), 60, what="the members to catch up after the traffic")
    finally:
        traffic.halt.set()
        for member in members:
            member.stop()
    equal_to_fresh_split(client, redis_process.url, store_process.uri, parts)


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
