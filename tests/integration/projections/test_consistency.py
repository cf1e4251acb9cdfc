"""Consistency checks: each kind of corruption seeded into a projected store is found, classified and
explained by the event behind it; a repair makes the next check clean; live traffic causes no false
difference."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

from projections import keys
from projections.eventstore import EventStore, ProposedEvent
from projections.keys import KeySpace
from projections.maintenance import full_check
from projections.maintenance.consistency import (
    check_sample,
    check_users,
    known_users,
    rolling_sample,
    users_of,
)
from projections.maintenance.full_check import check_everything
from projections.maintenance.report import (
    MEMBER_EXTRA,
    MEMBER_MISSING,
    MISSING_KEY,
    SCORE_DIFFERS,
    VALUE_DIFFERS,
    Difference,
)
from projections.maintenance.user_rebuild import rebuild_user
from projections.projector.runner import Runner
from projections.queries import Queries
from projections.simulation.appender import append_events
from projections.simulation.market import Market
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections.helpers import append_market, checkpoint, config, head_for, in_thread, run_to_end
from tests.waiting import wait_until

USER_PROJECTIONS = ("portfolio", "risk", "leaderboards")


def busiest(client: redis.Redis, n: int) -> list[str]:
    return [r.user_id for r in Queries(client).top_portfolios(n)]


def projected(redis_process: RedisProcess, store_process: StoreProcess, events: int) -> tuple[redis.Redis, EventStore]:
    """A simulated market of ``events`` (no bad ones) projected by every projection; a Redis client and the store."""
    append_market(store_process.uri, events, bad_ratio=0.0)
    run_to_end(redis_process.url, store_process.uri)
    return redis.Redis.from_url(redis_process.url), EventStore(store_process.uri)


def by_user(differences: list[Difference]) -> dict[str, set[tuple[str, str, str, str]]]:
    out: dict[str, set[tuple[str, str, str, str]]] = {}
    for d in differences:
        out.setdefault(d.user, set()).add((d.projection, d.key, d.field, d.kind))
    return out


def test_each_seeded_corruption_is_found_classified_explained_and_repaired(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    client, store = projected(redis_process, store_process, 2500)
    everyone = users_of(client, "portfolio")
    clean = check_users(client, store, everyone)
    assert clean.differences == [] and clean.checked == 3 * len(everyone) and clean.score == 1.0

    gone, edited, stray, rescored = busiest(client, 4)
    pf, lb = KeySpace("portfolio"), KeySpace("leaderboards")
    client.delete(pf.portfolio(gone), pf.portfolio_positions(gone))  # evicted, or lost in a failover
    client.hset(pf.portfolio(edited), "tradeCount", "99999")  # an outside writer
    client.zadd(lb.daily_volume_leaders("2001-01-01"), {stray: 5.0})  # a day the user never traded
    true_score = client.zscore(pf.portfolio_values(), rescored)
    client.zadd(pf.portfolio_values(), {rescored: 123.0})

    report = check_users(client, store, everyone)

    found = by_user(report.differences)
    assert set(found) == {gone, edited, stray, rescored}
    assert ("portfolio", f"portfolio:{gone}", "", MISSING_KEY) in found[gone]
    assert found[edited] == {("portfolio", f"portfolio:{edited}", "tradeCount", VALUE_DIFFERS)}
    assert found[stray] == {("leaderboards", "daily-volume-leaders:2001-01-01", stray, MEMBER_EXTRA)}
    assert found[rescored] == {("portfolio", "portfolio-values", rescored, SCORE_DIFFERS)}
    assert sorted(report.users_to_repair) == sorted(found)
    assert report.score is not None and 0 < report.score < 1
    assert report.checked - report.consistent == 4 and report.difference_count == len(report.differences)

    edit = next(d for d in report.differences if d.user == edited)
    assert (edit.expected, edit.actual) != ("", "") and edit.actual == "99999"
    assert edit.event is not None and edit.event.type == "TradeExecuted" and edit.event.stream == f"trades-{edited}"
    assert "outside writer" in edit.cause
    missing = next(d for d in report.differences if d.user == gone and d.kind == MISSING_KEY)
    assert "checkpoint is intact" in missing.cause and missing.event is not None
    rescore = next(d for d in report.differences if d.user == rescored)
    assert (float(rescore.expected), float(rescore.actual)) == (true_score, 123.0)
    stray_one = next(d for d in report.differences if d.user == stray)
    assert stray_one.event is None and "outside writer" in stray_one.cause

    read_ahead = check_users(client, store, everyone, urls=(redis_process.url, store_process.uri))  # a child reads
    assert read_ahead.differences == report.differences and read_ahead.checked == report.checked

    for user in report.users_to_repair:  # the repair: a per-user rebuild of each
        rebuild_user(client, store, user)
    again = check_users(client, store, everyone)
    assert again.score == 1.0 and again.differences == []


def test_events_the_checkpoint_passed_but_redis_lost_are_named(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 1500, bad_ratio=0.0)
    client = redis.Redis.from_url(redis_process.url)
    run_to_end(redis_process.url, store_process.uri, projections=("portfolio",))
    (user,) = busiest(client, 1)
    pf = KeySpace("portfolio")
    older = client.hgetall(pf.portfolio(user))
    with EventStore(store_process.uri) as store:
        trade = {"tradeId": "late-1", "userId": user, "pair": "BTC-USD", "side": "buy", "amount": 0.5, "price": 60000.0,
                 "amountUsd": 30000.0, "exchange": "binance", "executedAt": "2026-01-09T00:00:00Z"}
        store.append(f"trades-{user}", [ProposedEvent("TradeExecuted", trade)])
    run_to_end(redis_process.url, store_process.uri, projections=("portfolio",))
    client.hset(pf.portfolio(user), mapping={k.decode(): v for k, v in older.items()})  # a failover lost the last write

    report = check_users(client, EventStore(store_process.uri), [user], ["portfolio"])

    counted = next(d for d in report.differences if d.field == "tradeCount")
    assert counted.event is not None and counted.event.stream == f"trades-{user}"
    assert "lost writes" in counted.cause and counted.event.position > int(older[b"lastPosition"])


@contextmanager
def live_traffic(redis_process: RedisProcess, store_process: StoreProcess, names: tuple[str, ...], seed: int
                 ) -> Iterator[None]:
    """The live projectors of ``names``, caught up, while a thread appends about 200 events a second."""
    runners = [Runner(config(name, redis_process.url, store_process.uri, exit_when_caught_up=False)) for name in names]
    threads = [in_thread(r) for r in runners]
    wait_until(lambda: all(r.caught_up for r in runners), 60, what="the live projectors to catch up")
    stop = threading.Event()

    def append_live() -> None:  # the same users trading on
        events = Market(seed=seed, users=40, pairs=4, exchanges=2).events(1_000_000)
        with EventStore(store_process.uri) as store:
            while not stop.is_set():
                append_events(store, (next(events) for _ in range(10)), batch_size=1)
                stop.wait(0.05)

    appender = threading.Thread(target=append_live, daemon=True)
    appender.start()
    try:
        yield
    finally:
        stop.set()
        appender.join(10)
        for runner in runners:
            runner.stop()
        for thread, errors in threads:
            thread.join(15)
            assert errors == []


def test_a_consistent_store_under_live_appends_reports_no_difference(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 2000, bad_ratio=0.0)
    client = redis.Redis.from_url(redis_process.url)
    with live_traffic(redis_process, store_process, USER_PROJECTIONS, seed=5):
        store = EventStore(store_process.uri)
        users = busiest(client, 30)
        reports = [check_users(client, store, users) for _ in range(3)]
    assert [r.differences for r in reports] == [[], [], []]
    assert all(r.score == 1.0 and r.checked == 3 * len(users) for r in reports)
    assert checkpoint(client, "portfolio") > 0 and head_for(store_process.uri, "portfolio") > 0


def test_the_rolling_sample_covers_every_user(redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 800, bad_ratio=0.0)
    client = redis.Redis.from_url(redis_process.url)
    run_to_end(redis_process.url, store_process.uri, projections=("portfolio",))
    everyone = known_users(client)
    assert set(users_of(client, "portfolio")) <= set(everyone)
    size = max(1, len(everyone) // 3)
    seen: set[str] = set()
    for _ in range(len(everyone) // size + 1):
        sample = rolling_sample(client, size)
        assert len(sample) == size
        seen.update(sample)
    assert seen == set(everyone)


def test_keys_evicted_under_maxmemory_are_found_and_a_repair_restores_them(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    client, store = projected(redis_process, store_process, 2500)
    everyone = known_users(client)
    victims = busiest(client, 3)
    pf, rk = KeySpace("portfolio"), KeySpace("risk")
    for user in victims:  # eligible for eviction (volatile-lru evicts only keys with a time to live)
        client.expire(pf.portfolio(user), 86_400)
        client.expire(rk.user_risk(user), 86_400)
    client.config_set("maxmemory-policy", "volatile-lru")
    client.config_set("maxmemory", str(int(client.info("memory")["used_memory"]) + 2**20))
    try:
        for i in range(8):  # more than the limit: Redis evicts the volatile keys, then refuses
            client.set(f"filler:{i}", b"x" * 2**19)
    except redis.exceptions.OutOfMemoryError:
        pass
    finally:
        client.config_set("maxmemory", "0")
        client.delete(*[f"filler:{i}" for i in range(8)])
    assert not any(client.exists(pf.portfolio(u), rk.user_risk(u)) for u in victims), "Redis must have evicted them"

    report = check_users(client, store, everyone)

    assert sorted(report.users_to_repair) == sorted(victims)
    gone = {(d.user, d.key) for d in report.differences if d.kind == MISSING_KEY and d.field == ""}
    assert gone == {(u, k) for u in victims for k in (f"portfolio:{u}", f"user-risk:{u}")}
    assert all("checkpoint is intact" in d.cause for d in report.differences if (d.user, d.key) in gone)
    for user in report.users_to_repair:
        rebuild_user(client, store, user)
    assert check_users(client, store, everyone).differences == []


def test_a_projection_emptied_while_its_checkpoint_survived_is_reported_as_such(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 1200, bad_ratio=0.0)
    client = redis.Redis.from_url(redis_process.url)
    run_to_end(redis_process.url, store_process.uri, projections=("risk",))
    ks = KeySpace("risk")
    checkpoint = client.get(ks.checkpoint)
    client.flushdb()  # Redis emptied ...
    client.set(ks.checkpoint, checkpoint)  # ... and the checkpoint restored (or kept on a replica that survived)

    report = check_sample(client, EventStore(store_process.uri), 10, ["risk"])

    (emptied,) = report.differences
    assert (emptied.projection, emptied.kind) == ("risk", MISSING_KEY)
    assert "read models missing while the checkpoint is intact" in emptied.cause
    assert report.score == 0.0 and report.checked == 1


def test_a_full_check_compares_every_read_model_including_the_shared_ones(
        redis_process: RedisProcess, store_process: StoreProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    append_market(store_process.uri, 2500, bad_ratio=0.02)  # bad events too: parked by the projector, skipped by the replay
    client = redis.Redis.from_url(redis_process.url)
    run_to_end(redis_process.url, store_process.uri)
    store = EventStore(store_process.uri)
    clean = check_everything(client, store)
    assert clean.differences == [] and clean.score == 1.0
    assert set(clean.per_projection) == {"portfolio", "risk", "market", "leaderboards"}
    assert all(counts["checked"] > 1 for counts in clean.per_projection.values())

    (user,) = busiest(client, 1)
    pf, mk = KeySpace("portfolio"), KeySpace("market")
    client.zadd(pf.portfolio_values(), {"ghost-user": 1.0})  # a stray ranking member no event explains
    client.hset(pf.portfolio(user), "costBasis", "1.0")
    pair = next(k for k in map(bytes.decode, client.scan_iter(match=mk.market_pair("*"), _type="hash")))
    client.hset(pair, "lastPosition", "1")
    client.delete(mk.volume_24h())

    report = check_everything(client, store)

    found = {(d.projection, d.user, d.key, d.field, d.kind) for d in report.differences}
    assert ("portfolio", "", "portfolio-values", "ghost-user", MEMBER_EXTRA) in found
    assert ("portfolio", user, f"portfolio:{user}", "costBasis", VALUE_DIFFERS) in found
    assert ("market", "", mk.name_of(pair), "lastPosition", VALUE_DIFFERS) in found
    assert ("market", "", "volume-24h", "", MISSING_KEY) in found
    assert len(found) == 4 and report.users_to_repair == [user]
    explained = next(d for d in report.differences if d.user == user)
    assert explained.event is not None and "outside writer" in explained.cause
    assert report.per_projection["risk"]["checked"] == report.per_projection["risk"]["consistent"]
    monkeypatch.setattr(full_check, "READER_AFTER", 0)  # a long replay's events come from a reader child process
    again = check_everything(client, store)
    assert again.differences == report.differences and again.checked == report.checked


def test_a_full_check_finds_a_ranking_score_changed_by_hand_and_a_repair_restores_it(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    client, store = projected(redis_process, store_process, 1500)
    user, other = busiest(client, 2)
    pf, rk = KeySpace("portfolio"), KeySpace("risk")
    client.zadd(pf.portfolio_values(), {user: 1.0})
    client.zrem(rk.user_risk_scores(), other)

    report = check_everything(client, store)

    found = {(d.projection, d.user, d.key, d.field, d.kind) for d in report.differences}
    assert found == {("portfolio", user, "portfolio-values", user, SCORE_DIFFERS),
                     ("risk", other, "user-risk-scores", other, MEMBER_MISSING)}
    assert sorted(report.users_to_repair) == sorted([user, other]) and report.score is not None and report.score < 1
    for name in report.users_to_repair:
        rebuild_user(client, store, name)
    assert check_everything(client, store).differences == []


def test_a_full_check_under_live_appends_reports_no_difference(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 2000, bad_ratio=0.0)
    client = redis.Redis.from_url(redis_process.url)
    with live_traffic(redis_process, store_process, ("portfolio", "risk", "market", "leaderboards"), seed=9):
        reports = [check_everything(client, EventStore(store_process.uri)) for _ in range(2)]
    assert [r.differences for r in reports] == [[], []]
    assert all(r.score == 1.0 for r in reports)


def test_a_parked_event_of_the_user_is_named_beside_the_cause(redis_process: RedisProcess,
                                                               store_process: StoreProcess) -> None:
    append_market(store_process.uri, 1200, bad_ratio=0.0)
    client = redis.Redis.from_url(redis_process.url)
    run_to_end(redis_process.url, store_process.uri, projections=("portfolio",))
    (user,) = busiest(client, 1)
    with EventStore(store_process.uri) as store:  # a poison event of the user: parked by the projector
        store.append(f"trades-{user}", [ProposedEvent("TradeExecuted", {"tradeId": "t-bad", "userId": user, "amount": "oops"})])
    run_to_end(redis_process.url, store_process.uri, projections=("portfolio",))
    client.hset(KeySpace("portfolio").portfolio(user), "tradeCount", "7")

    report = check_users(client, EventStore(store_process.uri), [user], ["portfolio"])

    (difference,) = report.differences
    assert difference.parked_event and "is parked" in difference.cause and "poison event" in difference.cause
    assert client.hexists(keys.parked("portfolio"), difference.parked_event)
