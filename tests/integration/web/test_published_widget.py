"""The user page's "Published events": what the live projector (run_projector, as wired) published."""
from __future__ import annotations

import io
import re
import uuid

import pytest
import redis
from django.core.management import call_command
from django.test import Client

from tests.accounts import account
from tests.integration.projections.test_published_events import append_trades

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client) -> Client:
    client.force_login(account("ops", "pw-ops-123"))
    return client


def test_the_user_page_lists_the_users_published_events(settings, staff: Client, eventstore_uri: str,
                                                        redis_client: redis.Redis) -> None:
    settings.EVENTSTORE_URI = eventstore_uri
    call_command("run_projector", exit_when_caught_up=True, stderr=io.StringIO())  # the store's history: not news
    user = f"pub-{uuid.uuid4().hex[:8]}"
    append_trades(eventstore_uri, user, pair=f"{user.upper().replace('-', '')}-USD")  # no other test's prices mark it
    call_command("run_projector", exit_when_caught_up=True, stderr=io.StringIO())

    page = staff.get("/user/", {"user": user}).content.decode()
    widget = re.search(r'id="w-user-published".*?</table>', page, re.S)
    assert widget, "no published events widget"
    html = widget.group(0)
    assert html.count("RiskLevelChanged") == 3 and html.count("PortfolioSignificantlyUpdated") == 5
    assert html.index('badge high">high</span> → <span class="badge critical">critical') < html.index(
        'badge low">low</span> → <span class="badge medium">medium')  # newest first
    assert "240,000.00 → 500,000.00 USD (+108.33%)" in html  # 4 BTC at 60k, then 5 at the last trade price
    assert "daily volume $340,000" in html  # the alert reasons of the new level

    nobody = staff.get("/user/", {"user": "nobody-published"}).content.decode()
    assert "Nothing published about this user yet." in nobody
