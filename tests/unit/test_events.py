"""The event catalog: decoding, validation, bad events named by field and reason."""
from __future__ import annotations

import json

import pytest

from projections.errors import BadEvent
from projections.events import (
    Ignored,
    PortfolioRebalanced,
    PositionClosed,
    PriceUpdated,
    RiskAlertAcknowledged,
    TradeExecuted,
    decode,
    is_identifier,
    is_pair,
)
from tests.unit.eventfactory import T0, price_data, recorded, trade_data


def test_trade_decodes_with_envelope() -> None:
    raw = recorded("TradeExecuted", trade_data(), "trades-alice", position=1234)
    event = decode(raw)
    assert isinstance(event, TradeExecuted)
    assert (event.user_id, event.pair, event.side, event.amount, event.strategy_id) == ("alice", "BTC-USD", "buy", 1.0, "momo")
    assert event.executed_at == int(T0.timestamp() * 1000)
    env = event.envelope
    assert (env.stream, env.position, env.type, env.event_id) == ("trades-alice", 1234, "TradeExecuted", str(raw.id))
    assert env.recorded_at == int(T0.timestamp() * 1000)


def test_strategy_is_optional() -> None:
    data = trade_data()
    del data["strategyId"]
    event = decode(recorded("TradeExecuted", data))
    assert isinstance(event, TradeExecuted) and event.strategy_id is None


def test_every_catalog_type_decodes() -> None:
    assert isinstance(decode(recorded("PriceUpdated", price_data())), PriceUpdated)
    reb = decode(recorded("PortfolioRebalanced", {"userId": "u1", "newPositions": {"ETH-USD": 2}, "newTotalValue": 10, "rebalancedAt": "2025-03-01T00:00:00+00:00"}))
    assert isinstance(reb, PortfolioRebalanced) and reb.new_positions == {"ETH-USD": 2.0}
    assert isinstance(decode(recorded("PositionClosed", {"userId": "u1", "pair": "ETH-USD", "closureValue": 5, "closedAt": "2025-03-01T00:00:00Z"})), PositionClosed)
    ack = decode(recorded("RiskAlertAcknowledged", {"userId": "u1", "alertId": "alert-1", "acknowledgedBy": "ops", "at": "2025-03-01T00:00:00Z"}))
    assert isinstance(ack, RiskAlertAcknowledged) and ack.note == ""


def test_unknown_type_is_ignored_not_bad() -> None:
    assert isinstance(decode(recorded("UserRegistered", None, raw=b"not even json")), Ignored)


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"amount": None}, "amount", "missing"),
        ({"amount": "1.0"}, "amount", "expected a number"),
        ({"amount": True}, "amount", "expected a number"),
        ({"amount": 0}, "amount", "out of range"),
        ({"amount": -1}, "amount", "out of range"),
        ({"price": 0.0}, "price", "out of range"),
        ({"amountUsd": -0.01}, "amountUsd", "out of range"),
        ({"userId": ""}, "userId", "bad id"),
        ({"userId": "a" * 65}, "userId", "bad id"),
        ({"userId": "al ice"}, "userId", "bad id"),
        ({"userId": "x:y"}, "userId", "bad id"),
        ({"userId": 7}, "userId", "expected a string"),
        ({"tradeId": "t/1"}, "tradeId", "bad id"),
        ({"strategyId": "no spaces"}, "strategyId", "bad id"),
        ({"pair": "BTCUSD"}, "pair", "bad pair"),
        ({"pair": "BTC-USD-X"}, "pair", "bad pair"),
        ({"side": "hold"}, "side", "buy"),
        ({"executedAt": "yesterday"}, "executedAt", "bad timestamp"),
        ({"executedAt": "2025-03-01T12:00:00"}, "executedAt", "no UTC offset"),
        ({"executedAt": 1700000000}, "executedAt", "bad timestamp"),
    ],
)
def test_bad_trade_names_field_and_reason(change: dict[str, object], field: str, reason: str) -> None:
    data = trade_data()
    data.update(change)
    if change.get(field, 1) is None:
        del data[field]
    with pytest.raises(BadEvent) as caught:
        decode(recorded("TradeExecuted", data))
    assert caught.value.field == field
    assert reason in caught.value.reason


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_bad(literal: str) -> None:
    raw = json.dumps(trade_data(price=12345.0)).replace("12345.0", literal).encode()
    with pytest.raises(BadEvent) as caught:
        decode(recorded("TradeExecuted", None, raw=raw))
    assert (caught.value.field, caught.value.reason) == ("price", "not a finite number")


@pytest.mark.parametrize(("raw", "reason"), [(b"{not json", "not JSON"), (b"\xff\xfe", "not JSON"), (b"[1,2]", "expected a JSON object")])
def test_payload_that_is_not_an_object_is_bad(raw: bytes, reason: str) -> None:
    with pytest.raises(BadEvent) as caught:
        decode(recorded("PriceUpdated", None, raw=raw))
    assert caught.value.field == "data" and reason in caught.value.reason


def test_bad_price_and_other_types() -> None:
    with pytest.raises(BadEvent, match="volume"):
        decode(recorded("PriceUpdated", price_data(volume=-1)))
    with pytest.raises(BadEvent, match="spread"):
        decode(recorded("PriceUpdated", price_data(spread="wide")))
    with pytest.raises(BadEvent, match="newPositions.BTC"):
        decode(recorded("PortfolioRebalanced", {"userId": "u", "newPositions": {"BTC": 1}, "newTotalValue": 1, "rebalancedAt": "2025-03-01T00:00:00Z"}))
    with pytest.raises(BadEvent, match="newPositions: expected an object"):
        decode(recorded("PortfolioRebalanced", {"userId": "u", "newPositions": [1], "newTotalValue": 1, "rebalancedAt": "2025-03-01T00:00:00Z"}))
    with pytest.raises(BadEvent, match="note"):
        decode(recorded("RiskAlertAcknowledged", {"userId": "u", "alertId": "a", "acknowledgedBy": "o", "note": "x" * 1001, "at": "2025-03-01T00:00:00Z"}))
    with pytest.raises(BadEvent, match="closedAt"):
        decode(recorded("PositionClosed", {"userId": "u", "pair": "A-B", "closureValue": 1}))


def test_identifier_and_pair_predicates() -> None:
    assert is_identifier("user_1.a-b") and not is_identifier("") and not is_identifier("a b")
    assert is_pair("ETH-USD") and not is_pair("ETHUSD") and not is_pair(None)
