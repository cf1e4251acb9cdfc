"""The published domain events' builder: one event per cause, none without one, stable ids."""
from __future__ import annotations

import json
import uuid
from typing import Any

from esdbclient import RecordedEvent

from projections.events import DomainEvent, PortfolioSignificantlyUpdated, RiskLevelChanged, decode
from projections.keys import KeySpace
from projections.projector.fold import fold_batch
from projections.published import (
    PORTFOLIO_SIGNIFICANTLY_UPDATED,
    RISK_LEVEL_CHANGED,
    Outgoing,
    SignificantMove,
    builder_for,
    portfolio_published,
    published_id,
    risk_published,
)
from projections.readmodels.portfolio import MODEL as PORTFOLIO
from projections.readmodels.portfolio import Portfolio
from projections.readmodels.risk import MODEL as RISK
from projections.readmodels.risk import Risk, evolve_trade
from tests.unit.eventfactory import T0, minutes, trade

BIG = {"amount": 1.0, "price": 60_000.0, "amountUsd": 60_000.0}  # each adds 1.2 + concentration to the score


def big_trades(n: int, user: str = "alice") -> list[DomainEvent]:
    return [trade(T0 + minutes(i), userId=user, tradeId=f"t-{i}", **BIG) for i in range(n)]


def fold_published(model: Any, events: list[DomainEvent], cut: int | None = None) -> list[Outgoing]:
    """What a live projector would publish folding ``events`` in batches of ``cut`` (all at once: None)."""
    build = builder_for(model.name, SignificantMove())
    ks, states, out = KeySpace(model.name), {}, []
    size = cut or len(events)
    for start in range(0, len(events), size):
        result = fold_batch(model, ks, states, events[start : start + size], publish=build)
        states = {**states, **result.changed}
        out.extend(result.published)
    return out


def as_recorded(item: Outgoing, position: int = 10_000) -> RecordedEvent:
    return RecordedEvent(type=item.type, data=json.dumps(item.data).encode(), metadata=b"{}", content_type="application/json",
                         id=uuid.UUID(item.event_id), stream_name=item.stream, stream_position=0, commit_position=position,
                         prepare_position=position)


def test_a_level_change_publishes_one_event_with_the_alert_reasons() -> None:
    event = trade(userId="alice", amount=40.0, price=50_000.0, amountUsd=2_000_000.0)
    before = Risk("alice")
    after = evolve_trade(before, event)  # type: ignore[arg-type]
    [out] = risk_published(event, before, after)
    assert (out.type, out.stream, out.cause_id, out.cause_position) == (
        RISK_LEVEL_CHANGED, "published-risk-alice", event.envelope.event_id, event.envelope.position)
    assert out.event_id == published_id(event.envelope.stream, event.envelope.event_id, RISK_LEVEL_CHANGED)
    assert (out.data["oldLevel"], out.data["newLevel"]) == ("low", "critical")
    assert out.data["reasons"] == list(next(iter(after.active.values())).reasons)
    decoded = decode(as_recorded(out))
    assert isinstance(decoded, RiskLevelChanged) and decoded.reasons == tuple(out.data["reasons"])
    assert decoded.source_event_id == event.envelope.event_id and decoded.at == event.executed_at  # type: ignore[union-attr]


def test_no_level_change_publishes_nothing() -> None:
    event = trade(userId="alice", amountUsd=100.0)
    assert risk_published(event, Risk("alice"), evolve_trade(Risk("alice"), event)) == []  # type: ignore[arg-type]


def test_one_event_per_cause_and_the_same_ids_however_batches_are_cut() -> None:
    # scores 4.42 (medium), 5.64, 6.86 (high), 7.28, then a $100,000 trade: 8.1 (critical)
    events = [*big_trades(4), trade(T0 + minutes(9), userId="alice", tradeId="t-9", amount=1.0, price=100_000.0,
                                    amountUsd=100_000.0)]
    whole = fold_published(RISK, events)
    assert [(o.data["oldLevel"], o.data["newLevel"]) for o in whole] == [("low", "medium"), ("medium", "high"),
                                                                         ("high", "critical")]
    assert [o.cause_id for o in whole] == [events[0].envelope.event_id, events[2].envelope.event_id,
                                           events[4].envelope.event_id]
    assert fold_published(RISK, events, cut=1) == whole == fold_published(RISK, events)
    assert len({o.event_id for o in whole}) == 3


def test_a_portfolio_move_under_the_threshold_publishes_nothing() -> None:
    move = SignificantMove(0.10, 1000.0)
    event = trade(userId="alice")
    assert portfolio_published(event, Portfolio("alice", market_value=100_000.0), Portfolio("alice", market_value=109_000.0),
                               move) == []  # 9 %: under 10 %
    assert portfolio_published(event, Portfolio("alice", market_value=5_000.0), Portfolio("alice", market_value=5_900.0),
                               move) == []  # 18 % but $900: under $1,000
    [out] = portfolio_published(event, Portfolio("alice", market_value=100_000.0),
                                Portfolio("alice", market_value=89_000.0), move)
    assert (out.type, out.data["oldValue"], out.data["newValue"]) == (PORTFOLIO_SIGNIFICANTLY_UPDATED, 100_000.0, 89_000.0)
    assert isinstance(decode(as_recorded(out)), PortfolioSignificantlyUpdated)


def test_a_folded_portfolio_publishes_its_significant_moves_only() -> None:
    events = [trade(T0, userId="bob", tradeId="t-0", amount=1.0, price=10_000.0, amountUsd=10_000.0),  # 0 -> 10,000
              trade(T0 + minutes(1), userId="bob", tradeId="t-1", amount=0.05, price=10_000.0, amountUsd=500.0),  # +5 %
              trade(T0 + minutes(2), userId="bob", tradeId="t-2", amount=1.0, price=10_000.0, amountUsd=10_000.0)]
    out = fold_published(PORTFOLIO, events)
    assert [o.cause_id for o in out] == [events[0].envelope.event_id, events[2].envelope.event_id]
    assert fold_published(PORTFOLIO, events, cut=1) == out


def test_projections_without_published_events_have_no_builder() -> None:
    assert builder_for("market", SignificantMove()) is None and builder_for("leaderboards", SignificantMove()) is None
