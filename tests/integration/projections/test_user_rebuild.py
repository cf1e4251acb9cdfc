"""Per-user rebuild: one user's read models refolded from the store equal a full replay, fenced against live events."""
from __future__ import annotations

import threading
from typing import Any

import redis

from projections import keys
from projections.events import PriceUpdated, decode
from projections.eventstore import EventStore, ProposedEvent
from projections.keys import KeySpace
from projections.maintenance.user_fold import latest_prices
from projections.maintenance.user_rebuild import rebuild_user
from projections.projector.runner import Runner
from projections.queries import Queries
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections.helpers import append_market, checkpoint, config, head_for, in_thread, keyspace, run_to_end
from tests.waiting import wait_until


def replayed(client: redis.Redis) -> dict[str, Any]:
    """The read models without the state epoch (a per-user rebuild bumps it, a replay does not)."""
    return {k: v for k, v in keyspace(client).items() if not k.endswith(":state-epoch")}


def busiest_users(client: redis.Redis, n: int) -> list[str]:
    return [r.user_id for r in Queries(client).top_portfolios(n)]


def user_keys(client: redis.Redis, user: str) -> list[str]:
    """Every key that is this user's own, in every projection."""
    pf, rk, lb = KeySpace("portfolio"), KeySpace("risk"), KeySpace("leaderboards")
    own = [pf.portfolio(user), pf.portfolio_positions(user), pf.portfolio_history(user), rk.user_risk(user), lb.trader(user)]
    return [k for k in own if client.exists(k)]


def test_rebuilding_a_user_whose_keys_were_deleted_restores_a_full_replays_values(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 2500, bad_ratio=0.0)
    client = redis.Redis.from_url(redis_process.url)
    run_to_end(redis_process.url, store_process.uri)
    full = replayed(client)
    user, other = busiest_users(client, 2)
    assert user_keys(client, user), "the simulated user must have read models"
    client.delete(*user_keys(client, user))  # e.g. evicted, or a failover lost the writes
    client.zrem(KeySpace("portfolio").portfolio_values(), user)
    client.zrem(KeySpace("risk").user_risk_scores(), user)
    assert replayed(client) != full

    done = rebuild_user(client, EventStore(store_process.uri), user)

    assert replayed(client) == full
    assert {p.projection for p in done.projections} == {"portfolio", "risk", "leaderboards"}
    assert all(p.events > 0 and p.writes > 0 for p in done.projections)
    again = rebuild_user(client, EventStore(store_process.uri), other)  # an intact user: nothing to write
    assert again.writes == 0 and replayed(client) == full


def test_hand_corrupted_fields_and_stray_ranking_members_are_put_right(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 2500, bad_ratio=0.0)
    client = redis.Redis.from_url(redis_process.url)
    run_to_end(redis_process.url, store_process.uri)
    full = replayed(client)
    (user,) = busiest_users(client, 1)
    pf, rk, lb = KeySpace("portfolio"), KeySpace("risk"), KeySpace("leaderboards")
    client.hset(pf.portfolio(user), mapping={"tradeCount": "99999", "marketValue": "1.5"})  # an outside writer
    client.hset(pf.portfolio_positions(user), "FAKE-USD", "3.0")
    client.zadd(pf.portfolio_history(user), {'{"position":1,"pair":"FAKE-USD"}': 1})
    client.zadd(lb.daily_volume_leaders("2001-01-01"), {user: 5.0})  # a stray member of a day the user never traded
    client.zadd(rk.user_daily_exposure(), {user: 1e12})
    client.hset(rk.risk_alert_details(), "alert-stray", f'{{"alertId":"alert-stray","userId":"{user}"}}')
    client.zadd(rk.risk_alerts(), {"alert-stray": 1})

    rebuild_user(client, EventStore(store_process.uri), user)

    assert replayed(client) == full


