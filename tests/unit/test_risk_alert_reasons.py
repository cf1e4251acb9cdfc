"""An alert says why it was raised, in words an operator can act on."""
from __future__ import annotations

from projections.readmodels.risk import Alert, Risk, evolve_trade
from tests.unit.eventfactory import trade


def test_a_critical_alert_names_volume_size_and_concentration() -> None:
    event = trade(userId="alice", amount=40.0, price=50_000.0, amountUsd=2_000_000.0)
    risk = evolve_trade(Risk("alice"), event)  # type: ignore[arg-type]
    [alert] = risk.active.values()
    assert alert.level == "critical"
    assert alert.reasons == (
        "daily volume $2,000,000", "largest trade today $2,000,000", "100% of exposure in BTC-USD",
    )


def test_reasons_survive_the_redis_codec() -> None:
    event = trade(userId="alice", amount=40.0, price=50_000.0, amountUsd=2_000_000.0)
    [alert] = evolve_trade(Risk("alice"), event).active.values()  # type: ignore[arg-type]
    assert Alert.from_json(alert.to_json()) == alert


def test_a_small_trade_raises_no_alert() -> None:
    assert not evolve_trade(Risk("alice"), trade(userId="alice", amountUsd=100.0)).active  # type: ignore[arg-type]
