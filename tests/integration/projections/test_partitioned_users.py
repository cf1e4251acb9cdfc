"""Per-user work over a live generation split into partitions: a per-user rebuild (repair), a consistency check and
its explanation, and the healer of vanished entities each act in the partition holding the user — its keys, its
rankings, its marks, its checkpoint and its state epoch — under traffic, while members own the partitions (and
while they move), and leave every partition equal to a fresh projection into the same partitions, key for key."""
from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from pathlib import Path

import redis

from projections import keys, layout
from projections.events import user_streams
from projections.eventstore import EventStore
from projections.keys import KeySpace
from projections.maintenance.consistency import check_users, users_of
from projections.maintenance.report import MISSING_KEY, VALUE_DIFFERS
from projections.maintenance.user_rebuild import heal, rebuild_user
from projections.partitions import Partition, holder_of, partition_of
from projections.projector.runner import Runner
from projections.queries import Queries
from projections.readmodels import PROJECTIONS, model
from projections.simulation.appender import append_events
from projections.simulation.market import Market
from tests.fixtures.projections import MemberProcess, RedisProcess, StoreProcess
from tests.integration.projections.helpers import append_market, config, head_for, in_thread
from tests.integration.projections.test_partitioned import COUNT, checkpoint_of, content, parts, project
from tests.integration.projections.test_vanished_entities import of_users
from tests.waiting import wait_until

USER_PROJECTIONS = ("portfolio", "risk", "leaderboards")
SETTINGS = {"projection": "", "batch_size": 100, "lease_ms": 1500, "status_interval": 0.2, "backoff_initial": 0.05,
            "backoff_max": 0.5}
EVERY = [part for name in PROJECTIONS for part in parts(name)]


def space(name: str, user: str) -> KeySpace:
    """The key space of ``user``'s partition of ``name`` in generation 1."""
    return KeySpace(name, 1, Partition(name, partition_of(user, COUNT), COUNT).tag)


def own_keys(user: str) -> list[str]:
    """The user's own keys in each projection, in the user's partition."""
    pf, rk, lb = space("portfolio", user), space("risk", user), space("leaderboards", user)
    return [pf.portfolio(user), pf.portfolio_positions(user), pf.portfolio_history(user), rk.user_risk(user),
            lb.trader(user)]


def delete_user(client: redis.Redis, user: str) -> None:
    """The user's keys and ranking members gone from the user's partition (evicted, lost in a failover)."""
    client.delete(*own_keys(user))
    client.zrem(space("portfolio", user).portfolio_values(), user)
    client.zrem(space("risk", user).user_risk_scores(), user)


@contextmanager
def members(tmp_path: Path, redis_url: str, uri: str, names: Sequence[str]) -> Iterator[dict[str, MemberProcess]]:
    """Member processes over every projection, user-keyed ones split ``COUNT`` ways; stopped on the way out."""
    started = {n: MemberProcess(tmp_path / f"{n}.log", n, list(PROJECTIONS), COUNT, redis_url=redis_url,
                                eventstore_uri=uri, **SETTINGS) for n in names}
    for member in started.values():
        member.start()
    try:
        yield started
    finally:
        for member in started.values():
            member.stop()


@contextmanager
def traffic(uri: str, start: int, without: Sequence[str] = ()) -> Iterator[threading.Event]:
    """A thread appending the seeded market (``append_market``'s) from event ``start`` on, ten events at a time
    (about 250 a second), leaving out the streams of the users ``without``, until the block ends (or the
    returned event is set)."""
    stop = threading.Event()
    skipped = {stream for user in without for stream in user_streams(user)}
    market = Market(seed=11, users=25, pairs=4, exchanges=3, bad_ratio=0.0)

    def run() -> None:
        with EventStore(uri) as store:
            items = (item for item in islice(market.events(), start, start + 5000) if item[0] not in skipped)
            while not stop.is_set():
                chunk = list(islice(items, 10))
                if not chunk:
                    return
                append_events(store, chunk, batch_size=10)
                stop.wait(0.04)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(30)


def caught_up(client: redis.Redis, uri: str, partitions: Sequence[Partition] = tuple(EVERY)) -> None:
    wait_until(lambda: all(checkpoint_of(client, p) >= head_for(uri, p.projection) for p in partitions), 90,
               what="every partition to reach the head")


def started(client: redis.Redis, uri: str) -> None:
    wait_until(lambda: all(layout.recorded(client, name, 1) for name in PROJECTIONS), 30, what="the layouts")
    caught_up(client, uri)


