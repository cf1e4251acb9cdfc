"""The event catalog: decoding, validation, bad events named by field and reason."""
from __future__ import annotations

import json
import math
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.errors import BadEvent
from projections.events import (
    EVENT_TYPES,
    CanaryAppended,
    Envelope,
    Ignored,
    PortfolioRebalanced,
    PortfolioSignificantlyUpdated,
    PositionClosed,
    PriceUpdated,
    Recorded,
    RiskAlertAcknowledged,
    RiskLevelChanged,
    TradeExecuted,
    decode,
    is_identifier,
    is_pair,
)
from tests.unit.eventfactory import T0, price_data, recorded, trade_data, valid_data, with_literal


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


# -- fuzzed events: decode is total (only BadEvent leaves it), and names the field ---------------

DEEP = "[" * 100_000 + "]" * 100_000  # orjson refuses it; Python's parser would recurse to the limit
TIMES = {"TradeExecuted": "executedAt", "PriceUpdated": "timestamp", "PortfolioRebalanced": "rebalancedAt",
         "PositionClosed": "closedAt", "RiskAlertAcknowledged": "at"}
TIMES["CanaryAppended"] = "appendedAt"
NUMBERS = {"TradeExecuted": "price", "PriceUpdated": "price", "PortfolioRebalanced": "newTotalValue",
           "PositionClosed": "closureValue"}
IDS = {"TradeExecuted": "tradeId", "PriceUpdated": "exchange", "PortfolioRebalanced": "userId",
       "PositionClosed": "userId", "RiskAlertAcknowledged": "alertId"}
IDS["CanaryAppended"] = "canaryId"


def _fuzzed_fields() -> list[Any]:
    cases: list[Any] = []
    for type_, field in NUMBERS.items():
        cases += [
            pytest.param(type_, field, "4" + "0" * 399, field, "too large for a number", id=f"{type_}-400-digit-int"),
            pytest.param(type_, field, "-4" + "0" * 399, field, "too large for a number", id=f"{type_}-400-digit-negative"),
            pytest.param(type_, field, "1" + "0" * 5000, field, "too large for a number", id=f"{type_}-5000-digit-int"),
            pytest.param(type_, field, "1e400", field, "not a finite number", id=f"{type_}-1e400"),
            pytest.param(type_, field, '{"value": 1}', field, "expected a number, got dict", id=f"{type_}-object-for-number"),
            pytest.param(type_, field, "[1]", field, "expected a number, got list", id=f"{type_}-array-for-number"),
            pytest.param(type_, field, DEEP, "data", "nested too deeply", id=f"{type_}-deep-nesting-in-field"),
        ]
    for type_, field in IDS.items():
        cases += [
            pytest.param(type_, field, '"\\ud800"', field, "bad id", id=f"{type_}-lone-surrogate-id"),
            pytest.param(type_, field, '"a\\u0000b"', field, "bad id", id=f"{type_}-nul-in-id"),
            pytest.param(type_, field, json.dumps("x" * 1_000_000), field, "bad id", id=f"{type_}-huge-string-id"),
            pytest.param(type_, field, "1" + "0" * 5000, field, "expected a string, got int", id=f"{type_}-huge-int-id"),
        ]
    for type_, field in TIMES.items():
        cases += [
            pytest.param(type_, field, '"0000-01-01T00:00:00+00:00"', field, "bad timestamp", id=f"{type_}-year-0"),
            pytest.param(type_, field, '"0001-01-01T00:00:00+01:00"', field, "out of range", id=f"{type_}-year-0-in-utc"),
            pytest.param(type_, field, '"9999-12-31T23:59:59-01:00"', field, "out of range", id=f"{type_}-year-10000-in-utc"),
            pytest.param(type_, field, '"10000-01-01T00:00:00+00:00"', field, "bad timestamp", id=f"{type_}-year-10000"),
            pytest.param(type_, field, '"2025-03-01T00:00:00+25:00"', field, "bad timestamp", id=f"{type_}-offset-25h"),
            pytest.param(type_, field, '"2025-03-01T00:00:00\\ud800Z"', field, "bad timestamp", id=f"{type_}-surrogate-in-time"),
            pytest.param(type_, field, '{"at": 1}', field, "bad timestamp", id=f"{type_}-object-for-time"),
        ]
    for type_ in ("TradeExecuted", "PriceUpdated", "PositionClosed"):
        cases.append(pytest.param(type_, "pair", '"BTC\\u0000-USD"', "pair", "bad pair", id=f"{type_}-nul-in-pair"))
    cases += [
        pytest.param("TradeExecuted", "side", '{"buy": true}', "side", "buy", id="object-for-side"),
        pytest.param("TradeExecuted", "amount", "true", "amount", "expected a number, got bool", id="true-for-number"),
        pytest.param("PortfolioRebalanced", "newPositions", '{"BTC-USD": ' + "9" * 400 + "}", "newPositions.BTC-USD",
                     "too large for a number", id="huge-position"),
        pytest.param("PortfolioRebalanced", "newPositions", '{"BTC-USD": {"a": 1}}', "newPositions.BTC-USD",
                     "expected a number", id="object-for-position"),
        pytest.param("PortfolioRebalanced", "newPositions", '{"BTC\\u0000-USD": 1}', "newPositions.BTC\\x00-USD",
                     "bad pair", id="nul-in-position-pair"),
        pytest.param("PortfolioRebalanced", "newPositions", '{"\\ud800": 1}', "newPositions.\\ud800",
                     "bad pair", id="surrogate-position-pair"),
        pytest.param("RiskAlertAcknowledged", "note", '"called \\ud800"', "note", "lone surrogate", id="surrogate-in-note"),
    ]
    return cases


