"""An operator checks a user from the user page, reads the difference explained, repairs, and checks clean."""
from __future__ import annotations

import pytest

from lucent_admin.operations.models import Job
from projections.keys import KeySpace
from tests.fixtures.live import sign_in, with_market

pytestmark = pytest.mark.browser


def test_check_a_user_see_the_difference_explained_repair_and_check_clean(live_stack, page) -> None:
    queries = with_market(live_stack, events=1200, seed=37, users=8)
    user = queries.top_portfolios(1)[0].user_id
    queries.client.hset(KeySpace("portfolio").portfolio(user), "tradeCount", "4242")  # an outside writer
    sign_in(page, live_stack, "chief", "browser-pw-3")
    page.goto(f"{live_stack.url}/user/?user={user}")
    page.wait_for_selector("body[data-live='on']")
    page.on("dialog", lambda dialog: dialog.accept())

    page.click("button[data-action='check-user']")

    page.wait_for_selector("[data-report] [data-field='consistency-score']", timeout=60_000)  # on the job's page
    row = page.locator("[data-board='differences'] tbody.difference")
    assert row.count() == 1
    text = row.inner_text()
    assert "tradeCount" in text and "4242" in text and "TradeExecuted" in text and "outside writer" in text
    assert page.inner_text("[data-field='users-to-repair']") == user
    check_page = page.url
    page.click("button[data-action='repair']")
    page.wait_for_url(lambda url: url != check_page, timeout=10_000)  # to the repair job's page
    page.wait_for_selector(".job-progress[data-state='succeeded']", timeout=60_000)
    assert Job.objects.filter(kind=Job.Kind.REBUILD_USERS, state=Job.State.SUCCEEDED).count() == 1

    page.goto(f"{live_stack.url}/user/?user={user}")
    page.wait_for_selector("body[data-live='on']")
    page.click("button[data-action='check-user']")
    page.wait_for_url(lambda url: "/jobs/" in url, timeout=10_000)
    page.wait_for_selector("[data-report] [data-field='consistency-score']", timeout=60_000)
    page.wait_for_function("document.querySelector(\"[data-report] [data-field='consistency-score']\").textContent === '100.00%'")
    assert page.inner_text("[data-field='users-to-repair']") == "none"
    assert page.locator("[data-board='differences']").count() == 0

    page.goto(f"{live_stack.url}/consistency/")
    page.wait_for_selector(".trend-chart .uplot", timeout=10_000)  # the trend, drawn by the vendored chart library
    assert "100.00%" in page.inner_text("[data-board='consistency-scores']")
