"""An operator rebuilds a projection from the Projections page, watches the job and the flip, then rolls back."""
from __future__ import annotations

import io

import pytest
import redis
from django.core.management import call_command
from django.test import override_settings

from lucent_admin.operations.models import Job
from projections.eventstore import EventStore
from projections.maintenance.generations import live_generation
from projections.queries import Queries
from tests.fixtures.live import sign_in
from tests.waiting import wait_until

pytestmark = pytest.mark.browser


def test_rebuild_then_roll_back_from_the_projections_page(live_stack, page) -> None:
    with override_settings(EVENTSTORE_URI=live_stack.env["EVENTSTORE_URI"]):
        call_command("simulate", events=3000, seed=43, users=20, stderr=io.StringIO(), stdout=io.StringIO())
    client = redis.Redis.from_url(live_stack.env["REDIS_URL"])
    queries = Queries(client)
    live_stack.start_projector()
    live_stack.start_worker()
    with EventStore(live_stack.env["EVENTSTORE_URI"]) as store:
        head = store.client.get_commit_position()
    wait_until(lambda: queries.projection_status("portfolio")[0].checkpoint == head, 60, what="the projector to catch up")
    top = [r.user_id for r in queries.top_portfolios(5)]
    sign_in(page, live_stack, "chief", "browser-pw-4")

    page.goto(f"{live_stack.url}/projections/")
    page.click("#p-portfolio a[data-action='rebuild']")
    assert "generation 2, beside the live generation 1" in page.inner_text("[data-board='rebuild-plan']")
    page.fill("#id_confirm", "portfolio")
    page.click("text=Start the rebuild")
    page.wait_for_url("**/jobs/*/")
    page.wait_for_selector("[data-field='job-state']:has-text('succeeded')", timeout=90_000)  # pushed live
    assert "generation 2 is live" in page.inner_text("[data-board='job-history']")
    assert live_generation(client, "portfolio") == 2 and [r.user_id for r in queries.top_portfolios(5)] == top

    page.goto(f"{live_stack.url}/projections/")
    page.wait_for_selector("#p-portfolio [data-field='live-generation']:has-text('2')")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#p-portfolio form[data-action='rollback'] button")
    page.wait_for_url("**/jobs/*/")
    page.wait_for_selector("[data-field='job-state']:has-text('succeeded')", timeout=90_000)
    assert live_generation(client, "portfolio") == 1 and [r.user_id for r in queries.top_portfolios(5)] == top
    assert Job.objects.filter(state=Job.State.SUCCEEDED).count() == 2
    page.goto(f"{live_stack.url}/projections/")
    assert page.inner_text("#p-portfolio [data-field='live-generation']") == "1"
