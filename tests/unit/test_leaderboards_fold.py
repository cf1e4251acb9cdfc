"""Leaderboard folds: daily volume per UTC day with a 7-day window, strategy performance."""
from __future__ import annotations

from datetime import timedelta

import pytest

from projections.keys import KeySpace
from projections.readmodels.clock import CLOCK, Clock, evolve_clock
from projections.readmodels.leaderboards import MODEL, Strategy, Trader, evolve_strategy, evolve_trader
from tests.unit.eventfactory import T0, trade

KS = KeySpace("leaderboards")


def test_daily_volume_per_utc_day_keeps_seven_days() -> None:
    t = Trader("alice")
    for d in range(9):
        t = evolve_trader(t, trade(T0 + timedelta(days=d), amountUsd=10.0 * (d + 1)))  # type: ignore[arg-type]
    assert sorted(t.volumes) == [f"2025-03-{d:02d}" for d in range(3, 10)]
    t = evolve_trader(t, trade(T0 + timedelta(days=8, hours=1), amountUsd=1.0))  # type: ignore[arg-type]
    assert t.volumes["2025-03-09"] == 91.0
    out = MODEL.render(KS, ("trader", "alice"), t)
    assert out.zsets[KS.daily_volume_leaders("2025-03-09")] == {"alice": 91.0}
    assert KS.daily_volume_leaders("2025-03-02") not in out.zsets


def test_strategy_roi_from_realised_pnl() -> None:
    s = evolve_strategy(Strategy("momo"), trade(amount=2.0, amountUsd=200.0))  # type: ignore[arg-type]
    s = evolve_strategy(s, trade(side="sell", amount=2.0, amountUsd=250.0))  # type: ignore[arg-type]
    assert s.trades == 2 and s.volume == 450.0 and s.positions == {}
    assert s.realized_pnl == pytest.approx(50.0) and s.roi == pytest.approx(25.0)


def test_trades_without_strategy_touch_only_trader_and_clock() -> None:
    assert MODEL.touches(trade(strategyId=None)) == (("trader", "alice"), CLOCK)
    assert ("strategy", "momo") in MODEL.touches(trade())


def test_clock_only_moves_forward() -> None:
    c = evolve_clock(Clock(), 10)
    assert evolve_clock(c, 5) is c and evolve_clock(c, 11).at == 11
