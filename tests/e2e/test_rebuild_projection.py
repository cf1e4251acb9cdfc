"""An operator rebuilds a projection from the Projections page, watches the job and the flip, then rolls back."""
from __future__ import annotations

import pytest

from lucent_admin.operations.models import Job
from projections.maintenance.generations import live_generation
from tests.fixtures.live import sign_in, with_market

pytestmark = pytest.mark.browser


def test_rebuild_then_roll_back_from_the_projections_page(live_stack, page) -> None:
    queries = with_market(live_stack, events=3000, seed=43, users=20)
    client = queries.client
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