def equal_to_a_fresh_projection(client: redis.Redis, redis_url: str, uri: str) -> None:
    live = {part: content(client, part) for part in EVERY}
    fresh_url = redis_url.rsplit("/", 1)[0] + "/9"
    fresh = redis.Redis.from_url(fresh_url)
    fresh.flushdb()
    project(fresh_url, uri, COUNT)
    for part in EVERY:
        assert live[part] == content(fresh, part), part.label


def busy_users(client: redis.Redis, n: int) -> list[str]:
    """``n`` of the busiest users, each in another partition, none in partition 0 (its tag differs most)."""
    chosen: dict[int, str] = {}
    for row in Queries(client).top_portfolios(25):
        index = partition_of(row.user_id, COUNT)
        if index and index not in chosen:
            chosen[index] = row.user_id
    assert len(chosen) >= n, chosen
    return list(chosen.values())[:n]


def test_a_per_user_rebuild_under_traffic_puts_the_user_right_in_its_partition(
        tmp_path: Path, redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 1500, bad_ratio=0.0)
    client, store = redis.Redis.from_url(redis_process.url), EventStore(store_process.uri)
    with members(tmp_path, redis_process.url, store_process.uri, ["a", "b"]):
        started(client, store_process.uri)
        gone, edited = busy_users(client, 2)
        with traffic(store_process.uri, 1500):  # the damaged users trade on too
            delete_user(client, gone)
            client.hset(space("portfolio", edited).portfolio(edited), "tradeCount", "99999")  # an outside writer
            client.zadd(space("leaderboards", edited).daily_volume_leaders("2001-01-01"), {edited: 5.0})
            done = [rebuild_user(client, store, gone), rebuild_user(client, store, edited)]
        caught_up(client, store_process.uri)
    assert all(p.writes > 0 for p in done[0].projections)
    assert done[1].writes > 0
    for user in (gone, edited):  # written in the user's partition, fenced by its state epoch
        assert client.exists(space("portfolio", user).portfolio(user))
        assert client.get(space("portfolio", user).state_epoch) is not None
    assert client.get(KeySpace("portfolio", 1).state_epoch) is None  # nothing under the unsplit projection's tag
    equal_to_a_fresh_projection(client, redis_process.url, store_process.uri)


def test_a_consistency_check_compares_each_user_in_its_partition_under_traffic(
        tmp_path: Path, redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 1500, bad_ratio=0.0)
    client, store = redis.Redis.from_url(redis_process.url), EventStore(store_process.uri)
    with members(tmp_path, redis_process.url, store_process.uri, ["a", "b"]):
        started(client, store_process.uri)
        gone, edited = busy_users(client, 2)
        everyone = users_of(client, "portfolio")
        assert len({partition_of(u, COUNT) for u in everyone}) == COUNT
        with traffic(store_process.uri, 1500, without=(gone, edited)):  # the others trade while they are checked
            clean = check_users(client, store, everyone)
            assert clean.differences == [] and clean.checked == 3 * len(everyone) and clean.score == 1.0
            assert clean.skipped == []

            client.delete(space("portfolio", gone).portfolio(gone), space("portfolio", gone).portfolio_positions(gone))
            client.hset(space("portfolio", edited).portfolio(edited), "tradeCount", "99999")
            report = check_users(client, store, everyone, urls=(redis_process.url, store_process.uri))

            found: dict[str, set[tuple[str, str, str, str]]] = {}
            for d in report.differences:
                found.setdefault(d.user, set()).add((d.projection, d.key, d.field, d.kind))
            assert set(found) == {gone, edited}, found
            assert ("portfolio", f"portfolio:{gone}", "", MISSING_KEY) in found[gone]
            assert found[edited] == {("portfolio", f"portfolio:{edited}", "tradeCount", VALUE_DIFFERS)}
            edit = next(d for d in report.differences if d.user == edited)
            assert edit.actual == "99999" and edit.event is not None and edit.event.stream == f"trades-{edited}"
            assert "outside writer" in edit.cause
            missing = next(d for d in report.differences if d.user == gone and d.kind == MISSING_KEY)
            assert "checkpoint is intact" in missing.cause and missing.event is not None

            for user in report.users_to_repair:  # the repair, in each user's partition
                rebuild_user(client, store, user)
            assert check_users(client, store, [gone, edited]).differences == []
        caught_up(client, store_process.uri)
    equal_to_a_fresh_projection(client, redis_process.url, store_process.uri)


