"""An operator rebuilds a user from the user page and watches the job finish and the portfolio come back."""
from __future__ import annotations

import io

import pytest
import redis
from django.core.management import call_command
from django.test import override_settings

from lucent_admin.operations.models import Job
from projections.eventstore import EventStore
from projections.keys import KeySpace
from projections.queries import Queries
from tests.fixtures.live import sign_in
from tests.waiting import wait_until

pytestmark = pytest.mark.browser


def test_rebuild_a_user_from_the_user_page(live_stack, page) -> None:
    with override_settings(EVENTSTORE_URI=live_stack.env["EVENTSTORE_URI"]):
        call_command("simulate", events=1200, seed=31, users=8, stderr=io.StringIO(), stdout=io.StringIO())
    client = redis.Redis.from_url(live_stack.env["REDIS_URL"])
    queries = Queries(client)
    live_stack.start_projector()
    live_stack.start_worker()
    with EventStore(live_stack.env["EVENTSTORE_URI"]) as store:
        head = store.client.get_commit_position()
    # caught up first: a projector still folding would write the deleted hash back from its state cache
    wait_until(lambda: queries.projection_status("portfolio")[0].checkpoint == head, 60, what="the projector to catch up")
    user = queries.top_portfolios(1)[0].user_id
    value = queries.portfolio_summary(user).market_value
    sign_in(page, live_stack, "chief", "browser-pw-3")

    client.delete(KeySpace("portfolio").portfolio(user))  # the user's portfolio is lost
    page.goto(f"{live_stack.url}/user/?user={user}")
    page.wait_for_selector("body[data-live='on']")
    assert "No portfolio for this user" in page.inner_text("#w-user-portfolio")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("button[data-action='rebuild-user']")

    page.wait_for_selector("#w-user-jobs .job-progress[data-state='succeeded']", timeout=60_000)
    page.wait_for_selector("#w-user-portfolio [data-field='market-value']")  # pushed back without a reload
    assert f"{value:,.2f}" in page.inner_text("#w-user-portfolio [data-field='market-value']")
    job = Job.objects.get()
    assert job.state == Job.State.SUCCEEDED and job.requested_by == "chief"
    page.click(f"#w-user-jobs a[href='/jobs/{job.pk}/']")
    page.wait_for_selector("[data-board='job-history']")
    assert "succeeded" in page.inner_text("[data-field='job-state']")