def test_a_live_event_for_the_user_during_the_rebuild_is_not_overwritten(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 1500, bad_ratio=0.0)
    client = redis.Redis.from_url(redis_process.url)
    runners = [Runner(config(name, redis_process.url, store_process.uri, exit_when_caught_up=False))
               for name in ("portfolio", "risk", "leaderboards")]
    threads = [in_thread(r) for r in runners]
    wait_until(lambda: all(r.caught_up for r in runners), 60, what="the live projectors to catch up")
    (user,) = busiest_users(client, 1)
    stop = threading.Event()

    def trade_live() -> None:  # the user keeps trading while operators rebuild them
        with EventStore(store_process.uri) as store:
            n = 0
            while not stop.is_set():
                n += 1
                data = {"tradeId": f"live-{n}", "userId": user, "pair": "BTC-USD", "side": "buy", "amount": 0.01,
                        "price": 64000.0, "amountUsd": 640.0, "exchange": "binance",
                        "executedAt": f"2026-01-06T00:{n // 60 % 60:02d}:{n % 60:02d}Z"}
                store.append(f"trades-{user}", [ProposedEvent("TradeExecuted", data)])
                stop.wait(0.05)  # a busy trader: 20 trades a second

    appender = threading.Thread(target=trade_live, daemon=True)
    appender.start()
    try:
        store = EventStore(store_process.uri)
        for _ in range(5):
            client.delete(KeySpace("portfolio").portfolio(user))  # damage, then repair, under live traffic
            rebuild_user(client, store, user)
    finally:
        stop.set()
        appender.join(10)
    for name in ("portfolio", "risk", "leaderboards"):
        head = head_for(store_process.uri, name)
        wait_until(lambda: checkpoint(client, name) >= head, 30, what=f"{name} to apply every live trade")
    for runner in runners:
        runner.stop()
    for thread, errors in threads:
        thread.join(15)
        assert errors == []
    live = {k: v for k, v in replayed(client).items() if user in k or k.endswith(("-values", "-scores", "-exposure"))}
    client.flushdb()
    run_to_end(redis_process.url, store_process.uri, projections=("portfolio", "risk", "leaderboards"))
    fresh = {k: v for k, v in replayed(client).items() if user in k or k.endswith(("-values", "-scores", "-exposure"))}
    assert live == fresh  # no live trade lost, none applied twice, no rebuild wrote over a newer state
    assert int(client.hget(KeySpace("portfolio").portfolio(user), "tradeCount")) > 0
    assert keys.KeySpace("portfolio").state_epoch not in keyspace(client)  # a replay writes no epoch


def test_the_latest_prices_before_a_position_come_from_one_short_backwards_read(store_process: StoreProcess) -> None:
    append_market(store_process.uri, 3000, bad_ratio=0.0)
    with EventStore(store_process.uri) as store:
        prices = [e for e in map(decode, store.read_types(["PriceUpdated"])) if isinstance(e, PriceUpdated)]
        everything = list(store.read_types(["TradeExecuted", "PriceUpdated"]))
        before = everything[len(everything) // 2].envelope.position
        pairs = {p.pair for p in prices}
        expected = {p.pair: p for p in prices if p.envelope.position < before}
        found = latest_prices(store, before, pairs | {"NEVER-PRICED"})
        newest_first = [e.envelope.position for e in store.read_types_before(["PriceUpdated"], before, page=7)]
    assert [(p.pair, p.envelope.position) for p in found] == sorted(
        ((p.pair, p.envelope.position) for p in expected.values()), key=lambda t: t[1])
    older = [p.envelope.position for p in prices if p.envelope.position < before]
    assert newest_first == older[::-1]  # pages of 7 growing: every earlier price once, newest first


def test_a_stream_is_read_in_pages_each_event_once_in_order(store_process: StoreProcess) -> None:
    with EventStore(store_process.uri) as store:
        store.append("trades-pager", [ProposedEvent("Noted", {"n": i}) for i in range(30)])
        whole = [e.envelope.event_id for e in store.read_stream("trades-pager")]
        paged = [e.envelope.event_id for e in store.read_stream("trades-pager", page=7)]
        exact = [e.envelope.event_id for e in store.read_stream("trades-pager", page=10)]  # the last page is empty
        assert list(store.read_stream("never-written", page=7)) == []
    assert len(whole) == 30 and paged == whole and exact == whole
