"""The freshness widget: figures of the canaries the live projector committed, or "no canary" and why."""
from __future__ import annotations

import io
import re
import time

import pytest
import redis
from django.core.management import call_command
from django.test import Client

from lucent_admin.bootstrap import event_store
from projections import keys
from projections.events import CANARY_TYPE, CanaryAppended, Envelope
from projections.projector.canary import append_canary, sample_writes
from projections.queries import Queries
from tests.accounts import account

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client) -> Client:
    client.force_login(account("ops", "pw-ops-123"))
    return client


def row(page: str, projection: str) -> str:
    found = re.search(rf'<tr data-projection="{projection}"[^>]*>.*?</tr>', page, re.S)
    assert found, f"no freshness row for {projection}"
    return found.group(0)


def test_the_overview_shows_each_projections_canary_figures(settings, staff: Client, eventstore_uri: str,
                                                             redis_client: redis.Redis) -> None:
    settings.EVENTSTORE_URI = eventstore_uri
    call_command("simulate", events=200, seed=5, users=4, stderr=io.StringIO(), stdout=io.StringIO())
    canary_id = append_canary(event_store(), redis_client)
    call_command("run_projector", exit_when_caught_up=True, stderr=io.StringIO())
    queries = Queries(redis_client)

    page = staff.get("/").content.decode()
    assert 'id="w-canary-freshness"' in page and "js/canary.js" in page
    for name in ("portfolio", "risk", "market", "leaderboards"):
        f = queries.canary(name)
        assert f is not None and f.canary_id == canary_id and f.count == 1
        html = row(page, name)
        assert f'data-canary-id="{canary_id}"' in html and f'data-appended-at="{f.appended_at_ms}"' in html
        shown = f"{f.last_ms:,.2f}" if f.last_ms < 10 else f"{f.last_ms:,.0f}"
        assert f'data-field="canary-last">{shown} ms<' in html  # the console's one "millis" format
        assert 'data-field="canary-count">1<' in html and 'data-field="canary-browser"' in html
    assert "Projections" in staff.get("/projections/").content.decode()
    assert 'id="w-canary-freshness"' in staff.get("/projections/").content.decode()


def test_no_canary_says_so_and_why_never_a_zero(settings, staff: Client, redis_client: redis.Redis) -> None:
    page = staff.get("/").content.decode()
    html = row(page, "risk")
    assert "No canary recorded: no canary has been appended yet" in html and "ms<" not in html

    now = int(time.time() * 1000)
    old = CanaryAppended(Envelope("c-old", "lucent-canary", 1, CANARY_TYPE, now - 30_000), "c-old", now - 30_012)
    for write in sample_writes("risk", [old], now - 30_000):
        redis_client.execute_command(*write)
    redis_client.hset(keys.canary_appended(), mapping={"canaryId": "c-new", "appendedAt": str(now - 1000), "position": "9"})
    html = row(staff.get("/").content.decode(), "risk")
    assert re.search(r"No canary for 3\d\.\d s: its projector is not started: no heartbeat", html), html
    assert "data-canary-id" not in html

    settings.LUCENT_CANARY_EVERY_S = 0
    html = row(staff.get("/").content.decode(), "risk")
    assert "canaries are off (LUCENT_CANARY_EVERY_S=0)" in html
