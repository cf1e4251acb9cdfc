"""The Infrastructure page in a real browser: every chart drawn with its units, redrawn when a sample arrives."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.test import override_settings

from lucent_admin.operations import tasks
from lucent_admin.operations.observability import sample_infrastructure
from tests.fixtures.live import sign_in, with_market
from tests.waiting import wait_until

pytestmark = pytest.mark.browser
CHARTS = ".trend-chart .uplot"


def test_the_infrastructure_page_draws_an_hour_of_samples_and_follows_new_ones(live_stack, page, tmp_path: Path) -> None:
    queries = with_market(live_stack, 2000, seed=5, users=15)
    with override_settings(EVENTSTORE_URI=live_stack.env["EVENTSTORE_URI"]):
        sample_infrastructure()
        wait_until(lambda: all(s.alive for s in queries.projection_status()), 20, what="every projector beating")
        sample_infrastructure()
        sign_in(page, live_stack, "ops-infra", "browser-pw-4")
        page.goto(f"{live_stack.url}/infrastructure/")
        page.wait_for_selector("body[data-live='on']", state="attached")
        wait_until(lambda: page.locator(CHARTS).count() == 5, 15, what="the five charts drawn by uPlot")
        text = page.inner_text("main")
        assert "No samples yet" not in text and "0.00" not in text
        for unit in ("MiB", "ms", "/s", "×"):
            assert unit in text, unit
        before = page.locator("#w-infra-memory").get_attribute("data-stamp")  # none: the swap replaces the node
        page.evaluate("document.querySelector('#w-infra-memory').dataset.stamp = 'old'")
        tasks.sample_infrastructure.delay()  # beat's task, run by the stack's worker: its notice redraws the page
        wait_until(lambda: page.locator("#w-infra-memory").get_attribute("data-stamp") is None, 15,
                   what="the memory widget pushed again after a sample")
        wait_until(lambda: page.locator(CHARTS).count() == 5, 15, what="the charts drawn again after the push")
        assert before is None
        shots = Path(os.environ.get("LUCENT_SCREENSHOT_DIR", str(tmp_path)))
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.screenshot(path=str(shots / "infrastructure.png"), full_page=True)
