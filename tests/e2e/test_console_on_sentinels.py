"""The whole console on a Sentinel-managed Redis (``REDIS_URL=redis+sentinel://…``: a primary, its replica, three
Sentinels), Celery and Channels on the same Sentinels: every page answers, live pushes arrive; the primary killed -9,
the Sentinels promote the replica and every process follows by itself: the Infrastructure page shows the new
primary, the console is ready again, and a rebuild run by the Celery worker after the failover flips the projection
(the worker's broker, the live pushes and the read models all on the new primary)."""
from __future__ import annotations

import pytest

from projections.connection import connect
from projections.maintenance.generations import live_generation
from projections.queries import Queries
from tests.fixtures.live import LiveStack, every_page_answers, rebuild_from_the_console, sign_in, with_market
from tests.fixtures.topologies import SentinelSet
from tests.waiting import wait_until

pytestmark = pytest.mark.browser


@pytest.fixture
def sentinel_stack(transactional_db, tmp_path, own_store_uri, sentinel_set: SentinelSet):
    stack = LiveStack(tmp_path, own_store_uri)
    stack.env.update({"REDIS_URL": sentinel_set.url, "LUCENT_PARTITIONS": "4"})
    try:
        stack.start_web()
        yield stack
    finally:
        stack.stop()


def test_the_console_runs_whole_on_sentinels_through_a_failover(sentinel_stack: LiveStack, sentinel_set: SentinelSet,
                                                                  page) -> None:
    client = connect(sentinel_set.url)
    with_market(sentinel_stack, events=2000, seed=53, users=20)
    top = [r.user_id for r in Queries(client).top_portfolios(5)]
    assert len(top) == 5
    sign_in(page, sentinel_stack, "chief", "browser-pw-10")
    page.wait_for_selector("body[data-live='on']", state="attached")
    every_page_answers(page, sentinel_stack)

    old = sentinel_set.primary_port()
    sentinel_set.node_at(old).kill()
    wait_until(lambda: sentinel_set.primary_port() not in (0, old), 30, what="the Sentinels to promote the replica")
    new = sentinel_set.primary_port()

    def shown_primary() -> bool:
        page.goto(f"{sentinel_stack.url}/infrastructure/")
        row = page.locator(f"[data-board='redis-nodes'] tr[data-node='127.0.0.1:{new}']")
        return row.count() == 1 and row.get_attribute("data-role") == "primary"

    wait_until(shown_primary, 30, what="the Infrastructure page to show the promoted replica as the primary", interval=0.5)
    wait_until(lambda: page.request.get(f"{sentinel_stack.url}/readyz").json()["ready"], 30, what="ready again")
    every_page_answers(page, sentinel_stack)
    rebuild_from_the_console(page, sentinel_stack, "portfolio")  # the worker's broker on the new primary
    assert live_generation(client, "portfolio") == 2
    assert [r.user_id for r in Queries(client).top_portfolios(5)] == top
