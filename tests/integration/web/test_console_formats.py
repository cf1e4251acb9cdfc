"""How the console writes what it shows: one format per kind of number, labelled columns, "—" for unknown."""
from __future__ import annotations

import io
import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import redis
from django.core.management import call_command
from django.test import Client

from lucent_admin.console.templatetags import numbers
from projections.eventstore import EventStore, ProposedEvent
from projections.queries import Queries
from tests.accounts import account

pytestmark = pytest.mark.django_db

NUM_CELL = re.compile(r'<(td|dd) class="num[^"]*"[^>]*>(.*?)</\1>', re.S)
UNGROUPED = re.compile(r"\d{4,}\.\d{2}\b")
GROUPED = re.compile(r"\b\d{1,3}(,\d{3})+\.\d{2}\b")


def staff_client(client: Client) -> Client:
    client.force_login(account("ops", "pw-ops-123"))
    return client


# -- the filters ----------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "value", "shown"), [
    ("money", 11899.594, "11,899.59"),
    ("money", None, "—"),
    ("price", 0.16234, "0.1623"),
    ("price", 64012.5, "64,012.50"),
    ("amount", 0.012345678, "0.0123457"),
    ("amount", 8.0, "8"),
    ("change", 1.234, "+1.23%"),
    ("change", -0.5, "-0.50%"),
    ("change", None, "—"),
    ("percent", 45.0, "45.00%"),
    ("count", 1204, "1,204"),
    ("score", 7.254, "7.25"),
    ("seconds", 1.46, "1.5 s"),
    ("rate", 1250.4, "1,250/s"),
    ("rate", float("nan"), "—"),
])
def test_each_kind_of_number_has_one_format(name: str, value: object, shown: str) -> None:
    assert getattr(numbers, name)(value) == shown


# -- pages over a simulated market ------------------------------------------------------------

def test_user_history_has_column_headers(client: Client, market: Queries) -> None:
    user = market.top_portfolios(1)[0].user_id
    page = staff_client(client).get("/user/", {"user": user}).content.decode()
    history = re.search(r'<table[^>]*data-board="history".*?</table>', page, re.S)
    assert history, "the user page should show the recent history"
    headers = [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", history.group(0), re.S)]
    assert headers == ["When (UTC)", "Event", "Pair", "Position after"]


def test_amounts_of_a_thousand_or_more_have_thousands_separators(client: Client, market: Queries) -> None:
    staff = staff_client(client)
    user = market.top_portfolios(1)[0].user_id
    grouped = 0
    for path in ("/leaderboards/", "/risk/", "/market/", f"/user/?user={user}"):
        page = staff.get(path).content.decode()
        cells = [text for _, text in NUM_CELL.findall(page)]
        assert cells, f"{path} has no number cells"
        assert not [c for c in cells if UNGROUPED.search(c)], f"{path}: numbers without thousands separators"
        grouped += sum(1 for c in cells if GROUPED.search(c))
    assert grouped, "the simulated market should produce figures of a thousand or more"


# -- the market's 1h change when there is no earlier price ---------------------------------------

def price(pair: str, value: float, at: datetime) -> ProposedEvent:
    stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return ProposedEvent("PriceUpdated", {"exchange": "binance", "pair": pair, "price": value, "volume": 10.0,
                                          "timestamp": stamp})


def change_cell(page: str, pair: str) -> str:
    row = re.search(rf'<tr data-pair="{pair}">(.*?)</tr>', page, re.S)
    assert row, f"{pair} should be in the prices table"
    cell = re.search(r'data-field="change-1h"[^>]*>([^<]*)<', row.group(1))
    assert cell, f"{pair} row has no 1h change cell"
    return cell.group(1)


def movers(page: str, board: str) -> dict[str, str]:
    table = re.search(rf'<table data-board="{board}">(.*?)</table>', page, re.S)
    assert table, f"the movers widget should have a {board} table"
    return dict(re.findall(r'<tr><td>([^<]+)</td><td class="num[^"]*">([^<]+)</td></tr>', table.group(1)))


def test_one_hour_change_is_unknown_until_a_pair_has_prices_from_two_minutes(
    client: Client, settings, eventstore_uri: str, redis_client: redis.Redis,
) -> None:
    settings.EVENTSTORE_URI = eventstore_uri
    tag = uuid.uuid4().hex[:5].upper()  # the session's event store is shared: pairs of this run only
    rising, falling = f"Q{tag}R-USD", f"Q{tag}F-USD"
    minute = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=10)
    staff = staff_client(client)
    with EventStore(eventstore_uri) as store:
        store.append("prices-binance", [price(pair, p, minute + timedelta(seconds=s))
                                        for s, p in ((5, 99.0), (20, 101.0), (40, 100.0)) for pair in (rising, falling)])
        call_command("run_projector", exit_when_caught_up=True, stderr=io.StringIO())
        page = staff.get("/market/").content.decode()
        assert change_cell(page, rising) == change_cell(page, falling) == "—"
        assert 'data-field="change-note"' in page
        assert rising not in movers(page, "gainers") and falling not in movers(page, "losers")
        assert "0.00%" not in change_cell(page, rising) + change_cell(page, falling)

        later = minute + timedelta(minutes=2, seconds=10)
        store.append("prices-binance", [price(rising, 500.0, later), price(falling, 10.0, later)])
        call_command("run_projector", exit_when_caught_up=True, stderr=io.StringIO())
    page = staff.get("/market/").content.decode()
    assert (change_cell(page, rising), change_cell(page, falling)) == ("+400.00%", "-90.00%")
    assert movers(page, "gainers").get(rising) == "+400.00%"
    assert movers(page, "losers").get(falling) == "-90.00%"
