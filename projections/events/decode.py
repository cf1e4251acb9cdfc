"""Decode and validate: a recorded event to one of the catalog's (:mod:`projections.events.catalog`).

Contract of :func:`decode`: given a recorded event (anything with ``type``,
``data``, ``id``, ``stream_name``, ``commit_position`` and ``recorded_at``) it
returns one of the catalog's events, or :class:`Ignored` for a type the
catalog does not know (new types are ignored on purpose, not parked), or
raises :class:`~projections.errors.BadEvent` naming the field and the reason —
also for an event of the catalog outside the one stream the catalog binds its type
to (:func:`home_stream`; field ``stream``).
Decoding is total: whatever bytes an event carries (numbers too large for a
float, nesting too deep for a parser, lone surrogates, impossible dates), the
only exception that leaves :func:`decode` is ``BadEvent`` — the runner parks
it (DESIGN.md invariant 5) and nothing an event carries can stop a projector.
A decoded event's numbers are finite floats (``-0.0`` is read as ``0.0``) and
its times lie in years 1–9999 UTC.

Times are carried as integer epoch milliseconds (UTC) taken from the event's
own fields, so every fold computes days, hours and expiries from event time.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import orjson

from projections.errors import BadEvent
from projections.events.catalog import (
    _ID,
    _PAIR,
    CANARY_TYPE,
    NOTE_MAX,
    REASONS_MAX,
    RISK_LEVELS,
    CanaryAppended,
    Decoded,
    DomainEvent,
    Envelope,
    Ignored,
    PortfolioRebalanced,
    PortfolioSignificantlyUpdated,
    PositionClosed,
    PriceUpdated,
    Recorded,
    RecordedLike,
    RiskAlertAcknowledged,
    RiskLevelChanged,
    TradeExecuted,
    home_stream,
)

REASON_MAX = 200  # chars of an unexpected exception's message kept in a parked event's reason
# Epoch ms of 0001-01-01T00:00Z and of the last whole ms of 9999-12-31 UTC: the folds turn
# event times into UTC days, and a day outside years 1-9999 cannot be named.
_MIN_MS = -62_135_596_800_000

_MAX_MS = 253_402_300_799_999



class _TooLarge:
    """What the slow JSON path reads an integer as when Python refuses to convert it (over
    ``sys.get_int_max_str_digits()`` digits), so the field check can name its field."""

    __slots__ = ()
_TOO_LARGE = _TooLarge()



def _parse_int(text: str) -> int | _TooLarge:
    try:
        return int(text)
    except ValueError:
        return _TOO_LARGE
# The slow path: names the field of a NaN/Infinity or a huge integer that orjson rejects.
_JSON = json.JSONDecoder(parse_int=_parse_int)



def _printable(text: str) -> str:
    """``text`` as is, or escaped where it holds what a field name must not (NUL, a lone surrogate)."""
    return text if text.isascii() and text.isprintable() else ascii(text)[1:-1]


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _at_home(event: DomainEvent | CanaryAppended) -> DomainEvent | CanaryAppended:
    home = home_stream(event)
    if event.envelope.stream != home:
        whose = f"of user {event.user_id} " if hasattr(event, "user_id") else ""
        raise BadEvent("stream", f"a {event.envelope.type} {whose}belongs in stream {home}, not "
                                 f"{_printable(event.envelope.stream[:100])}; append it to {home} (every projection, "
                                 "rebuild and check reads a user's events from the user's own streams)")
    return event


def _get(data: Mapping[str, Any], name: str) -> Any:
    if name not in data or data[name] is None:
        raise BadEvent(name, "missing")
    return data[name]


def _ident(data: Mapping[str, Any], name: str) -> str:
    value = _get(data, name)
    if not isinstance(value, str):
        raise BadEvent(name, f"expected a string, got {_kind(value)}")
    if _ID.match(value) is None:
        raise BadEvent(name, "bad id: expected 1-64 chars of [A-Za-z0-9_.-]")
    return value


def _pair_value(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise BadEvent(name, f"expected a string, got {_kind(value)}")
    if _PAIR.match(value) is None:
        raise BadEvent(name, "bad pair: expected BASE-QUOTE")
    return value


def _kind(value: Any) -> str:
    """The JSON kind of ``value`` for a message ("int" for an integer too large to convert)."""
    return "int" if value is _TOO_LARGE else type(value).__name__


def _number_value(value: Any, name: str, minimum: float | None, strict: bool) -> float:
    # bool is an int subclass; a JSON true is not a number.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if value is _TOO_LARGE:
            raise BadEvent(name, "out of range: too large for a number")
        raise BadEvent(name, f"expected a number, got {_kind(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond float's range (1.8e308): Python's JSON parser keeps it exact
        raise BadEvent(name, "out of range: too large for a number") from None
    if not math.isfinite(number):
        raise BadEvent(name, "not a finite number")
    if minimum is not None and (number <= minimum if strict else number < minimum):
        raise BadEvent(name, f"out of range: must be {'>' if strict else '>='} {minimum:g}")
    return number or 0.0  # -0.0 is 0.0: a sign on zero must not show in a read model


def _number(data: Mapping[str, Any], name: str, minimum: float | None = None, strict: bool = False) -> float:
    return _number_value(_get(data, name), name, minimum, strict)


def _timestamp(data: Mapping[str, Any], name: str) -> int:
    value = _get(data, name)
    if not isinstance(value, str):
        raise BadEvent(name, f"bad timestamp: expected an ISO-8601 string, got {_kind(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:  # also year 0, month 13, an offset of 24 h or more, a NUL or a lone surrogate
        raise BadEvent(name, f"bad timestamp: {value[:40]!r} is not ISO-8601") from None
    if moment.tzinfo is None:
        raise BadEvent(name, "bad timestamp: no UTC offset")
    ms = int(moment.timestamp() * 1000)
    if not _MIN_MS <= ms <= _MAX_MS:  # e.g. 0001-01-01T00:00+01:00 is still year 0 in UTC
        raise BadEvent(name, "bad timestamp: out of range: before year 1 or after year 9999 in UTC")
    return ms


def _trade(env: Envelope, d: Mapping[str, Any]) -> TradeExecuted:
    side = _get(d, "side")
    if side not in ("buy", "sell"):
        raise BadEvent("side", "expected 'buy' or 'sell'")
    strategy = d.get("strategyId")
    return TradeExecuted(
        envelope=env,
        trade_id=_ident(d, "tradeId"),
        user_id=_ident(d, "userId"),
        pair=_pair_value(_get(d, "pair"), "pair"),
        side=side,
        amount=_number(d, "amount", 0.0, strict=True),
        price=_number(d, "price", 0.0, strict=True),
        amount_usd=_number(d, "amountUsd", 0.0),
        exchange=_ident(d, "exchange"),
        strategy_id=None if strategy is None else _ident(d, "strategyId"),
        executed_at=_timestamp(d, "executedAt"),
    )


def _price(env: Envelope, d: Mapping[str, Any]) -> PriceUpdated:
    spread = d.get("spread")
    return PriceUpdated(
        envelope=env,
        exchange=_ident(d, "exchange"),
        pair=_pair_value(_get(d, "pair"), "pair"),
        price=_number(d, "price", 0.0, strict=True),
        volume=_number(d, "volume", 0.0),
        spread=None if spread is None else _number(d, "spread", 0.0),
        timestamp=_timestamp(d, "timestamp"),
    )


def _rebalanced(env: Envelope, d: Mapping[str, Any]) -> PortfolioRebalanced:
    raw = _get(d, "newPositions")
    if not isinstance(raw, dict):
        raise BadEvent("newPositions", f"expected an object, got {_kind(raw)}")
    positions = {}
    for pair, amount in raw.items():
        field = f"newPositions.{_printable(str(pair)[:40])}"
        positions[_pair_value(pair, field)] = _number_value(amount, field, None, False)
    return PortfolioRebalanced(
        envelope=env,
        user_id=_ident(d, "userId"),
        new_positions=positions,
        new_total_value=_number(d, "newTotalValue", 0.0),
        rebalanced_at=_timestamp(d, "rebalancedAt"),
    )


def _closed(env: Envelope, d: Mapping[str, Any]) -> PositionClosed:
    return PositionClosed(
        envelope=env,
        user_id=_ident(d, "userId"),
        pair=_pair_value(_get(d, "pair"), "pair"),
        closure_value=_number(d, "closureValue"),
        closed_at=_timestamp(d, "closedAt"),
    )


def _acknowledged(env: Envelope, d: Mapping[str, Any]) -> RiskAlertAcknowledged:
    note = d.get("note", "")
    if note is None:
        note = ""
    if not isinstance(note, str):
        raise BadEvent("note", f"expected a string, got {_kind(note)}")
    if len(note) > NOTE_MAX:
        raise BadEvent("note", f"out of range: longer than {NOTE_MAX} chars")
    if not note.isascii() and not _is_unicode(note):
        # only Python's JSON parser lets "\ud800" through; UTF-8 (Redis, the console) cannot carry it
        raise BadEvent("note", "not valid Unicode: a lone surrogate")
    return RiskAlertAcknowledged(
        envelope=env,
        user_id=_ident(d, "userId"),
        alert_id=_ident(d, "alertId"),
        acknowledged_by=_ident(d, "acknowledgedBy"),
        note=note,
        at=_timestamp(d, "at"),
    )


def _level(d: Mapping[str, Any], name: str) -> str:
    value = _get(d, name)
    if not isinstance(value, str) or value not in RISK_LEVELS:
        raise BadEvent(name, f"expected one of {', '.join(RISK_LEVELS)}")
    return value


def _reasons(d: Mapping[str, Any]) -> tuple[str, ...]:
    raw = _get(d, "reasons")
    if not isinstance(raw, list):
        raise BadEvent("reasons", f"expected a list, got {_kind(raw)}")
    if len(raw) > REASONS_MAX:
        raise BadEvent("reasons", f"out of range: more than {REASONS_MAX} reasons")
    for index, reason in enumerate(raw):
        if not isinstance(reason, str) or not 0 < len(reason) <= REASON_MAX or not _is_unicode(reason):
            raise BadEvent(f"reasons.{index}", f"expected a string of 1-{REASON_MAX} chars of valid Unicode")
    return tuple(raw)


def _level_changed(env: Envelope, d: Mapping[str, Any]) -> RiskLevelChanged:
    score = _number(d, "riskScore", 0.0)
    if score > 10.0:
        raise BadEvent("riskScore", "out of range: must be <= 10")
    return RiskLevelChanged(env, _ident(d, "userId"), _level(d, "oldLevel"), _level(d, "newLevel"), score, _reasons(d),
                            _ident(d, "sourceEventId"), _timestamp(d, "at"))


def _significant(env: Envelope, d: Mapping[str, Any]) -> PortfolioSignificantlyUpdated:
    return PortfolioSignificantlyUpdated(env, _ident(d, "userId"), _number(d, "oldValue"), _number(d, "newValue"),
                                         _ident(d, "sourceEventId"), _timestamp(d, "at"))


_DECODERS: dict[str, Callable[[Envelope, Mapping[str, Any]], DomainEvent]] = {
    "TradeExecuted": _trade,
    "PriceUpdated": _price,
    "PortfolioRebalanced": _rebalanced,
    "PositionClosed": _closed,
    "RiskAlertAcknowledged": _acknowledged,
    "RiskLevelChanged": _level_changed,
    "PortfolioSignificantlyUpdated": _significant,
}


def _canary(env: Envelope, d: Mapping[str, Any]) -> CanaryAppended:
    return CanaryAppended(env, _ident(d, "canaryId"), _timestamp(d, "appendedAt"))


_CONTROL: dict[str, Callable[[Envelope, Mapping[str, Any]], CanaryAppended]] = {CANARY_TYPE: _canary}
EVENT_TYPES: tuple[str, ...] = (*_DECODERS, *_CONTROL)



_ENVELOPED = (Recorded, TradeExecuted, PriceUpdated, PortfolioRebalanced, PositionClosed, RiskAlertAcknowledged,
              RiskLevelChanged, PortfolioSignificantlyUpdated, Ignored)


def envelope_of(raw: Recorded | Decoded | RecordedLike) -> Envelope:
    """The envelope of a recorded or decoded event (no validation of the payload)."""
    if isinstance(raw, CanaryAppended):
        return raw.envelope
    if isinstance(raw, _ENVELOPED):
        return raw.envelope
    recorded = raw.recorded_at
    if recorded is None:
        recorded_ms = 0
    else:  # a naive recorded time is UTC (the store's clock)
        recorded_ms = int((recorded if recorded.tzinfo else recorded.replace(tzinfo=timezone.utc)).timestamp() * 1000)
    return Envelope(
        event_id=str(raw.id),
        stream=raw.stream_name,
        position=int(raw.commit_position or 0),
        type=raw.type,
        recorded_at=recorded_ms,
    )


def decode(raw: Recorded | RecordedLike) -> Decoded:
    """Decode and validate ``raw``; see the module docstring for the contract.

    Total: any exception but ``BadEvent`` while reading the payload (a case the field readers
    did not foresee) becomes ``BadEvent("data", "<ExceptionType>: <message>")``, because the
    runner parks BadEvents and must never die of an event.
    """
    env = envelope_of(raw)
    decoder = _DECODERS.get(env.type) or _CONTROL.get(env.type)
    if decoder is None:
        return Ignored(env)
    try:  # free in CPython 3.11 when nothing is raised: the fast path stays fast
        return _at_home(decoder(env, _payload(raw.data)))
    except BadEvent:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence, see the docstring
        raise BadEvent("data", _unexpected(exc)) from exc


def _payload(data: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        value = _lenient_json(data)
    if not isinstance(value, dict):
        raise BadEvent("data", f"expected a JSON object, got {_kind(value)}")
    return value


def _lenient_json(data: bytes) -> Any:
    """Python's reader, which also takes NaN/Infinity, huge integers and lone surrogates (all of
    which orjson rejects), so the field check can name the field."""
    try:
        return _JSON.decode(data.decode("utf-8"))
    except RecursionError:  # orjson stops at 1024 levels; Python's parser recurses until the limit
        raise BadEvent("data", "not JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadEvent("data", f"not JSON: {_printable(str(exc)[:REASON_MAX])}") from None


def _unexpected(exc: Exception) -> str:
    """``<ExceptionType>: <message>``, short and printable (it is stored and shown as a reason)."""
    message = _printable(str(exc)[:REASON_MAX])
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