@pytest.mark.parametrize(("type_", "field", "literal", "named", "reason"), _fuzzed_fields())
def test_fuzzed_field_is_bad_and_named(type_: str, field: str, literal: str, named: str, reason: str) -> None:
    with pytest.raises(BadEvent) as caught:  # anything but BadEvent fails the test
        decode(recorded(type_, None, raw=with_literal(valid_data(type_), field, literal)))
    assert (caught.value.field, reason in caught.value.reason) == (named, True), caught.value.reason
    assert caught.value.reason.isprintable() and len(caught.value.reason) < 300  # it is stored and shown


@pytest.mark.parametrize("type_", EVENT_TYPES)
@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not JSON"),
        (b"\x00", "not JSON"),
        (b"\xff\xfe{}", "not JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b'"just a string"', "expected a JSON object, got str"),
        (b"1" + b"0" * 5000, "expected a JSON object, got int"),
        (DEEP.encode(), "nested too deeply"),
        (b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
    ],
    ids=["empty", "nul", "not-utf8", "array", "string", "5000-digits", "deep-array", "deep-object"],
)
def test_fuzzed_payload_is_bad(type_: str, raw: bytes, reason: str) -> None:
    with pytest.raises(BadEvent) as caught:
        decode(recorded(type_, None, raw=raw))
    assert caught.value.field == "data" and reason in caught.value.reason, caught.value.reason


def test_an_unforeseen_failure_is_still_a_bad_event() -> None:
    """The last line of defence: data that is not even bytes fails inside the JSON fallback."""
    raw = Recorded(Envelope("e-1", "s-1", 10, "PriceUpdated", 0), cast(bytes, None))
    with pytest.raises(BadEvent) as caught:
        decode(raw)
    assert caught.value.field == "data" and caught.value.reason.startswith("AttributeError: ")


def test_edges_that_are_valid() -> None:
    """Years 1 and 9999 in UTC are valid times; -0.0 is read as 0.0; a NUL in a note is text."""
    first = decode(recorded("TradeExecuted", trade_data(executedAt="0001-01-01T00:00:00+00:00", amountUsd=-0.0)))
    assert isinstance(first, TradeExecuted) and first.executed_at == -62_135_596_800_000
    assert first.amount_usd == 0.0 and math.copysign(1.0, first.amount_usd) == 1.0
    last = decode(recorded("PriceUpdated", price_data(timestamp="9999-12-31T23:59:59+00:00")))
    assert isinstance(last, PriceUpdated) and last.timestamp == 253_402_300_799_000
    ack = decode(recorded("RiskAlertAcknowledged", {**valid_data("RiskAlertAcknowledged"), "note": "a\x00b é"}))
    assert isinstance(ack, RiskAlertAcknowledged) and ack.note == "a\x00b é"


