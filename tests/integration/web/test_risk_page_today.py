"""The Risk page tells the risk team today's figures, the true alert count and the users ranked by score.

Yesterday 66 users traded $150K each and one $300K; today three users trade
$120K and a minnow $1K: the risk projection's today is the newest trade's day.
"""
from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.accounts import account
from tests.fixtures.projections import StoreProcess
from tests.integration.projections.helpers import run_to_end
from tests.integration.projections.test_risk_today import TODAY, two_days

pytestmark = pytest.mark.django_db


@pytest.fixture
def risk_team(client: Client, redis_client, redis_url: str, store_process: StoreProcess) -> Client:
    from projections.eventstore import EventStore

    with EventStore(store_process.uri) as store:
        for stream, event in two_days(66, 3):
            store.append(stream, [event])
    run_to_end(redis_url, store_process.uri, ("risk",))
    client.force_login(account("ops-risk", "pw-ops-123"))
    return client


def section(page: str, dom_id: str) -> str:
    start = page.index(f'id="{dom_id}"')
    return page[start:page.index("</table>", start)] + page[page.index("</table>", start):][:400]


def test_the_risk_page_shows_today_not_yesterday(risk_team: Client) -> None:
    page = risk_team.get("/risk/").content.decode()
    alerts = section(page, "w-alerts")
    assert 'data-field="alert-count">70<' in alerts
    assert alerts.count("data-alert=") == 50 and "The newest 50 of 70 active alerts" in alerts
    high = section(page, "w-high-risk")
    assert re.findall(r'data-user="([^"]+)"', high) == ["t02", "t01", "t00"]
    assert 'data-field="high-risk-count">3<' in high and TODAY in high
    ranking = section(page, "w-risk-ranking")
    assert re.findall(r'data-user="([^"]+)"', ranking)[:4] == ["t02", "t01", "t00", "minnow"]
    assert "of 71 users" in ranking and "6.42" in ranking and "120,002.00" in ranking
    assert "no trades today" in ranking  # the idle users below the minnow, never yesterday's figures
    assert "300,000.00" not in page and "150,000.00" not in page


def test_a_user_who_stopped_trading_shows_no_trades_today(risk_team: Client) -> None:
    page = risk_team.get("/user/", {"user": "whale300"}).content.decode()
    risk = page[page.index('id="w-user-risk"'):]
    risk = risk[:risk.index("<h3>Alerts</h3>")]
    assert "No trades today" in risk and "last trade on 2026-01-05" in risk
    assert "300,000.00 USD" in risk  # the all-time largest trade, labelled as such
    assert risk.count("300,000.00") == 1 and 'class="badge low"' in risk


def test_an_empty_risk_page_says_so_in_words(client: Client, redis_client) -> None:
    client.force_login(account("ops-risk-empty", "pw-ops-123"))
    page = client.get("/risk/").content.decode()
    assert "No active alerts." in page and "No user over the threshold today." in page
    assert "No user has a risk profile yet." in page
