"""The domain events the live projector publishes back to the store, and their pure builder.

Contract:

* :func:`builder_for` gives a projection's builder (risk and portfolio have one), called by
  :func:`projections.projector.fold.fold_batch` once per event with the touched entities'
  states before and after it. It is pure: the same event and states give the same
  :class:`Outgoing` events, ids included, however batches are cut.
* ``RiskLevelChanged``: the user's risk level differs after the event (up or down), with the
  score and the risk read model's alert reasons of the new state.
* ``PortfolioSignificantlyUpdated``: the user's market value moved, in one event, by at least
  ``min_usd`` and by more than ``ratio`` of its old value (:class:`SignificantMove`, default
  10 % and $1,000; a first value counts as a move from 0).
* Ids are uuid5 of the causing event's stream and id and the published type, so a batch folded
  again (a retry, a restart) yields the same ids and the store keeps one of each, and causes with
  one id in two streams (event ids are unique only within a stream) publish two events. Metadata:
  ``causationId`` is the causing event, ``correlationId`` the cause's own (filled in by the
  publisher from the cause's metadata, the cause's id if it has none).
* Streams (decision): ``published-risk-<userId>`` and ``published-portfolio-<userId>``,
  not the catalog's ``risk-``/``portfolio-`` streams, so a per-user rebuild, which reads
  those, never reads what was published; no projection subscribes to these types.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from projections.events import DomainEvent, event_time, published_portfolio_stream, published_risk_stream
from projections.readmodels import model
from projections.readmodels.base import Ref
from projections.readmodels.portfolio import Portfolio
from projections.readmodels.risk import Risk, alert_reasons

RISK_LEVEL_CHANGED = "RiskLevelChanged"
PORTFOLIO_SIGNIFICANTLY_UPDATED = "PortfolioSignificantlyUpdated"
NAMESPACE = uuid.UUID("5b0c6a52-3d4e-4f1a-9c7e-1f0d2a8b6c11")  # of published ids: never change it
SOURCE = "lucent-projector"

Builder = Callable[[DomainEvent, Mapping[Ref, Any], Mapping[Ref, Any]], Sequence["Outgoing"]]


def published_streams(user_id: str) -> tuple[str, ...]:
    """The streams that hold what was published about one user."""
    return (published_risk_stream(user_id), published_portfolio_stream(user_id))


def published_id(source_stream: str, source_event_id: str, event_type: str) -> str:
    """The id of the ``event_type`` event the event ``source_event_id`` of ``source_stream`` caused (stable)."""
    return str(uuid.uuid5(NAMESPACE, f"{source_stream}/{source_event_id}:{event_type}"))


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event to publish: where, its id, type and data, and its cause (id and commit position)."""

    stream: str
    event_id: str
    type: str
    data: Mapping[str, Any]
    cause_id: str
    cause_position: int

    def to_json(self) -> str:
        return json.dumps({"stream": self.stream, "id": self.event_id, "type": self.type, "data": self.data,
                           "causeId": self.cause_id, "causePosition": self.cause_position}, separators=(",", ":"),
                          sort_keys=True)

    @staticmethod
    def from_json(text: str) -> Outgoing:
        d = json.loads(text)
        return Outgoing(d["stream"], d["id"], d["type"], d["data"], d["causeId"], int(d["causePosition"]))

    def metadata(self, correlation_id: str | None) -> dict[str, str]:
        return {"causationId": self.cause_id, "correlationId": correlation_id or self.cause_id, "source": SOURCE}


@dataclass(frozen=True, slots=True)
class SignificantMove:
    """A portfolio value move worth publishing: at least ``min_usd`` and more than ``ratio`` of the old value."""

    ratio: float = 0.10
    min_usd: float = 1000.0

    def crossed(self, old: float, new: float) -> bool:
        change = abs(new - old)
        return change >= self.min_usd and change > self.ratio * abs(old)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _outgoing(stream: str, type_: str, event: DomainEvent, data: dict[str, Any]) -> Outgoing:
    env = event.envelope
    data = {**data, "sourceEventId": env.event_id, "at": _iso(event_time(event))}
    return Outgoing(stream, published_id(env.stream, env.event_id, type_), type_, data, env.event_id, env.position)


def risk_published(event: DomainEvent, before: Risk, after: Risk) -> list[Outgoing]:
    """A ``RiskLevelChanged`` if the user's level differs after ``event``."""
    if after.level == before.level:
        return []
    data = {"userId": after.user_id, "oldLevel": before.level, "newLevel": after.level, "riskScore": after.score,
            "reasons": list(alert_reasons(after))}
    return [_outgoing(published_risk_stream(after.user_id), RISK_LEVEL_CHANGED, event, data)]


def portfolio_published(event: DomainEvent, before: Portfolio, after: Portfolio, move: SignificantMove) -> list[Outgoing]:
    """A ``PortfolioSignificantlyUpdated`` if the user's market value moved by ``move`` in ``event``."""
    if not move.crossed(before.market_value, after.market_value):
        return []
    data = {"userId": after.user_id, "oldValue": before.market_value, "newValue": after.market_value}
    return [_outgoing(published_portfolio_stream(after.user_id), PORTFOLIO_SIGNIFICANTLY_UPDATED, event, data)]


def builder_for(projection: str, move: SignificantMove) -> Builder | None:
    """The builder of ``projection``'s published events (None: its read model publishes nothing). Each builder
    answers to the states it knows by their type (a risk profile, a portfolio), not to a projection's name."""
    if not model(projection).publishes:
        return None

    def build(event: DomainEvent, before: Mapping[Ref, Any], after: Mapping[Ref, Any]) -> list[Outgoing]:
        """One pass over the entities the event changed (``before`` holds every touched one): per event, on the
        live projector's path."""
        out: list[Outgoing] = []
        for ref, state in after.items():
            old = before.get(ref)
            if state is old:
                continue
            if isinstance(state, Risk) and isinstance(old, Risk):
                out.extend(risk_published(event, old, state))
            elif isinstance(state, Portfolio) and isinstance(old, Portfolio):
                out.extend(portfolio_published(event, old, state, move))
        return out

    return build
