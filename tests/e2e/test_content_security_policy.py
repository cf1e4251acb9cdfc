"""The console in a real browser under its Content-Security-Policy: nothing refused, live updates on."""
from __future__ import annotations

import pytest

from tests.fixtures.live import sign_in

pytestmark = pytest.mark.browser

PAGES = ["/", "/risk/", "/projections/", "/infrastructure/", "/jobs/", "/audit/", "/admin/"]


def test_the_console_runs_under_its_policy_without_a_violation(live_stack, page) -> None:
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None)
    sign_in(page, live_stack, "chief", "browser-pw-3")
    for path in PAGES:
        page.goto(f"{live_stack.url}{path}")
        page.wait_for_load_state("load")
        if page.locator("[ws-connect]").count():
            page.wait_for_selector("body[data-live='on']")  # the websocket is allowed (connect-src 'self')
        if path == "/":
            assert page.evaluate("[htmx.config.allowEval, htmx.config.allowScriptTags]") == [False, False]
    assert refused == []