# -- property: for any JSON in any field, decode returns a sane catalog event or a BadEvent ---------

_offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59))
_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10**600), max_value=10**600)
    | st.floats() | st.text()  # floats include nan and +-inf (json writes NaN/Infinity), text lone surrogates
    | st.datetimes(timezones=st.builds(timezone, _offsets)).map(datetime.isoformat)
    | st.sampled_from(["BTC-USD", "alice", "buy", "sell", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
)
JSON_VALUES = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12,
)
FUZZ = settings(max_examples=200, deadline=None, database=None)
_CONTROL_KINDS = {"CanaryAppended": CanaryAppended}
_KINDS = {"TradeExecuted": TradeExecuted, "PriceUpdated": PriceUpdated, "PortfolioRebalanced": PortfolioRebalanced,
          "PositionClosed": PositionClosed, "RiskAlertAcknowledged": RiskAlertAcknowledged,
          "RiskLevelChanged": RiskLevelChanged, "PortfolioSignificantlyUpdated": PortfolioSignificantlyUpdated}


def assert_sane(event: Any) -> None:
    """A decoded event's numbers are finite and its times within years 1-9999 UTC."""
    for f in fields(event):
        value = getattr(event, f.name)
        if isinstance(value, float):
            assert math.isfinite(value), f.name
        if f.name in ("executed_at", "timestamp", "rebalanced_at", "closed_at", "at", "appended_at"):
            assert -62_135_596_800_000 <= value <= 253_402_300_799_999, f.name
    for amount in getattr(event, "new_positions", {}).values():
        assert math.isfinite(amount)


@pytest.mark.parametrize("type_", EVENT_TYPES)
@FUZZ
@given(data=st.data(), value=JSON_VALUES)
def test_any_json_in_any_field_decodes_or_is_bad_there(type_: str, data: st.DataObject, value: Any) -> None:
    payload = valid_data(type_)
    field = data.draw(st.sampled_from(sorted(payload)), label="field")
    payload[field] = value
    raw = json.dumps(payload).encode()  # ensure_ascii: a lone surrogate travels as "\\ud800"
    try:
        event = decode(recorded(type_, payload, raw=raw))  # in the stream the (fuzzed) payload names
    except BadEvent as exc:
        assert exc.field == field or exc.field.startswith(field + "."), (exc.field, exc.reason)
        return
    assert isinstance(event, {**_KINDS, **_CONTROL_KINDS}[type_])
    assert_sane(event)


@pytest.mark.parametrize("type_", EVENT_TYPES)
@FUZZ
@given(raw=st.binary(max_size=400) | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
def test_any_bytes_decode_or_are_bad(type_: str, raw: bytes) -> None:
    try:
        event = decode(recorded(type_, None, raw=raw))
    except BadEvent:
        return
    assert isinstance(event, {**_KINDS, **_CONTROL_KINDS}[type_])
    assert_sane(event)


# -- each type lives in one stream: a user's events are the user's streams' (issue 21, item 1) --------


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_an_event_in_its_home_stream_decodes_and_elsewhere_is_bad_naming_its_stream(type_: str) -> None:
    payload = valid_data(type_)
    home = decode(recorded(type_, payload))
    assert not isinstance(home, Ignored)
    for elsewhere in ("trades-import-1", "trades-someone-else", "s-1"):
        with pytest.raises(BadEvent) as bad:
            decode(recorded(type_, payload, stream=elsewhere))
        assert bad.value.field == "stream"
        assert f"belongs in stream {home.envelope.stream}, not {elsewhere}" in bad.value.reason


def test_a_trade_of_one_user_in_another_users_stream_is_bad() -> None:
    with pytest.raises(BadEvent, match="TradeExecuted of user alice belongs in stream trades-alice, not trades-bob"):
        decode(recorded("TradeExecuted", trade_data(userId="alice"), stream="trades-bob"))
