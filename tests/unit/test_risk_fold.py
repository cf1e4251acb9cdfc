"""Risk folds: UTC days, exposure, score and level, alerts raised once, acknowledgement."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from projections.keys import KeySpace
from projections.readmodels.risk import MODEL, Risk, alert_id_for, evolve_acknowledged, evolve_trade, risk_level, risk_score
from tests.unit.eventfactory import T0, acknowledged, minutes, trade

KS = KeySpace("risk")
MIDNIGHT = datetime(2025, 3, 2, 0, 0, tzinfo=timezone.utc)


def big(at: datetime, usd: float, side: str = "buy", pair: str = "BTC-USD", **kw: object) -> object:
    return trade(at, amountUsd=usd, side=side, pair=pair, amount=usd / 100, **kw)


def test_daily_figures_reset_at_utc_midnight() -> None:
    r = evolve_trade(Risk("alice"), big(MIDNIGHT - timedelta(milliseconds=1), 1000.0))  # type: ignore[arg-type]
    assert r.day == "2025-03-01" and r.daily_volume == 1000.0 and r.trades_today == 1
    r = evolve_trade(r, big(MIDNIGHT, 300.0, side="sell"))  # type: ignore[arg-type]
    assert r.day == "2025-03-02" and r.daily_volume == 300.0 and r.trades_today == 1
    assert r.daily_exposure == 300.0 and r.largest_today == 300.0 and r.largest_trade == 1000.0


def test_daily_exposure_is_net_per_pair_and_volume_is_gross() -> None:
    r = Risk("alice")
    for event in (big(T0, 500.0), big(T0, 200.0, side="sell"), big(T0, 50.0, side="sell", pair="ETH-USD")):
        r = evolve_trade(r, event)  # type: ignore[arg-type]
    assert r.daily_volume == 750.0
    assert r.daily_exposure == pytest.approx(300.0 + 50.0)


def test_late_trade_of_an_earlier_day_leaves_the_current_day_alone() -> None:
    r = evolve_trade(Risk("alice"), big(MIDNIGHT + minutes(5), 100.0))  # type: ignore[arg-type]
    r = evolve_trade(r, big(MIDNIGHT - minutes(5), 900.0))  # type: ignore[arg-type]
    assert r.day == "2025-03-02" and r.daily_volume == 100.0 and r.largest_trade == 900.0


def test_score_and_levels_are_deterministic() -> None:
    assert risk_score(0, 0, 0, 0) == 0.0
    assert risk_score(10_000_000, 1000, 10_000_000, 1.0) == 10.0
    assert risk_score(100_000, 25, 50_000, 0.5) == pytest.approx(2 + 0.5 + 1 + 1)
    assert [risk_level(s) for s in (0, 2.99, 3, 5.99, 6, 7.99, 8, 10)] == ["low", "low", "medium", "medium", "high", "high", "critical", "critical"]


def test_concentration_counts_from_one_thousand_dollars() -> None:
    r = evolve_trade(Risk("alice"), big(T0, 500.0))  # type: ignore[arg-type]
    assert r.concentration == 0.0
    r = evolve_trade(r, big(T0, 1500.0, pair="ETH-USD"))  # type: ignore[arg-type]
    assert r.concentration == pytest.approx(0.75)


def test_alert_raised_exactly_once_when_level_rises_to_high() -> None:
    r = Risk("alice")
    e1 = big(T0, 150_000.0)
    r = evolve_trade(r, e1)  # type: ignore[arg-type]
    assert r.level == "high"  # 3 volume + 2 largest + 2 concentration
    assert list(r.active) == [alert_id_for(e1.envelope.stream, e1.envelope.event_id)]  # type: ignore[attr-defined]
    r2 = evolve_trade(r, big(T0 + minutes(1), 10.0, pair="BTC-USD"))  # type: ignore[arg-type]
    assert r2.level == "high" and list(r2.active) == list(r.active)  # staying high raises nothing


def test_rise_from_high_to_critical_raises_a_second_alert() -> None:
    r = evolve_trade(Risk("alice"), big(T0, 150_000.0))  # type: ignore[arg-type]
    e = big(T0 + minutes(1), 100_000.0)
    r = evolve_trade(r, e)  # type: ignore[arg-type]
    assert r.level == "critical" and len(r.active) == 2
    assert r.active[alert_id_for(e.envelope.stream, e.envelope.event_id)].level == "critical"  # type: ignore[attr-defined]


def test_fall_on_a_new_day_then_rise_raises_again() -> None:
    r = evolve_trade(Risk("alice"), big(T0, 150_000.0))  # type: ignore[arg-type]
    r = evolve_trade(r, big(MIDNIGHT + minutes(1), 10.0, side="sell"))  # type: ignore[arg-type]
    assert r.level in ("low", "medium") and len(r.active) == 1
    r = evolve_trade(r, big(MIDNIGHT + minutes(2), 200_000.0, pair="ETH-USD"))  # type: ignore[arg-type]
    assert r.level in ("high", "critical") and len(r.active) == 2


def test_acknowledgement_moves_the_alert_and_repeats_are_no_ops() -> None:
    r = evolve_trade(Risk("alice"), big(T0, 150_000.0))  # type: ignore[arg-type]
    (alert_id,) = r.active
    acked = evolve_acknowledged(r, acknowledged(alert_id))  # type: ignore[arg-type]
    assert acked.active == {} and acked.acknowledged[0].acknowledged_by == "ops.jane"
    assert evolve_acknowledged(acked, acknowledged(alert_id)) is acked  # type: ignore[arg-type]
    assert evolve_acknowledged(r, acknowledged("alert-unknown")) is r  # type: ignore[arg-type]


def test_render_lists_active_alerts_and_rankings_and_round_trips() -> None:
    r = evolve_trade(Risk("alice"), big(T0, 150_000.0))  # type: ignore[arg-type]
    ref = ("user", "alice")
    out = MODEL.render(KS, ref, r)
    (alert_id,) = r.active
    assert out.zsets[KS.risk_alerts()] == {alert_id: float(int(T0.timestamp() * 1000))}
    assert out.zsets[KS.user_daily_exposure()] == {"alice": 150_000.0}
    assert alert_id in out.hfields[KS.risk_alert_details()]
    assert MODEL.parse(ref, out.owned[KS.user_risk("alice")]) == r
    acked = evolve_acknowledged(r, acknowledged(alert_id))  # type: ignore[arg-type]
    assert MODEL.render(KS, ref, acked).zsets[KS.risk_alerts()] == {}
    assert MODEL.parse(ref, MODEL.render(KS, ref, acked).owned[KS.user_risk("alice")]) == acked


def test_alerts_of_two_users_raised_by_events_with_one_id_have_two_ids() -> None:
    alice, bob = (big(T0, 150_000.0, userId=u) for u in ("alice", "bob"))
    bob = replace(bob, envelope=replace(bob.envelope, event_id=alice.envelope.event_id))  # type: ignore[attr-defined]
    (a,) = evolve_trade(Risk("alice"), alice).active  # type: ignore[arg-type]
    (b,) = evolve_trade(Risk("bob"), bob).active  # type: ignore[arg-type]
    assert a != b and a == alert_id_for("trades-alice", alice.envelope.event_id)  # type: ignore[attr-defined]


def test_an_acknowledgement_naming_the_alert_id_of_before_still_matches() -> None:
    """Alerts were named ``alert-<event id>`` before issue 22; stored acknowledgements carry such ids."""
    e = big(T0, 150_000.0)
    r = evolve_trade(Risk("alice"), e)  # type: ignore[arg-type]
    acked = evolve_acknowledged(r, acknowledged(f"alert-{e.envelope.event_id}"))  # type: ignore[arg-type,attr-defined]
    assert acked.active == {} and acked.acknowledged[0].alert_id == alert_id_for("trades-alice", e.envelope.event_id)  # type: ignore[attr-defined]
