"""User-keyed projections split into partitions, run by several member processes: each partition equals a fresh
projection of the same store into the same partitions, key for key, and the partitions merged equal a projection in
one partition (each user in exactly one partition; rankings split, never doubled; marks in every partition)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import redis

from projections import keys, layout
from projections.eventstore import EventStore
from projections.keys import KeySpace
from projections.maintenance.user_rebuild import heal
from projections.partitions import Partition, partition_of, partitions_of
from projections.projector.runner import Runner
from projections.queries import Queries
from projections.readmodels import PROJECTIONS
from tests.fixtures.projections import MemberProcess, RedisProcess, StoreProcess
from tests.integration.projections.helpers import append_market, config, generation_content, head_for
from tests.waiting import wait_until

COUNT = 4
LEASE_MS = 1500


def parts(name: str) -> list[Partition]:
    return partitions_of(name, layout.count_for(name, COUNT))


def content(client: redis.Redis, part: Partition) -> dict[str, Any]:
    found = generation_content(client, 1, part.tag if part.count > 1 else part.projection)
    found.pop("checkpoint", None)
    return found


def checkpoint_of(client: redis.Redis, part: Partition) -> int:
    value = client.get(KeySpace(part.projection, 1, part.tag if part.count > 1 else "").checkpoint)
    return int(value) if value else 0


def project(redis_url: str, uri: str, count: int) -> None:
    """A fresh projection of every projection, split ``count`` ways (the market in one), run to the end."""
    for name in PROJECTIONS:
        for part in partitions_of(name, layout.count_for(name, count)):
            Runner(config(name, redis_url, uri, partition=part.index, partitions=part.count), healer=heal).run()


def merged(client: redis.Redis, name: str) -> dict[str, Any]:
    """The partitions of ``name`` merged back into one partition's names (see the module doc)."""
    out: dict[str, Any] = {}
    for part in parts(name):
        for key, value in content(client, part).items():
            if isinstance(value, list):  # a ranking: each member in one partition
                out[key] = sorted([*out.get(key, []), *value])
            elif key == "clock":  # local to each partition: the newest is the projection's
                out[key] = max(out.get(key, value), value, key=lambda v: int(v[b"at"]))
            elif key in out and key == "marks":
                assert out[key] == value, f"{name}: the marks differ between partitions"
            else:
                assert key not in out, f"{name}: {key} in two partitions"
                out[key] = value
    return out


def member_processes(tmp_path: Path, redis_process: RedisProcess, store_process: StoreProcess,
                     names: list[str]) -> list[MemberProcess]:
    """Members "a" and "b" (not started) over ``names``, each user-keyed one split into COUNT partitions."""
    settings = {"projection": "", "redis_url": redis_process.url, "eventstore_uri": store_process.uri, "batch_size": 100,
                "lease_ms": LEASE_MS, "status_interval": 0.2, "backoff_initial": 0.05, "backoff_max": 0.5}
    return [MemberProcess(tmp_path / f"{n}.log", n, names, COUNT, **settings) for n in ("a", "b")]


