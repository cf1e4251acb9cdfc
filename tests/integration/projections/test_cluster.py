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
from projections.eventstore import EventStore
from projections.maintenance.control import Unattended
from projections.maintenance.generations import live_generation, switch_to
from projections.maintenance.retention import settle_flip
from projections.maintenance.user_rebuild import rebuild_user
from projections.partitions import Partition, partition_of, partitions_of
from projections.projector.runner import Runner
from projections.queries import Queries
from projections.readmodels import PROJECTIONS
from tests.fixtures.projections import MemberProcess, RedisProcess, StoreProcess
from tests.fixtures.topologies import ClusterSet
from tests.integration.projections.helpers import append_market, config, generation_content, head_for
from tests.integration.projections.test_generations import Appender
from tests.waiting import wait_until

COUNT = 4
P = "portfolio"


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


def test_members_through_a_slot_migration_under_load_equal_a_fresh_projection(
        tmp_path: Path, cluster_set: ClusterSet, redis_process: RedisProcess, store_process: StoreProcess) -> None:
    """``redis-cli --cluster reshard`` moves the first 2,000 slots (partition 0 of each user-keyed projection among
    them) from the first primary to the second while the members commit live traffic: MOVED, ASK and TRYAGAIN are
    followed or waited out, and nothing is lost or applied twice."""
    append_market(store_process.uri, 1500, bad_ratio=0.01)
    client = connect(cluster_set.url)
    settings = {"projection": "", "redis_url": cluster_set.url, "eventstore_uri": store_process.uri, "batch_size": 20,
                "lease_ms": 1500, "status_interval": 0.2, "backoff_initial": 0.05, "backoff_max": 0.5}
    members = [MemberProcess(tmp_path / f"{n}.log", n, list(PROJECTIONS), COUNT, **settings) for n in ("a", "b")]
    for member in members:
        member.start()
    traffic = Appender(store_process.uri, 200)
    moving = [p for p in every() if key_slot(p.tag.encode()) < 2000]
    assert {p.projection for p in moving} >= {"portfolio", "risk", "leaderboards"}
    try:
        wait_until(lambda: at_head(client, store_process.uri), 60, what="the members to catch up on the cluster")
        first, second = sorted(cluster_set.primaries(), key=lambda port: _lowest_slot(cluster_set, port))[:2]
        traffic.start()
        cluster_set.reshard(first, second, 2000)
        client.nodes_manager.initialize()
        for part in moving:  # the partitions moved with their slots
            node = client.nodes_manager.get_node_from_slot(key_slot(part.tag.encode()))
            assert node.port == second, part.label
        wait_until(lambda: at_head(client, store_process.uri), 60, what="the members to commit after the migration")
        traffic.halt.set()
        traffic.join(10)
        wait_until(lambda: at_head(client, store_process.uri), 60, what="the members to catch up after the traffic")
    finally:
        traffic.halt.set()
        for member in members:
            member.stop()
    assert all("Traceback" not in member.log.read_text() for member in members)
    fresh_equal(client, redis_process, store_process.uri)


def _lowest_slot(cluster_set: ClusterSet, port: int) -> int:
    table = redis.Redis(port=port, decode_responses=True).cluster("NODES")
    mine = next(info for address, info in table.items() if "myself" in info["flags"])
    return min(int(r[0]) for r in mine["slots"])


def test_a_rebuild_a_per_user_rebuild_and_a_rollback_on_a_cluster_equal_a_fresh_projection(
        tmp_path: Path, cluster_set: ClusterSet, redis_process: RedisProcess, store_process: StoreProcess) -> None:
    """Portfolio in four partitions over three primaries: a full rebuild into generation 2 (verified, flipped stepwise
    under live members and traffic), a user's keys deleted and rebuilt, the console's merged rankings read per node,
    then a rollback to generation 1; each generation equals a fresh projection."""
    append_market(store_process.uri, 1200, bad_ratio=0.01)
    client = connect(cluster_set.url)
    settings = {"projection": "", "redis_url": cluster_set.url, "eventstore_uri": store_process.uri, "batch_size": 100,
                "lease_ms": 1500, "status_interval": 0.2, "backoff_initial": 0.05, "backoff_max": 0.5}
    members = [MemberProcess(tmp_path / f"{n}.log", n, [P], COUNT, **settings) for n in ("a", "b")]
    for member in members:
        member.start()
    base = config(P, cluster_set.url, store_process.uri, exit_when_caught_up=False)
    traffic = Appender(store_process.uri, 100)
    try:
        run_by_members(client, 1, COUNT, store_process.uri)
        traffic.start()
        done = switch_to(client, base, 2, Unattended(), partitions=COUNT)
        assert (done.from_generation, done.to_generation, done.difference_count) == (1, 2, 0)
        assert live_generation(client, P) == 2
        run_by_members(client, 2, COUNT, store_process.uri)

        board = Queries(client).top_portfolios(5)  # merged from four partitions on three nodes
        assert [e.rank for e in board] == [1, 2, 3, 4, 5]
        assert [e.value for e in board] == sorted((e.value for e in board), reverse=True)
        user = board[0].user_id
        ks = layout.space(Partition(P, partition_of(user, COUNT), COUNT), 2)
        client.delete(ks.portfolio(user), ks.portfolio_positions(user))
        rebuilt = rebuild_user(client, EventStore(store_process.uri), user, [P])
        assert rebuilt.writes > 0 and client.exists(ks.portfolio(user))
        traffic.halt.set()
        traffic.join(10)
        run_by_members(client, 2, COUNT, store_process.uri)
        equal_to_fresh(client, 2, redis_process, store_process.uri)

        assert settle_flip(client, P, 1, Unattended()) == []  # generation 1 kept for a rollback
        back = switch_to(client, base, 1, Unattended(), verify=False)
        assert (back.from_generation, back.to_generation) == (2, 1)
        run_by_members(client, 1, COUNT, store_process.uri)
    finally:
        traffic.halt.set()
        for member in members:
            member.stop()
    equal_to_fresh(client, 1, redis_process, store_process.uri)


def run_by_members(client: redis.Redis, generation: int, count: int, uri: str) -> None:
    wanted = partitions_of(P, count)

    def owned() -> bool:
        rows = [r for r in Queries(client).shards().partitions if r.partition.projection == P]
        return [r.partition for r in rows] == wanted and all(r.owner in ("a", "b") for r in rows)

    wait_until(owned, 30, what=f"the members to own the {count} partitions of generation {generation}")
    wait_until(lambda: all(int(client.get(layout.space(p, generation).checkpoint) or 0) >= head_for(uri, P)
                           for p in wanted), 60, what=f"the partitions of generation {generation} to catch up")


def equal_to_fresh(client: redis.Redis, generation: int, redis_process: RedisProcess, uri: str) -> None:
    fresh = redis.Redis.from_url(redis_process.url)
    fresh.flushdb()
    for part in partitions_of(P, COUNT):
        Runner(config(P, redis_process.url, uri, partition=part.index, partitions=part.count)).run()
    for part in partitions_of(P, COUNT):
        live = generation_content(client, generation, part.tag)
        live.pop("checkpoint", None)
        assert live and live == content(fresh, part), part.label
