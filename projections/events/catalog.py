"""The event catalog (DESIGN.md): one frozen dataclass per event type, where each type lives (the catalog binds
every type to one stream), and what an identifier and a pair are. Decoding and validation are
:mod:`projections.events.decode`'s.

Times are carried as integer epoch milliseconds (UTC) taken from the event's own fields, so every fold computes
days, hours and expiries from event time.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}\Z")
# BASE-QUOTE: two identifier-ish parts without dashes of their own.
_PAIR = re.compile(r"[A-Za-z0-9_.]{1,31}-[A-Za-z0-9_.]{1,31}\Z")
NOTE_MAX = 1000
RISK_LEVELS = ("low", "medium", "high", "critical")
REASONS_MAX = 10  # reasons a RiskLevelChanged may carry (the risk read model gives at most 4)


class RecordedLike(Protocol):
    """The part of esdbclient's RecordedEvent that decoding needs."""

    @property
    def type(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def id(self) -> Any: ...
    @property
    def stream_name(self) -> str: ...
    @property
    def commit_position(self) -> int | None: ...
    @property
    def recorded_at(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class Envelope:
    """Where an event sits in the store: id, stream, commit position, type, recorded time (ms)."""

    event_id: str
    stream: str
    position: int
    type: str
    recorded_at: int


@dataclass(frozen=True, slots=True)
class Recorded:
    """An event as the store recorded it: where it sits, and its raw JSON data.

    The subscription builds these straight from the gRPC messages (see
    :mod:`projections.eventstore`); ``is_checkpoint``/``is_caught_up`` are
    False so a loop can tell events from the subscription's markers.
    """

    envelope: Envelope
    data: bytes
    is_checkpoint: ClassVar[bool] = False
    is_caught_up: ClassVar[bool] = False

    @property
    def commit_position(self) -> int:
        return self.envelope.position


@dataclass(frozen=True, slots=True)
class TradeExecuted:
    envelope: Envelope
    trade_id: str
    user_id: str
    pair: str
    side: str
    amount: float
    price: float
    amount_usd: float
    exchange: str
    strategy_id: str | None
    executed_at: int


@dataclass(frozen=True, slots=True)
class PriceUpdated:
    envelope: Envelope
    exchange: str
    pair: str
    price: float
    volume: float
    spread: float | None
    timestamp: int


@dataclass(frozen=True, slots=True)
class PortfolioRebalanced:
    envelope: Envelope
    user_id: str
    new_positions: Mapping[str, float]
    new_total_value: float
    rebalanced_at: int


@dataclass(frozen=True, slots=True)
class PositionClosed:
    envelope: Envelope
    user_id: str
    pair: str
    closure_value: float
    closed_at: int


@dataclass(frozen=True, slots=True)
class RiskAlertAcknowledged:
    envelope: Envelope
    user_id: str
    alert_id: str
    acknowledged_by: str
    note: str
    at: int


@dataclass(frozen=True, slots=True)
class RiskLevelChanged:
    """Published by the live risk projection when a user's level changes (see :mod:`projections.published`)."""

    envelope: Envelope
    user_id: str
    old_level: str
    new_level: str
    risk_score: float
    reasons: tuple[str, ...]
    source_event_id: str
    at: int  # the causing event's time


@dataclass(frozen=True, slots=True)
class PortfolioSignificantlyUpdated:
    """Published by the live portfolio projection when a user's value moves past the threshold."""

    envelope: Envelope
    user_id: str
    old_value: float
    new_value: float
    source_event_id: str
    at: int  # the causing event's time


@dataclass(frozen=True, slots=True)
class Ignored:
    """An event of a type the catalog does not know: skipped, not parked."""

    envelope: Envelope


CANARY_TYPE = "CanaryAppended"
CANARY_STREAM = "lucent-canary"


@dataclass(frozen=True, slots=True)
class CanaryAppended:
    """The freshness canary beat appends (see :mod:`projections.projector.canary`): every projection
    subscribes to it, no fold touches it, only the live runner records it. ``appended_at`` is the
    appender's clock (epoch ms), not business time: never a DomainEvent, so no fold can meet it."""

    envelope: Envelope
    canary_id: str
    appended_at: int


DomainEvent = (TradeExecuted | PriceUpdated | PortfolioRebalanced | PositionClosed | RiskAlertAcknowledged
               | RiskLevelChanged | PortfolioSignificantlyUpdated)
Decoded = DomainEvent | CanaryAppended | Ignored


# -- where each type lives: the catalog binds every type to one stream ----------------------
# A user's events are the events of the user's own streams and nothing else (DESIGN.md: one
# definition for the live projector, a full rebuild, a per-user rebuild, a consistency check and
# its explanation). An event of the catalog found in another stream (an import or migration stream,
# another user's stream) is a bad event: every path decodes through :func:`decode`, so every path
# parks or skips it alike, and a repair can never remove what a fresh projection keeps.


def trades_stream(user_id: str) -> str:
    """The stream of a user's trades (``TradeExecuted``)."""
    return f"trades-{user_id}"


def portfolio_stream(user_id: str) -> str:
    """The stream of a user's portfolio events (``PortfolioRebalanced``, ``PositionClosed``)."""
    return f"portfolio-{user_id}"


def risk_stream(user_id: str) -> str:
    """The stream of a user's risk events (``RiskAlertAcknowledged``)."""
    return f"risk-{user_id}"


def prices_stream(exchange: str) -> str:
    """The stream of an exchange's prices (``PriceUpdated``)."""
    return f"prices-{exchange}"


def published_risk_stream(user_id: str) -> str:
    """The stream of what the live risk projection published about a user (``RiskLevelChanged``)."""
    return f"published-risk-{user_id}"


def published_portfolio_stream(user_id: str) -> str:
    """The stream of what the live portfolio projection published (``PortfolioSignificantlyUpdated``)."""
    return f"published-portfolio-{user_id}"


def user_streams(user_id: str) -> tuple[str, ...]:
    """The streams that hold one user's events: trades, portfolio events, risk events (the catalog's)."""
    return (trades_stream(user_id), portfolio_stream(user_id), risk_stream(user_id))


def home_stream(event: DomainEvent | CanaryAppended) -> str:
    """The one stream the catalog puts ``event`` in."""
    if isinstance(event, TradeExecuted):
        return trades_stream(event.user_id)
    if isinstance(event, (PortfolioRebalanced, PositionClosed)):
        return portfolio_stream(event.user_id)
    if isinstance(event, RiskAlertAcknowledged):
        return risk_stream(event.user_id)
    if isinstance(event, PriceUpdated):
        return prices_stream(event.exchange)
    if isinstance(event, RiskLevelChanged):
        return published_risk_stream(event.user_id)
    if isinstance(event, PortfolioSignificantlyUpdated):
        return published_portfolio_stream(event.user_id)
    return CANARY_STREAM


def is_identifier(value: object) -> bool:
    """True for 1–64 chars of ``[A-Za-z0-9_.-]``."""
    return isinstance(value, str) and _ID.match(value) is not None


def is_pair(value: object) -> bool:
    """True for ``BASE-QUOTE``."""
    return isinstance(value, str) and _PAIR.match(value) is not None


def event_time(event: DomainEvent) -> int:
    """The business time of ``event`` in epoch ms (the time every fold uses)."""
    if isinstance(event, TradeExecuted):
        return event.executed_at
    if isinstance(event, PriceUpdated):
        return event.timestamp
    if isinstance(event, PortfolioRebalanced):
        return event.rebalanced_at
    if isinstance(event, PositionClosed):
        return event.closed_at
    return event.at