def test_members_over_partitions_equal_a_fresh_projection_and_merged_equal_one_partition(
        tmp_path: Path, redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 1500, bad_ratio=0.02)
    client = redis.Redis.from_url(redis_process.url)
    members = member_processes(tmp_path, redis_process, store_process, list(PROJECTIONS))
    every = [part for name in PROJECTIONS for part in parts(name)]
    members[0].start()  # the second joins once the first has committed: partitions move, with their checkpoints
    try:
        wait_until(lambda: all(checkpoint_of(client, p) > 0 for p in every), 30, what="the first member to commit")
        members[1].start()
        append_market(store_process.uri, 500, start=1500, bad_ratio=0.02)  # live traffic over the partitions
        # every partition reads every event of its projection's types (folding those of its users): all reach the head
        wait_until(lambda: all(checkpoint_of(client, p) >= head_for(store_process.uri, p.projection) for p in every),
                   60, what="every partition to catch up")
        shards = Queries(client).shards()  # the Shards page: every partition, each owned by one of the two
        assert [r.partition for r in shards.partitions] == every and {r.owner for r in shards.partitions} == {"a", "b"}
    finally:
        for member in members:
            member.stop()
    assert [layout.recorded(client, name, 1) for name in PROJECTIONS] == [COUNT, COUNT, 1, COUNT]
    # nothing vanished: no partition took another's users for lost ones (and looked for them in the store)
    assert {p.label: int(client.hget(keys.status(p.tag), "healed") or 0) for p in every} == {p.label: 0 for p in every}
    live = {part: content(client, part) for part in every}
    users = Counter(part.label for part in every for name in live[part] if name.startswith("portfolio:"))
    assert len(users) == COUNT and min(users.values()) > 0  # every portfolio partition holds some users
    merged_live = {name: merged(client, name) for name in PROJECTIONS}

    fresh_url = redis_process.url.rsplit("/", 1)[0] + "/9"
    fresh = redis.Redis.from_url(fresh_url)
    project(fresh_url, store_process.uri, COUNT)
    for part in every:
        assert live[part] == content(fresh, part), part.label
    fresh.flushdb()
    project(fresh_url, store_process.uri, 1)
    for name in PROJECTIONS:
        whole = generation_content(fresh, 1, name)
        whole.pop("checkpoint")
        whole = {k: sorted(v) if isinstance(v, list) else v for k, v in whole.items()}
        assert merged_live[name] == whole, name
    same_answers(Queries(client), Queries(fresh))
    lost_in_one_partition_is_found(client)


def lost_in_one_partition_is_found(client: redis.Redis) -> None:
    """The recovery rule for missing read models looks in every partition, not only the first."""
    from projections.maintenance.recovery import missing_read_models

    assert missing_read_models(client, "portfolio", 50) is None
    user = next(r.user_id for r in Queries(client).top_portfolios(30) if partition_of(r.user_id, COUNT) == COUNT - 1)
    client.delete(KeySpace("portfolio", 1, Partition("portfolio", COUNT - 1, COUNT).tag).portfolio(user))
    found = missing_read_models(client, "portfolio", 50)
    assert found is not None and found.users == (user,) and not found.emptied


def same_answers(split: Queries, whole: Queries) -> None:
    """What the console shows of the partitions merged equals what it shows of one partition."""
    assert [p.count for p in (split.spread(n) for n in PROJECTIONS)] == [COUNT, COUNT, 1, COUNT]
    assert split.top_portfolios(30) == whole.top_portfolios(30)
    assert split.risk_ranking(30) == whole.risk_ranking(30)
    assert split.high_risk_users(100, threshold=1000) == whole.high_risk_users(100, threshold=1000)
    assert split.active_alerts(100) == whole.active_alerts(100) and split.active_alert_count() == whole.active_alert_count()
    assert split.daily_volume_leaders(limit=30) == whole.daily_volume_leaders(limit=30)
    assert split.strategy_performance(30) == whole.strategy_performance(30)
    assert split.risk_day() == whole.risk_day() and split.leaderboard_day() == whole.leaderboard_day()
    users = [row.user_id for row in whole.top_portfolios(30)]
    assert len(users) > 10
    for user in users:
        assert split.portfolio_summary(user) == whole.portfolio_summary(user), user
        assert split.risk_profile(user) == whole.risk_profile(user), user
        assert split.user_rank(user) == whole.user_rank(user), user
    for name in PROJECTIONS:  # the parked events of every partition, as one list in position order
        parked = split.parked_events(name, None)
        assert [(e.stream, e.event_id, e.position) for e in parked] == \
               [(e.stream, e.event_id, e.position) for e in whole.parked_events(name, None)]
        assert parked and split.parked_member(name, str(parked[-1].position)) == parked[-1].key
    status = split.projection_status("portfolio")[0]
    assert status.partitions == COUNT and status.worst.startswith("portfolio ")


