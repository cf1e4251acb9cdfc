"""The console in a real browser: live pushes, acknowledging an alert, retrying a parked event, reconnecting."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest
import redis

from lucent_admin.operations.models import AuditEntry
from projections.eventstore import EventStore, ProposedEvent
from projections.queries import Queries
from tests.fixtures.live import sign_in
from tests.waiting import wait_until

pytestmark = pytest.mark.browser


def iso_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def trade(user: str, usd: float, **over) -> tuple[str, ProposedEvent]:
    price = 50_000.0
    data = {"tradeId": f"t-{uuid.uuid4().hex[:12]}", "userId": user, "pair": "BTC-USD", "side": "buy",
            "amount": usd / price, "price": price, "amountUsd": usd, "exchange": "binance", "executedAt": iso_now()}
    data.update(over)
    return f"trades-{user}", ProposedEvent("TradeExecuted", data)


@pytest.fixture
def store(live_stack):
    with EventStore(live_stack.env["EVENTSTORE_URI"]) as store:
        yield store


@pytest.fixture
def append(store):
    def append(stream_and_event: tuple[str, ProposedEvent]) -> ProposedEvent:
        stream, event = stream_and_event
        store.append(stream, [event])
        return event

    return append


@pytest.fixture
def console(live_stack, page):
    """A superuser signed in, with the projector running: every projection live (on a loaded machine a projector
    takes seconds to start; a test's events must not race its start against the page's wait)."""
    live_stack.start_projector()
    queries = Queries(redis.Redis.from_url(live_stack.env["REDIS_URL"]))
    wait_until(lambda: all(s.alive and s.state == "live" for s in queries.projection_status()), 60,
               what="every projection to be live")
    return sign_in(page, live_stack, "chief", "browser-pw-2")


def open_live(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-live='on']")
    page.evaluate("window.__notReloaded = true")


def test_leaderboard_rows_change_without_a_reload(console, live_stack, append) -> None:
    append(trade("alice-e2e", 100_000))
    open_live(console, f"{live_stack.url}/leaderboards/")
    leaders = console.locator("#w-volume-leaders tbody tr")
    console.wait_for_selector('#w-volume-leaders tr[data-user="alice-e2e"]')
    append(trade("bob-e2e", 300_000))
    console.wait_for_selector('#w-volume-leaders tbody tr:first-child[data-user="bob-e2e"]')
    assert leaders.nth(1).get_attribute("data-user") == "alice-e2e"
    assert console.evaluate("window.__notReloaded") is True


def test_risk_alert_arrives_live_and_is_acknowledged(console, live_stack, append) -> None:
    open_live(console, f"{live_stack.url}/risk/")
    append(trade("carol-e2e", 2_000_000))
    row = console.locator("#w-alerts tbody tr", has_text="carol-e2e")
    row.wait_for()
    assert row.locator(".badge").inner_text() in {"high", "critical"}
    assert console.evaluate("window.__notReloaded") is True
    row.locator("input[name=note]").fill("called the desk")
    row.get_by_role("button", name="Acknowledge").click()
    console.wait_for_selector(".msg.success >> text=acknowledged")
    console.locator("#w-alerts tbody tr", has_text="carol-e2e").wait_for(state="detached")
    entry = AuditEntry.objects.get(action="risk.acknowledge")
    assert entry.actor_name == "chief" and entry.target.startswith("carol-e2e/") and entry.outcome == "ok"


def test_parked_event_is_shown_and_retried(console, live_stack, append) -> None:
    bad = append(trade("dave-e2e", 1_000, price=-5))
    open_live(console, f"{live_stack.url}/projections/")
    row = console.locator(f'#p-portfolio tr[data-event="{bad.id}"]')
    row.wait_for()
    assert "price" in row.inner_text()
    row.get_by_role("button", name="Retry").click()
    console.wait_for_selector(".msg.success >> text=Retry of parked event")
    assert AuditEntry.objects.get(action="parked.retry").target == f"portfolio/trades-dave-e2e/{bad.id}"
    queries = Queries(redis.Redis.from_url(live_stack.env["REDIS_URL"]))
    record = wait_until(lambda: next((p for p in queries.parked_events("portfolio")
                                    if p.event_id == str(bad.id) and p.retried), None),
                      what="the projector to retry the parked event")
    assert record.field == "price"  # still bad: it stays parked, marked retried


def test_banner_while_disconnected_then_page_catches_up(console, live_stack, append) -> None:
    open_live(console, f"{live_stack.url}/leaderboards/")
    live_stack.stop_web()
    console.wait_for_selector("#live-banner", state="visible")
    append(trade("erin-e2e", 900_000))
    live_stack.start_web()
    console.wait_for_selector("#live-banner", state="hidden", timeout=30_000)
    console.wait_for_selector('#w-volume-leaders tr[data-user="erin-e2e"]')
    assert console.evaluate("window.__notReloaded") is True


def test_a_note_being_typed_survives_a_live_redraw_of_the_alerts(console, live_stack, append) -> None:
    open_live(console, f"{live_stack.url}/risk/")
    append(trade("dora-e2e", 2_000_000))
    note = console.locator("#w-alerts tr", has_text="dora-e2e").locator("input[name='note']")
    note.wait_for()
    note.fill("calling them now")
    append(trade("erin-e2e", 3_000_000))  # another alert: the whole widget is pushed again (an out-of-band swap)
    console.locator("#w-alerts tr", has_text="erin-e2e").wait_for()
    assert console.locator("#w-alerts tr", has_text="dora-e2e").locator("input[name='note']").input_value() == "calling them now"
