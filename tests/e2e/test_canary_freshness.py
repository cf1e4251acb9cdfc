"""The freshness canary in a real browser: the overview measures append -> browser updated, live."""
from __future__ import annotations

import pytest
import redis

from projections.eventstore import EventStore
from projections.projector.canary import append_canary
from projections.queries import Queries
from tests.fixtures.live import sign_in
from tests.waiting import wait_until

pytestmark = pytest.mark.browser
CELL = '#w-canary-freshness tr[data-projection="{p}"] [data-field="canary-browser"]'


def test_the_overview_shows_the_browser_leg_updating(live_stack, page) -> None:
    client = redis.Redis.from_url(live_stack.env["REDIS_URL"])
    queries = Queries(client)
    live_stack.start_projector()
    console = sign_in(page, live_stack, "chief", "browser-pw-2")
    console.wait_for_selector("body[data-live='on']")
    with EventStore(live_stack.env["EVENTSTORE_URI"]) as store:
        for _ in range(2):
            canary = append_canary(store, client)
            wait_until(lambda c=canary: (f := queries.canary("portfolio")) and f.canary_id == c, 30,
                       what="the projector to record the canary")
            row = f'#w-canary-freshness tr[data-projection="portfolio"][data-canary-id="{canary}"]'
            console.wait_for_selector(f"{row} [data-field='canary-browser'][data-ms]", timeout=10_000)
            cell = console.locator(CELL.format(p="portfolio"))
            ms = float(cell.get_attribute("data-ms") or "nan")
            shown = f"{ms:,.2f}" if ms < 10 else f"{ms:,.0f}"
            assert 0 <= ms < 30_000 and cell.inner_text() == f"{shown} ms"  # the "millis" format
            committed = queries.canary("portfolio")
            assert committed is not None and ms >= committed.last_ms  # the browser comes after the commit
        assert console.locator("#w-canary-freshness [data-field='canary-last']").count() == 4