def test_a_generation_keeps_the_partition_count_it_was_first_run_with(redis_process: RedisProcess) -> None:
    client = redis.Redis.from_url(redis_process.url)
    assert layout.partitions(client, "portfolio", 1) == [Partition("portfolio")]  # nothing recorded: one
    assert layout.record(client, "portfolio", 1, 16) == 16
    assert layout.record(client, "portfolio", 1, 4) == 16  # the setting changed: the generation keeps its 16
    assert layout.record(client, "market", 1, 16) == 1  # keyed by pair: one partition
    client.set(KeySpace("risk", 1).checkpoint, 42)  # a generation built before partitions existed
    assert layout.record(client, "risk", 1, 16) == 1
    assert client.hgetall("lucent:{portfolio}:g1-layout") == {b"partitions": b"16", b"hash": b"crc32"}


def test_a_partitioned_rebuild_under_live_members_flips_rolls_back_and_drops_equal_to_a_fresh_projection(
        tmp_path: Path, redis_process: RedisProcess, store_process: StoreProcess) -> None:
    from projections.maintenance.control import Unattended
    from projections.maintenance.generations import live_generation, switch_to
    from projections.maintenance.retention import drop_generation, settle_flip
    from projections.maintenance.verify import verify_generation
    from tests.integration.projections.test_generations import Appender

    append_market(store_process.uri, 1200, bad_ratio=0.01)
    client = redis.Redis.from_url(redis_process.url)
    members = member_processes(tmp_path, redis_process, store_process, ["portfolio"])
    for member in members:
        member.start()
    traffic = Appender(store_process.uri, 100)
    base = config("portfolio", redis_process.url, store_process.uri, exit_when_caught_up=False)

    def caught_up(generation: int) -> bool:
        head = head_for(store_process.uri, "portfolio")
        return all(_int(client.get(KeySpace("portfolio", generation, p.tag).checkpoint)) >= head for p in parts("portfolio"))

    try:
        wait_until(lambda: caught_up(1), 60, what="the live partitions to catch up")
        traffic.start()
        done = switch_to(client, base, 2, Unattended(), partitions=COUNT)  # the rebuild, flipped under traffic
        assert (done.from_generation, done.to_generation, done.difference_count) == (1, 2, 0)
        assert live_generation(client, "portfolio") == 2 and layout.recorded(client, "portfolio", 2) == COUNT
        assert settle_flip(client, "portfolio", 1, Unattended()) == []  # generation 1 is kept for a rollback
        with EventStore(store_process.uri) as store:  # what a rollback checks first: the kept one, every partition
            kept = verify_generation(client, store, "portfolio", 1, Unattended())
        assert kept.checked >= 20 and kept.count == 0  # users of every partition replayed and compared
        wait_until(lambda: caught_up(2), 60, what="the live partitions to go on in generation 2")
        back = switch_to(client, base, 1, Unattended(), verify=False)  # the rollback
        assert (back.from_generation, back.to_generation) == (2, 1)
        traffic.halt.set()
        traffic.join(10)
        wait_until(lambda: caught_up(1), 60, what="the live partitions to go on in generation 1 again")
    finally:
        traffic.halt.set()
        for member in members:
            member.stop()
    dropped = drop_generation(client, "portfolio", 2, Unattended())
    assert dropped > 0 and not list(client.scan_iter(match="lucent:{portfolio.p*}:g2*"))
    assert layout.recorded(client, "portfolio", 2) is None
    live = {p: content(client, p) for p in parts("portfolio")}
    fresh_url = redis_process.url.rsplit("/", 1)[0] + "/9"
    fresh = redis.Redis.from_url(fresh_url)
    for part in parts("portfolio"):
        Runner(config("portfolio", fresh_url, store_process.uri, partition=part.index, partitions=part.count)).run()
    for part in parts("portfolio"):
        assert live[part] == content(fresh, part), part.label


def _int(value: object) -> int:
    return int(value) if value else 0  # type: ignore[call-overload]