def owned_by(client: redis.Redis, member: str) -> list[Partition]:
    found = [holder_of(value.decode() if value else None) for value in client.mget([keys.lease(p.tag) for p in EVERY])]
    return [p for p, holder in zip(EVERY, found) if holder is not None and holder[0] == member]


def test_per_user_rebuilds_while_a_third_member_joins_end_equal_to_a_fresh_projection(
        tmp_path: Path, redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 1500, bad_ratio=0.0)
    client, store = redis.Redis.from_url(redis_process.url), EventStore(store_process.uri)
    with members(tmp_path, redis_process.url, store_process.uri, ["a", "b"]):
        started(client, store_process.uri)
        users = busy_users(client, 3)
        with traffic(store_process.uri, 1500):
            with members(tmp_path, redis_process.url, store_process.uri, ["c"]):  # partitions move to it
                rounds = 0
                while not owned_by(client, "c") or rounds < 3:
                    for user in users:
                        delete_user(client, user)
                        rebuild_user(client, store, user)
                    rounds += 1
                    assert rounds < 200, "the third member never claimed a partition"
                wait_until(lambda: len(owned_by(client, "c")) >= 4, 30, what="the third member's share")
                for user in users:
                    rebuild_user(client, store, user)
                caught_up(client, store_process.uri)
        caught_up(client, store_process.uri)
    equal_to_a_fresh_projection(client, redis_process.url, store_process.uri)


def vanish(client: redis.Redis, index: int) -> dict[str, set[str]]:
    """Every user entity hash of partition ``index`` of each user projection deleted (as an eviction would); their
    users, per projection."""
    lost: dict[str, set[str]] = {}
    for name in USER_PROJECTIONS:
        m, ks = model(name), KeySpace(name, 1, Partition(name, index, COUNT).tag)
        pattern = m.main_key(ks, (str(m.user_kind), "*"))
        found = [key.decode() for key in client.scan_iter(match=pattern, count=1000)]
        client.delete(*found)
        lost[name] = {key[len(pattern) - 1:].split(":")[0] for key in found}
    return lost


@contextmanager
def live_runners(redis_url: str, uri: str, split: Sequence[Partition]) -> Iterator[None]:
    """A live runner with the healer for each of ``split``, in threads of this process."""
    runners = [Runner(config(p.projection, redis_url, uri, exit_when_caught_up=False, partition=p.index,
                             partitions=p.count), healer=heal) for p in split]
    running = [(runner, in_thread(runner)) for runner in runners]
    try:
        yield
    finally:
        for runner, _ in running:
            runner.stop()
        for _, (thread, errors) in running:
            thread.join(15)
            assert not errors, errors


def test_users_whose_keys_vanished_under_a_live_partition_are_rebuilt_there_before_their_next_write(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    client = redis.Redis.from_url(redis_process.url)
    append_market(store_process.uri, 1500, bad_ratio=0.0)
    split = [p for name in USER_PROJECTIONS for p in parts(name)]
    for name in PROJECTIONS:
        layout.record(client, name, 1, COUNT)  # as run_projector's supervisor does before it starts the runners
    with live_runners(redis_process.url, store_process.uri, split):  # 1. warm caches: the keys vanish under them
        caught_up(client, store_process.uri, split)
        (user,) = busy_users(client, 1)
        index = partition_of(user, COUNT)
        lost = vanish(client, index)
        assert user in lost["portfolio"]
        append_market(store_process.uri, 500, start=1500, bad_ratio=0.0)
        caught_up(client, store_process.uri, split)
    again = vanish(client, index)  # 2. cold caches: runners that start from their checkpoints after the loss
    with live_runners(redis_process.url, store_process.uri, split):
        append_market(store_process.uri, 500, start=2000, bad_ratio=0.0)
        caught_up(client, store_process.uri, split)

    fresh_url = redis_process.url.rsplit("/", 1)[0] + "/9"
    fresh = redis.Redis.from_url(fresh_url)
    project(fresh_url, store_process.uri, COUNT)
    for part in split:
        here, there = content(client, part), content(fresh, part)
        if part.index != index:
            assert here == there, part.label  # no other partition took a user it does not hold
            continue
        m = model(part.projection)
        present = {u for u in lost[part.projection] | again[part.projection]
                   if client.exists(m.main_key(space(part.projection, u), (str(m.user_kind), u)))}
        assert present, f"no lost user of {part.label} traded again"
        assert of_users(here, present) == of_users(there, present), part.label  # whole, never partial
        healed = client.hget(keys.status(part.tag), "healed")
        assert healed is not None and int(healed) > 0
