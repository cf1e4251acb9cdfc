"""Builders of recorded events for the pure unit tests (esdbclient's own dataclass, no mocks)."""
from __future__ import annotations

import itertools
import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from esdbclient import RecordedEvent

from projections.events import Decoded, DomainEvent, Ignored, decode
from projections.simulation.market import Market

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
_positions = itertools.count(100)


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


_HOMES = {"TradeExecuted": "trades-{userId}", "PortfolioRebalanced": "portfolio-{userId}",
          "PositionClosed": "portfolio-{userId}", "RiskAlertAcknowledged": "risk-{userId}",
          "PriceUpdated": "prices-{exchange}", "RiskLevelChanged": "published-risk-{userId}",
          "PortfolioSignificantlyUpdated": "published-portfolio-{userId}", "CanaryAppended": "lucent-canary"}


def home(type_: str, data: Any) -> str:
    """The stream the catalog binds an event of ``type_`` with ``data`` to ("s-1" when ``data`` names no owner)."""
    try:
        return _HOMES[type_].format(**data)
    except (KeyError, TypeError, AttributeError, IndexError, ValueError):
        return "s-1"


def recorded(type_: str, data: Any, stream: str | None = None, position: int | None = None, raw: bytes | None = None
             ) -> RecordedEvent:
    pos = next(_positions) * 10 if position is None else position
    stream = home(type_, data) if stream is None else stream
    return RecordedEvent(
        type=type_,
        data=raw if raw is not None else json.dumps(data).encode(),
        metadata=b"{}",
        content_type="application/json",
        id=uuid.uuid5(uuid.NAMESPACE_OID, f"{type_}-{pos}"),
        stream_name=stream,
        stream_position=0,
        commit_position=pos,
        prepare_position=pos,
        recorded_at=T0,
    )


def ok(event: RecordedEvent) -> DomainEvent:
    decoded: Decoded = decode(event)
    assert not hasattr(decoded, "envelope") or type(decoded).__name__ != "Ignored"
    return decoded  # type: ignore[return-value]


def trade_data(**over: Any) -> dict[str, Any]:
    data = {
        "tradeId": "t-1", "userId": "alice", "pair": "BTC-USD", "side": "buy", "amount": 1.0,
        "price": 100.0, "amountUsd": 100.0, "exchange": "binance", "strategyId": "momo", "executedAt": iso(T0),
    }
    data.update(over)
    return data


def trade(at: datetime = T0, position: int | None = None, **over: Any) -> DomainEvent:
    return ok(recorded("TradeExecuted", trade_data(executedAt=iso(at), **over), f"trades-{over.get('userId', 'alice')}", position))


def price_data(**over: Any) -> dict[str, Any]:
    data = {"exchange": "binance", "pair": "BTC-USD", "price": 100.0, "volume": 5.0, "spread": 0.01, "timestamp": iso(T0)}
    data.update(over)
    return data


def price(at: datetime = T0, position: int | None = None, **over: Any) -> DomainEvent:
    return ok(recorded("PriceUpdated", price_data(timestamp=iso(at), **over), f"prices-{over.get('exchange', 'binance')}", position))


def rebalanced(positions: dict[str, float], total: float, at: datetime = T0, user: str = "alice") -> DomainEvent:
    data = {"userId": user, "newPositions": positions, "newTotalValue": total, "rebalancedAt": iso(at)}
    return ok(recorded("PortfolioRebalanced", data, f"portfolio-{user}"))


def closed(pair: str, value: float, at: datetime = T0, user: str = "alice") -> DomainEvent:
    data = {"userId": user, "pair": pair, "closureValue": value, "closedAt": iso(at)}
    return ok(recorded("PositionClosed", data, f"portfolio-{user}"))


def acknowledged(alert_id: str, at: datetime = T0, user: str = "alice") -> DomainEvent:
    data = {"userId": user, "alertId": alert_id, "acknowledgedBy": "ops.jane", "note": "called the client", "at": iso(at)}
    return ok(recorded("RiskAlertAcknowledged", data, f"risk-{user}"))


def valid_data(type_: str) -> dict[str, Any]:
    """A valid payload of each catalog type (every field set), for tests that spoil one field."""
    at = iso(T0)
    return {
        "TradeExecuted": trade_data,
        "PriceUpdated": price_data,
        "PortfolioRebalanced": lambda: {"userId": "alice", "newPositions": {"BTC-USD": 1.5}, "newTotalValue": 150.0, "rebalancedAt": at},
        "PositionClosed": lambda: {"userId": "alice", "pair": "BTC-USD", "closureValue": 10.0, "closedAt": at},
        "RiskAlertAcknowledged": lambda: {"userId": "alice", "alertId": "alert-1", "acknowledgedBy": "ops.jane",
                                          "note": "called", "at": at},
        "RiskLevelChanged": lambda: {"userId": "alice", "oldLevel": "medium", "newLevel": "high", "riskScore": 6.5,
                                     "reasons": ["daily volume $200,000"], "sourceEventId": "e-1", "at": at},
        "PortfolioSignificantlyUpdated": lambda: {"userId": "alice", "oldValue": 10_000.0, "newValue": 12_500.0,
                                                  "sourceEventId": "e-1", "at": at},
        "CanaryAppended": lambda: {"canaryId": "c-1", "appendedAt": "2025-03-01T12:00:00.123Z"},
    }[type_]()


def with_literal(data: dict[str, Any], field: str, literal: str) -> bytes:
    """``data`` as JSON with ``field`` set to the raw JSON text ``literal`` (which json.dumps could
    not write: a 5000-digit integer, a lone surrogate escape, ...)."""
    marker = "@@lucent-literal@@"
    text = json.dumps({**data, field: marker})
    return text.replace(json.dumps(marker), literal).encode()


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def simulated(n: int, seed: int = 5, users: int = 12) -> list[DomainEvent]:
    """``n`` events of a small simulated market, decoded, at commit positions 7, 14, ..."""
    out: list[DomainEvent] = []
    for i, (stream, proposed) in enumerate(Market(seed=seed, users=users, pairs=3, exchanges=3).events(n)):
        new = proposed.to_new_event()
        event = decode(RecordedEvent(type=new.type, data=new.data, metadata=new.metadata, content_type=new.content_type,
                                     id=new.id, stream_name=stream, stream_position=0, commit_position=(i + 1) * 7,
                                     prepare_position=(i + 1) * 7))
        if not isinstance(event, Ignored):
            out.append(event)
    return out
