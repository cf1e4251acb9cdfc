"""Fuzzed events in the real store: every projection parks them, naming the field, and goes on.

What a fuzzer found: a number too large for a float crashed the projector with OverflowError.
Here such events (and their cousins: nesting too deep for a parser, lone surrogates, impossible
dates, bytes that are not JSON) sit between good events in a real embedded store; each
projection must run to the end, park each of them with the field and the reason, fold the good
events and move its checkpoint to the head. Valid but absurd events whose fold raises are parked
as well (reason "fold failed: ..."), by the projections whose fold they break.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from projections import keys
from projections.actions import retry_parked
from projections.eventstore import EventStore, ProposedEvent
from projections.projector.runner import Runner
from projections.queries import ParkedEvent, Queries
from projections.readmodels import PROJECTIONS
from projections.readmodels import model as model_of
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections.helpers import checkpoint, config, head_for, in_thread, run_to_end
from tests.waiting import wait_until

AT = "2026-01-05T10:00:00Z"
DEEP = b"[" * 100_000 + b"]" * 100_000  # orjson refuses it; Python's parser recurses to its limit


def trade(**over: Any) -> dict[str, Any]:
    data = {"tradeId": "t-1", "userId": "alice", "pair": "BTC-USD", "side": "buy", "amount": 2.0, "price": 100.0,
            "amountUsd": 200.0, "exchange": "binance", "executedAt": AT}
    data.update(over)
    return data


def price(**over: Any) -> dict[str, Any]:
    data = {"exchange": "binance", "pair": "BTC-USD", "price": 101.0, "volume": 3.0, "spread": 0.01, "timestamp": AT}
    data.update(over)
    return data


def with_literal(data: dict[str, Any], name: str, literal: str) -> bytes:
    """``data`` as JSON with field ``name`` set to raw JSON text json.dumps cannot write."""
    return json.dumps({**data, name: "@@literal@@"}).replace('"@@literal@@"', literal).encode()


@dataclass
class Fuzzed:
    """An event that must be parked by every projection reading its type, naming ``field``."""

    stream: str
    type: str
    raw: bytes
    field: str
    reason: str
    proposed: ProposedEvent = field(init=False)

    def __post_init__(self) -> None:
        self.proposed = ProposedEvent(self.type, {}, raw_data=self.raw)

    @property
    def event_id(self) -> str:
        return str(self.proposed.id)


def fuzzed_events() -> list[Fuzzed]:
    huge = "4" + "0" * 399  # 400 digits: Python's JSON reads it as an int that float() refuses
    return [
        Fuzzed("prices-binance", "PriceUpdated", with_literal(price(), "price", huge), "price", "too large for a number"),
        Fuzzed("trades-mallory", "TradeExecuted", with_literal(trade(userId="mallory"), "price", huge), "price", "too large"),
        Fuzzed("trades-mallory", "TradeExecuted", with_literal(trade(userId="mallory"), "amount", "1" + "0" * 5000),
               "amount", "too large for a number"),
        Fuzzed("trades-mallory", "TradeExecuted", with_literal(trade(userId="mallory"), "amountUsd", "1e400"),
               "amountUsd", "not a finite number"),
        Fuzzed("trades-mallory", "TradeExecuted", DEEP, "data", "nested too deeply"),
        Fuzzed("trades-mallory", "TradeExecuted", with_literal(trade(), "userId", '"\\ud800"'), "userId", "bad id"),
        Fuzzed("trades-mallory", "TradeExecuted", with_literal(trade(userId="mallory"), "price", '{"usd": 1}'),
               "price", "expected a number, got dict"),
        Fuzzed("trades-mallory", "TradeExecuted", with_literal(trade(userId="mallory"), "executedAt", '"0000-01-01T00:00:00Z"'),
               "executedAt", "bad timestamp"),
        Fuzzed("trades-mallory", "TradeExecuted", with_literal(trade(userId="mallory"), "pair", '"BTC\\u0000-USD"'),
               "pair", "bad pair"),
        Fuzzed("trades-mallory", "TradeExecuted", b"[1, 2]", "data", "expected a JSON object"),
        Fuzzed("prices-binance", "PriceUpdated", b"", "data", "not JSON"),
        Fuzzed("prices-binance", "PriceUpdated", with_literal(price(), "timestamp", '"2026-01-05T10:00:00+25:00"'),
               "timestamp", "bad timestamp"),
        Fuzzed("portfolio-mallory", "PortfolioRebalanced",
               with_literal({"userId": "mallory", "newTotalValue": 1.0, "rebalancedAt": AT}, "newPositions", '{"BTC-USD": ' + huge + "}"),
               "newPositions.BTC-USD", "too large for a number"),
        Fuzzed("portfolio-mallory", "PositionClosed",
               with_literal({"userId": "mallory", "pair": "BTC-USD", "closureValue": 1.0}, "closedAt", '"9999-12-31T23:59:59-01:00"'),
               "closedAt", "out of range"),
        Fuzzed("risk-mallory", "RiskAlertAcknowledged",
               with_literal({"userId": "mallory", "alertId": "a-1", "acknowledgedBy": "ops", "at": AT}, "note", '"\\ud800"'),
               "note", "lone surrogate"),
    ]


# Valid but absurd: a trade on 0001-01-01 (the leaderboards' 30-day window would start before
# year 1) and a second trade of ~1.7e308 USD on another pair the same day (the sum of the two
# overflows: in the portfolio's fold, and in the risk state's daily exposure when it is rendered).
ANCIENT = ProposedEvent("TradeExecuted", trade(tradeId="t-old", userId="ancient", executedAt="0001-01-01T00:00:00Z"))
WHALE_1 = ProposedEvent("TradeExecuted", trade(tradeId="w-1", userId="whale", pair="BTC-USD", amountUsd=1.7e308))
WHALE_2 = ProposedEvent("TradeExecuted", trade(tradeId="w-2", userId="whale", pair="ETH-USD", amountUsd=1.7e308))
OVERFLOW = "fold failed: OverflowError: intermediate overflow in fsum"
FOLD_FAILURES = {"portfolio": {str(WHALE_2.id): OVERFLOW}, "risk": {str(WHALE_2.id): OVERFLOW},
                 "leaderboards": {str(ANCIENT.id): "fold failed: OverflowError: date value out of range"}}


def append_mix(uri: str, bad: list[Fuzzed]) -> None:
    """Good events, each fuzzed event and the absurd ones, interleaved in ``$all``; a good event last."""
    with EventStore(uri) as store:
        store.append("trades-alice", [ProposedEvent("TradeExecuted", trade())])
        store.append("prices-binance", [ProposedEvent("PriceUpdated", price())])
        for index, item in enumerate(bad):
            store.append(item.stream, [item.proposed])
            if index == len(bad) // 2:
                store.append("trades-ancient", [ANCIENT])
                store.append("trades-whale", [WHALE_1, WHALE_2])
        store.append("trades-bob", [ProposedEvent("TradeExecuted", trade(tradeId="t-2", userId="bob", amount=1.0))])


def parked_by_id(queries: Queries, projection: str) -> dict[str, ParkedEvent]:
    return {p.event_id: p for p in queries.parked_events(projection, limit=1000)}


@pytest.mark.parametrize("reader_process_after", [-1, 0], ids=["in-process", "reader-process"])
def test_catch_up_parks_every_fuzzed_event_and_folds_the_good_ones(
    redis_process: RedisProcess, store_process: StoreProcess, reader_process_after: int,
) -> None:
    bad = fuzzed_events()
    append_mix(store_process.uri, bad)
    # small batches, so the reader process (after the first batch) reads most of the fuzzed events
    run_to_end(redis_process.url, store_process.uri, batch_size=4, reader_process_after=reader_process_after)  # returns: none died

    client = redis.Redis.from_url(redis_process.url)
    queries = Queries(client)
    with EventStore(store_process.uri) as store:
        end = store.client.get_commit_position()
    for name in PROJECTIONS:
        # at the head of its types; past it (to the store's last checkpoint) only if the last event is not one of them
        head, types = head_for(store_process.uri, name), model_of(name).event_types
        assert checkpoint(client, name) == head if "TradeExecuted" in types else head <= checkpoint(client, name) <= end, name
        parked = parked_by_id(queries, name)
        expected = [item for item in bad if item.type in model_of(name).event_types]
        for item in expected:
            record = parked.get(item.event_id)
            assert record is not None, f"{name}: {item.type} with a bad {item.field} was not parked"
            assert (record.field, record.type, record.stream) == (item.field, item.type, item.stream), name
            assert item.reason in record.reason, (name, record.reason)
        failures = {event_id: record.reason for event_id, record in parked.items()
                    if event_id not in {item.event_id for item in expected}}
        assert failures == FOLD_FAILURES.get(name, {}), name

    alice, bob = queries.portfolio_summary("alice"), queries.portfolio_summary("bob")
    assert alice is not None and alice.positions == {"BTC-USD": 2.0} and alice.trade_count == 1
    assert bob is not None and bob.positions == {"BTC-USD": 1.0}
    assert queries.portfolio_summary("mallory") is None  # every one of mallory's events was bad
    ancient = queries.portfolio_summary("ancient")  # year 1 is a valid time: only the leaderboards cannot fold it
    assert ancient is not None and ancient.trade_count == 1
    whale, whale_risk = queries.portfolio_summary("whale"), queries.risk_profile("whale")  # the first trade folded
    assert whale is not None and whale.trade_count == 1 and whale_risk is not None and whale_risk.trades_today == 1
    market = queries.pair_detail("BTC-USD")
    assert market is not None and market.last_price == 101.0


def test_a_live_projector_parks_fuzzed_events_and_keeps_going(redis_process: RedisProcess, store_process: StoreProcess) -> None:
    client = redis.Redis.from_url(redis_process.url)
    queries = Queries(client)
    runner = Runner(config("leaderboards", redis_process.url, store_process.uri, exit_when_caught_up=False))
    thread, errors = in_thread(runner)
    wait_until(lambda: runner.caught_up, 20, what="the projector to go live")
    bad = fuzzed_events()[1]  # a trade with a 400-digit price
    with EventStore(store_process.uri) as store:
        store.append(bad.stream, [bad.proposed])
        wait_until(lambda: bad.event_id in parked_by_id(queries, "leaderboards"), 20, what="the fuzzed trade to be parked")
        assert parked_by_id(queries, "leaderboards")[bad.event_id].field == "price"

        store.append("trades-ancient", [ANCIENT])  # decodes, but its fold raises
        wait_until(lambda: str(ANCIENT.id) in parked_by_id(queries, "leaderboards"), 20, what="the absurd trade to be parked")

        store.append("trades-alice", [ProposedEvent("TradeExecuted", trade())])
        wait_until(lambda: queries.user_rank("alice").volume_rank is not None, 20, what="the good trade to be folded")
        head = head_for(store_process.uri, "leaderboards")
    wait_until(lambda: checkpoint(client, "leaderboards") == head, 20, what="the checkpoint to reach the head")
    assert runner.status.parked == 2 and thread.is_alive()
    runner.stop()
    thread.join(10)
    assert not thread.is_alive() and errors == []


def test_a_fold_failure_is_parked_under_the_stop_policy_too(redis_process: RedisProcess, store_process: StoreProcess) -> None:
    """``stop`` is for events that fail to decode; a valid event whose fold raises is always parked."""
    with EventStore(store_process.uri) as store:
        store.append("trades-ancient", [ANCIENT])
        store.append("trades-alice", [ProposedEvent("TradeExecuted", trade())])
    runner = Runner(config("leaderboards", redis_process.url, store_process.uri, on_bad_event="stop"))
    runner.run()  # returns: no ProjectionStopped
    queries = Queries(redis.Redis.from_url(redis_process.url))
    assert parked_by_id(queries, "leaderboards")[str(ANCIENT.id)].reason == FOLD_FAILURES["leaderboards"][str(ANCIENT.id)]
    assert runner.status.parked == 1 and queries.user_rank("alice").volume_rank is not None


def test_a_retried_fold_failure_stays_parked_marked_retried(redis_process: RedisProcess, store_process: StoreProcess) -> None:
    client = redis.Redis.from_url(redis_process.url)
    queries = Queries(client)
    with EventStore(store_process.uri) as store:
        store.append("trades-ancient", [ANCIENT])
    runner = Runner(config("leaderboards", redis_process.url, store_process.uri, exit_when_caught_up=False, lease_ms=600))
    thread, errors = in_thread(runner)
    event_id = str(ANCIENT.id)
    wait_until(lambda: event_id in parked_by_id(queries, "leaderboards"), 20, what="the absurd trade to be parked")

    retry_parked(client, "leaderboards", event_id)  # re-read, decoded again, and its fold fails again
    wait_until(lambda: json.loads(client.hget(keys.parked("leaderboards"), keys.parked_member("trades-ancient", event_id)))["retried"], 20, what="the retry")
    record = parked_by_id(queries, "leaderboards")[event_id]
    assert (record.field, record.reason, record.retried) == ("data", FOLD_FAILURES["leaderboards"][event_id], True)
    assert runner.status.parked == 1 and thread.is_alive()
    runner.stop()
    thread.join(10)
    assert not thread.is_alive() and errors == []
