"""Console pages over read models the projector built from a simulated market."""
from __future__ import annotations

import json
from html import escape

import pytest
from django.test import Client

from projections.queries import Queries
from tests.accounts import account
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client, market) -> Client:
    client.force_login(account("ops", "pw-ops-123"))
    return client


def test_overview_shows_a_tile_per_projection_with_its_status(staff: Client, market: Queries) -> None:
    page = staff.get("/").content.decode()
    for status in market.projection_status():
        assert f'data-projection="{status.projection}"' in page
        assert f"{status.checkpoint}" in page
    assert page.count('class="sparkline"') == 4


def test_dead_projector_is_red_and_says_why(staff: Client, market: Queries) -> None:
    # the projector exited when caught up: once its heartbeats are gone every tile must say dead
    wait_until(lambda: not any(s.alive for s in market.projection_status()), 15,
               what="the heartbeats of a stopped projector to expire")
    page = staff.get("/").content.decode()
    assert page.count("Projector dead: no heartbeat") == 4
    assert 'class="tile alarm"' in page


def test_leaderboards_rank_portfolios_and_volume(staff: Client, market: Queries) -> None:
    page = staff.get("/leaderboards/").content.decode()
    top = market.top_portfolios(10)
    assert top, "the simulated market should produce portfolios"
    assert f'data-user="{top[0].user_id}"' in page
    assert page.index(top[0].user_id) < page.index(top[-1].user_id)
    leaders = market.daily_volume_leaders(limit=10)
    assert leaders and leaders[0].id in page


def test_find_a_users_rank(staff: Client, market: Queries) -> None:
    best = market.top_portfolios(1)[0]
    fragment = staff.get("/leaderboards/rank/", {"user": best.user_id}, HTTP_HX_REQUEST="true").content.decode()
    assert f"{best.user_id}</a>: #1 by portfolio value" in fragment
    bad = staff.get("/leaderboards/rank/", {"user": "no such/user"})
    assert bad.status_code == 400 and "User id must be" in bad.content.decode()


def test_risk_page_lists_active_alerts_newest_first(staff: Client, market: Queries) -> None:
    alerts = market.active_alerts()
    page = staff.get("/risk/").content.decode()
    assert f'data-field="alert-count">{market.active_alert_count()}<' in page
    if len(alerts) >= 2:
        assert page.index(alerts[0].alert_id) < page.index(alerts[1].alert_id)
    for user in market.high_risk_users().rows:
        assert f'data-user="{user.user_id}"' in page


def test_market_page_shows_prices_per_exchange_and_movers(staff: Client, market: Queries) -> None:
    overview = market.market_overview()
    page = staff.get("/market/").content.decode()
    for pair in overview.latest_prices:
        assert f'data-pair="{pair}"' in page
    for exchange in {x for quotes in overview.latest_prices.values() for x in quotes}:
        assert f"<th class=\"num\">{exchange}</th>" in page


def test_user_page_shows_portfolio_and_risk(staff: Client, market: Queries) -> None:
    best = market.top_portfolios(1)[0]
    summary = market.portfolio_summary(best.user_id)
    page = staff.get("/user/", {"user": best.user_id}).content.decode()
    assert f"Portfolio of {best.user_id}" in page
    assert f'data-field="trade-count">{summary.trade_count}<' in page
    assert "Risk profile" in page
    unknown = staff.get("/user/", {"user": "nobody-here"}).content.decode()
    assert "No portfolio for this user" in unknown


def test_projections_page_lists_parked_events_with_reasons(staff: Client, market: Queries) -> None:
    parked = market.parked_events("portfolio", newest=True)  # what the page lists first
    assert parked, "2% malformed events should park some"
    page = staff.get("/projections/").content.decode()
    for event in parked[:5]:
        assert f'data-event="{event.event_id}"' in page
        assert escape(event.reason) in page


def test_the_projections_page_lists_the_newest_parked_events_and_says_how_many_more(client: Client, redis_client) -> None:
    from projections.writer import parked_writes

    client.force_login(account("ops-parked", "pw-ops-123"))
    for i in range(14):
        event_id = f"00000000-0000-4000-8000-{i:012d}"
        record = json.dumps({"eventId": event_id, "stream": "prices-x", "position": 100 + i, "type": "PriceUpdated",
                             "field": "price", "reason": "out of range", "recordedAt": 0})
        for write in parked_writes("portfolio", event_id, 100 + i, record):
            redis_client.execute_command(*write)
    page = client.get("/projections/").content.decode()
    section = page[page.index('id="p-portfolio"'):page.index('id="p-risk"')]
    assert section.count('data-event="') == 10 and "00000000-0000-4000-8000-000000000013" in section
    assert "00000000-0000-4000-8000-000000000000" not in section  # the oldest four are left to the command line
    assert section.index("000000000013") < section.index("000000000012")  # newest first
    assert "The newest 10 of 14 parked events" in section and "projections parked --projection portfolio" in section
