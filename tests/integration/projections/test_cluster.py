"""The partitioned projector on a Redis Cluster (``REDIS_URL=redis+cluster://…``) of three primaries and three
replicas: each partition's keys live on the primary of its tag's slot, every script and transaction touches one slot.
Under a live market, and through a primary killed -9 mid-stream (its replica promoted; what the old primary
acknowledged and the replica never got shows as checkpoints gone back and is projected again), every partition ends
equal to a fresh projection of the same store, key for key."""
from __future__ import annotations

from pathlib import Path

import redis
from redis.crc import key_slot

from projections import layout
from projections.connection import connect
from projections.partitions import Partition, partitions_of
from projections.projector.runner import Runner
from projections.readmodels import PROJECTIONS
from tests.fixtures.projections import MemberProcess, RedisProcess, StoreProcess
from tests.fixtures.topologies import ClusterSet
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


def fresh_equal(client: redis.Redis, redis_process: RedisProcess, uri: str) -> None:
    fresh = redis.Redis.from_url(redis_process.url)
    for part in every():
        Runner(config(part.projection, redis_process.url, uri, partition=part.index, partitions=part.count)).run()
    for part in every():
        assert content(client, part) == content(fresh, part), part.label


def test_members_on_a_cluster_through_a_primary_killed_equal_a_fresh_projection(
        tmp_path: Path, cluster_set: ClusterSet, redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 1500, bad_ratio=0.01)
    client = connect(cluster_set.url)
    settings = {"projection": "", "redis_url": cluster_set.url, "eventstore_uri": store_process.uri, "batch_size": 50,
                "lease_ms": 1500, "status_interval": 0.2, "backoff_initial": 0.05, "backoff_max": 0.5}
    members = [MemberProcess(tmp_path / f"{n}.log", n, list(PROJECTIONS), COUNT, **settings) for n in ("a", "b")]
    for member in members:
        member.start()
    traffic = Appender(store_process.uri, 100)
    try:
        wait_until(lambda: at_head(client, store_process.uri), 60, what="the members to catch up on the cluster")
        # the partitions are spread: every primary holds some partition's checkpoint
        holders = {client.nodes_manager.get_node_from_slot(key_slot(layout.space(p, 1).checkpoint.encode())).port
                   for p in every()}
        assert holders == set(cluster_set.primaries())
        traffic.start()
        wait_until(lambda: int(client.get(layout.space(Partition("market"), 1).checkpoint) or 0) >
                   head_for(store_process.uri, "market") - 50, 20, what="the market to commit live traffic")
        victim = client.nodes_manager.get_node_from_slot(key_slot(layout.space(every()[0], 1).checkpoint.encode())).port
        old = cluster_set.primaries()
        cluster_set.node_at(victim).kill()  # mid-stream: acknowledged writes its replica may not have yet
        wait_until(lambda: len(cluster_set.primaries()) == 3 and victim not in cluster_set.primaries(), 30,
                   what="the cluster to promote the victim's replica")
        assert cluster_set.primaries() != old
        wait_until(lambda: at_head(client, store_process.uri), 60, what="the members to commit on the new primary")
        traffic.halt.set()
        traffic.join(10)
        wait_until(lambda: at_head(client, store_process.uri), 60, what="the members to catch up after the traffic")
    finally:
        traffic.halt.set()
        for member in members:
            member.stop()
    fresh_equal(client, redis_process, store_process.uri)
