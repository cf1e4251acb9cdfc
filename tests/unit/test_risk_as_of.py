"""A user's risk as of the read side's today: no daily figures without trades that day."""
from __future__ import annotations

from datetime import datetime, timezone

from projections.readmodels.risk import Risk, as_of, evolve_trade, idle_score
from tests.unit.eventfactory import trade

DAY1 = datetime(2025, 3, 1, 15, 0, tzinfo=timezone.utc)


def whale() -> Risk:
    return evolve_trade(Risk("whale"), trade(DAY1, amountUsd=300_000.0, side="buy", pair="BTC-USD", amount=3000.0))  # type: ignore[arg-type]


def test_an_earlier_days_figures_are_none_today_and_the_score_is_concentration_alone() -> None:
    r = whale()
    assert r.day == "2025-03-01" and r.level == "critical"
    today = as_of(r, "2025-03-02")
    assert (today.day, today.daily_volume, today.daily_exposure, today.trades_today, today.largest_today) == ("2025-03-02", 0.0, 0.0, 0, 0.0)
    assert today.score == idle_score(r.concentration) == 2.0 and today.level == "low"
    assert today.largest_trade == r.largest_trade and today.positions == r.positions and today.active == r.active


def test_the_current_day_or_no_day_changes_nothing() -> None:
    r = whale()
    assert as_of(r, "2025-03-01") is r and as_of(r, "") is r and as_of(r, "2025-02-28") is r
