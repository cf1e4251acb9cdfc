"""Lag samples for the overview's sparkline: recorded while a projector beats, trimmed to an hour."""
from __future__ import annotations

import time

import pytest
from django.test import Client

from lucent_admin.console.charts import sparkline
from projections import keys
from projections.projector import lag
from projections.queries import LagSample, Queries
from tests.accounts import account

HOUR = 3600_000


def beating(client, projection: str, lag_seconds: float) -> None:
    client.hset(keys.status(projection), mapping={"state": "live", "lagSeconds": str(lag_seconds)})
    client.set(keys.heartbeat(projection), '{"at": 0, "projector": "t", "state": "live"}', ex=30)


def test_samples_are_recorded_only_for_live_projectors_and_trimmed(redis_client) -> None:
    beating(redis_client, "risk", 1.5)
    redis_client.hset(keys.status("market"), mapping={"state": "live", "lagSeconds": "9"})  # no heartbeat: dead
    t0 = 10 * HOUR
    assert lag.record_samples(redis_client, ["risk", "market"], t0) == {"risk": 1.5}
    beating(redis_client, "risk", 3.0)
    lag.record_samples(redis_client, ["risk"], t0 + HOUR // 2)
    lag.record_samples(redis_client, ["risk"], t0 + HOUR + 1)  # the first sample is now older than an hour
    queries = Queries(redis_client)
    assert queries.lag_history("risk", t0 + HOUR + 1) == [LagSample(t0 + HOUR // 2, 3.0), LagSample(t0 + HOUR + 1, 3.0)]
    assert queries.lag_history("market", t0) == []


def test_sparkline_spans_the_hour_and_scales_to_the_max() -> None:
    now = 5 * HOUR
    points, top = sparkline([LagSample(now - HOUR, 0.0), LagSample(now, 2.0)], now, width=240, height=40)
    assert top == 2.0
    assert points == "0.0,38.0 240.0,2.0"
    assert sparkline([], now) == ("", 0.0)


@pytest.mark.django_db
def test_overview_draws_the_sparkline(client: Client, redis_client) -> None:
    beating(redis_client, "portfolio", 0.75)
    lag.record_samples(redis_client, ["portfolio"], int(time.time() * 1000))
    client.force_login(account("ops", "pw-ops-123"))
    page = client.get("/").content.decode()
    assert "<polyline points=" in page
    assert "max 0.8 s" in page
