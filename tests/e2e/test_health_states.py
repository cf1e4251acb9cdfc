"""Health states in a real browser: thresholds set on the Settings page, a projection going WARN under a burst
of events it cannot keep up with, then OK once the burst has drained."""
from __future__ import annotations

import threading
import time

import pytest

from lucent_admin.operations.models import AuditEntry
from projections.eventstore import EventStore
from projections.simulation.appender import append_events
from projections.simulation.market import Market
from tests.fixtures.live import sign_in
from tests.waiting import wait_until

pytestmark = pytest.mark.browser

BURST_S = 15.0  # two appenders as fast as the store takes them: more than one projector folds on this machine


def burst(uri: str, seconds: float, stop: threading.Event, seed: int) -> None:
    market = Market(seed=seed, users=200, pairs=6, exchanges=3, bad_ratio=0.0).events(10_000_000)  # ids by seed
    deadline = time.monotonic() + seconds
    with EventStore(uri) as store:
        while time.monotonic() < deadline and not stop.is_set():
            append_events(store, (next(market) for _ in range(2000)), batch_size=500)


def trickle(uri: str, stop: threading.Event) -> None:
    """Live traffic: a few events a second (each commit redraws the tiles)."""
    market = Market(seed=78, users=20, pairs=2, exchanges=2, bad_ratio=0.0).events(10_000_000)
    with EventStore(uri) as store:
        while not stop.wait(0.3):
            append_events(store, (next(market) for _ in range(3)), batch_size=3)


def test_the_overview_shows_a_projection_go_warn_under_a_burst_then_ok_once_it_drains(live_stack, page) -> None:
    console = sign_in(page, live_stack, "chief", "browser-pw-3")
    uri = live_stack.env["EVENTSTORE_URI"]
    live_stack.start_projector("--projection", "portfolio")

    console.goto(f"{live_stack.url}/settings/")
    console.fill("#id_health_window_s", "5")
    console.fill("#id_health_warn_lag_s", "0.5")
    console.click("button.primary")
    console.wait_for_selector(".msg.success >> text=health_warn_lag_s 5 → 0.5")
    assert AuditEntry.objects.filter(action="settings.thresholds", outcome="ok", actor_name="chief").exists()

    console.goto(f"{live_stack.url}/")
    console.wait_for_selector("body[data-live='on']")
    health = console.locator('#w-projection-tiles article[data-projection="portfolio"] [data-field="health"]')
    stop = threading.Event()
    live = threading.Thread(target=trickle, args=(uri, stop), daemon=True)  # live traffic throughout
    appenders = [threading.Thread(target=burst, args=(uri, BURST_S, stop, seed), daemon=True) for seed in (77, 79)]
    live.start()
    try:
        wait_until(lambda: health.inner_text() == "OK", 60, what="portfolio live and OK before the burst")
        for appender in appenders:
            appender.start()
        wait_until(lambda: health.inner_text() == "WARN", BURST_S + 30, what="WARN while the lag grows")
        reason = console.locator('#w-projection-tiles article[data-projection="portfolio"] [data-field="health-reason"]')
        assert reason.inner_text().startswith("Lag growing:")
        for appender in appenders:
            appender.join(BURST_S + 30)
        wait_until(lambda: health.inner_text() == "OK", 240, what="OK once the burst has drained")
    finally:
        stop.set()
        for thread in (*appenders, live):
            if thread.is_alive():
                thread.join(10)
