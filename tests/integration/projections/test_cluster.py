"""The partitioned projector on a Redis Cluster (``REDIS_URL=redis+cluster://…``) of three primaries and three
replicas: each partition's keys live on the primary of its tag's slot, every script and transaction touches one slot.
Under a live market, through a primary killed -9 mid-stream (its replica promoted; what the old primary acknowledged
and the replica never got shows as checkpoints gone back and is projected again) and through a slot migration, every
partition ends equal to a fresh projection of the same store, key for key; so do a rebuild with its flip, a per-user
rebuild and a rollback made on the cluster."""
from __future__ import annotations

from collections.abc import Callable
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
from projections.queries import Queries
from tests.fixtures.projections import MemberProcess, RedisProcess, StoreProcess
from tests.fixtures.topologies import ClusterSet
from tests.integration.projections.helpers import (
    append_market,
    config,
    equal_to_fresh_split,
    head_for,
    split,
    split_at_head,
    start_members,
)
from tests.integration.projections.test_generations import Appender
from tests.waiting import wait_until

COUNT = 4
P = "portfolio"


def port_of(client: redis.Redis, part: Partition) -> int:
    """The port of the primary holding ``part``'s slot, as the client routes it."""
    return int(client.nodes_manager.get_node_from_slot(key_slot(part.tag.encode())).port)  # type: ignore[attr-defined]


def under_traffic(tmp_path: Path, cluster_set: ClusterSet, store_process: StoreProcess, rate: int, batch_size: int,
                  fault: Callable[[redis.Redis, Appender], None]) -> tuple[redis.Redis, list[MemberProcess]]:
    """Members over every projection split COUNT ways on the cluster, caught up; ``fault`` done under live traffic;
    caught up again after it and after the traffic."""
    client = connect(cluster_set.url)
    members = start_members(tmp_path, cluster_set.url, store_process.uri, COUNT, batch_size=batch_size)
    traffic = Appender(store_process.uri, rate)
    parts = split(COUNT)
    try:
        wait_until(lambda: split_at_head(client, store_process.uri, parts), 60, what="the members to catch up")
        traffic.start()
        fault(client, traffic)
        wait_until(lambda: split_at_head(client, store_process.uri, parts), 60, what="the members after the fault")
        traffic.halt.set()
        traffic.join(10)
        wait_until(lambda: split_at_head(client, store_process.uri, parts), 60, what="the members after the traffic")
    finally:
        traffic.halt.set()
        for member in members:
            member.stop()
    return client, members


def test_members_on_a_cluster_through_a_primary_killed_equal_a_fresh_projection(
        tmp_path: Path, cluster_set: ClusterSet, redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 1500, bad_ratio=0.01)

    def kill_a_primary(client: redis.Redis, _: Appender) -> None:
        assert {port_of(client, p) for p in split(COUNT)} == set(cluster_set.primaries())  # spread over all three
        wait_until(lambda: int(client.get(layout.space(Partition("market"), 1).checkpoint) or 0) >
                   head_for(store_process.uri, "market") - 50, 20, what="the market to commit live traffic")
        victim = port_of(client, split(COUNT)[0])
        cluster_set.node_at(victim).kill()  # mid-stream: acknowledged writes its replica may not have yet
        wait_until(lambda: len(cluster_set.primaries()) == 3 and victim not in cluster_set.primaries(), 30,
                   what="the cluster to promote the victim's replica")

    client, _ = under_traffic(tmp_path, cluster_set, store_process, 100, 50, kill_a_primary)
    equal_to_fresh_split(client, redis_process.url, store_process.uri, split(COUNT))


def test_members_through_a_slot_migration_under_load_equal_a_fresh_projection(
        tmp_path: Path, cluster_set: ClusterSet, redis_process: RedisProcess, store_process: StoreProcess) -> None:
    """``redis-cli --cluster reshard`` moves the first 2,000 slots (partition 0 of each user-keyed projection among
    them) from the first primary to the second while the members commit live traffic: MOVED, ASK and TRYAGAIN are
    followed or waited out, and nothing is lost or applied twice."""
    append_market(store_process.uri, 1500, bad_ratio=0.01)
    moving = [p for p in split(COUNT) if key_slot(p.tag.encode()) < 2000]
    assert {p.projection for p in moving} >= {"portfolio", "risk", "leaderboards"}

    def reshard(client: redis.Redis, _: Appender) -> None:
        first, second = sorted(cluster_set.primaries(), key=lambda port: _lowest_slot(port))[:2]
        cluster_set.reshard(first, second, 2000)
        client.nodes_manager.initialize()  # type: ignore[attr-defined]
        assert {port_of(client, p) for p in moving} == {second}  # the partitions moved with their slots

    client, members = under_traffic(tmp_path, cluster_set, store_process, 200, 20, reshard)
    assert all("Traceback" not in member.log.read_text() for member in members)
    equal_to_fresh_split(client, redis_process.url, store_process.uri, split(COUNT))


def _lowest_slot(port: int) -> int:
    table = redis.Redis(port=port, decode_responses=True).cluster("NODES")
    mine = next(info for info in table.values() if "myself" in info["flags"])
    return min(int(r[0]) for r in mine["slots"])


def test_a_rebuild_a_per_user_rebuild_and_a_rollback_on_a_cluster_equal_a_fresh_projection(
        tmp_path: Path, cluster_set: ClusterSet, redis_process: RedisProcess, store_process: StoreProcess) -> None:
    """Portfolio in four partitions over three primaries: a full rebuild into generation 2 (verified, flipped stepwise
    under live members and traffic), a user's keys deleted and rebuilt, the console's merged rankings read per node,
    then a rollback to generation 1; each generation equals a fresh projection."""
    append_market(store_process.uri, 1200, bad_ratio=0.01)
    client = connect(cluster_set.url)
    members = start_members(tmp_path, cluster_set.url, store_process.uri, COUNT, [P], batch_size=100)
    parts = partitions_of(P, COUNT)
    base = config(P, cluster_set.url, store_process.uri, exit_when_caught_up=False)
    traffic = Appender(store_process.uri, 100)
    try:
        run_by_members(client, 1, store_process.uri)
        traffic.start()
        done = switch_to(client, base, 2, Unattended(), partitions=COUNT)
        assert (done.from_generation, done.to_generation, done.difference_count) == (1, 2, 0)
        assert live_generation(client, P) == 2
        run_by_members(client, 2, store_process.uri)

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
        run_by_members(client, 2, store_process.uri)
        equal_to_fresh_split(client, redis_process.url, store_process.uri, parts, generation=2)

        assert settle_flip(client, P, 1, Unattended()) == []  # generation 1 kept for a rollback
        back = switch_to(client, base, 1, Unattended(), verify=False)
        assert (back.from_generation, back.to_generation) == (2, 1)
        run_by_members(client, 1, store_process.uri)
    finally:
        traffic.halt.set()
        for member in members:
            member.stop()
    equal_to_fresh_split(client, redis_process.url, store_process.uri, parts)


def run_by_members(client: redis.Redis, generation: int, uri: str) -> None:
    wanted = partitions_of(P, COUNT)

    def owned() -> bool:
        rows = [r for r in Queries(client).shards().partitions if r.partition.projection == P]
        return [r.partition for r in rows] == wanted and all(r.owner in ("a", "b") for r in rows)

    wait_until(owned, 30, what=f"the members to own the partitions of generation {generation}")
    wait_until(lambda: split_at_head(client, uri, wanted, generation), 60,
               what=f"the partitions of generation {generation} to catch up")
