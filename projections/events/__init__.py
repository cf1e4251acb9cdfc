"""The event catalog (DESIGN.md): its types (:mod:`.catalog`) and their decoding (:mod:`.decode`).

Contract of :func:`decode`: given a recorded event it returns one of the catalog's events, :class:`Ignored` for a
type the catalog does not know (new types are ignored on purpose, not parked), or raises
:class:`~projections.errors.BadEvent` naming the field and the reason — also for an event of the catalog outside
the one stream the catalog binds its type to (:func:`home_stream`). Decoding is total: the only exception that
leaves :func:`decode` is ``BadEvent``.
"""
from __future__ import annotations

from projections.events.catalog import (
    CANARY_STREAM,
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
    event_time,
    home_stream,
    is_identifier,
    is_pair,
    portfolio_stream,
    prices_stream,
    published_portfolio_stream,
    published_risk_stream,
    risk_stream,
    trades_stream,
    user_streams,
)
from projections.events.decode import EVENT_TYPES, decode, envelope_of

__all__ = [
    "CANARY_STREAM", "CANARY_TYPE", "EVENT_TYPES", "NOTE_MAX", "REASONS_MAX", "RISK_LEVELS", "CanaryAppended", "Decoded",
    "DomainEvent", "Envelope", "Ignored", "PortfolioRebalanced", "PortfolioSignificantlyUpdated", "PositionClosed",
    "PriceUpdated", "Recorded", "RecordedLike", "RiskAlertAcknowledged", "RiskLevelChanged", "TradeExecuted", "decode",
    "envelope_of", "event_time", "home_stream", "is_identifier", "is_pair", "portfolio_stream", "prices_stream",
    "published_portfolio_stream", "published_risk_stream", "risk_stream", "trades_stream", "user_streams",
]
