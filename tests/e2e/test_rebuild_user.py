"""An operator rebuilds a user from the user page and watches the job finish and the portfolio come back."""
from __future__ import annotations

import pytest

from lucent_admin.operations.models import Job
from projections.keys import KeySpace
from tests.fixtures.live import sign_in, with_market

pytestmark = pytest.mark.browser


def test_rebuild_a_user_from_the_user_page(live_stack, page) -> None:
    queries = with_market(live_stack, events=1200, seed=31, users=8)
    client = queries.client
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
