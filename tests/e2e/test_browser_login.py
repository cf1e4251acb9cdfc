"""A real browser signs in to the console served by daphne."""
from __future__ import annotations

import pytest

from tests.accounts import account

pytestmark = pytest.mark.browser


def test_operator_signs_in_and_sees_the_console(live_stack, page) -> None:
    account("ops", "browser-pw-1")
    page.goto(f"{live_stack.url}/")
    assert "/login/" in page.url
    page.fill("#id_username", "ops")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").is_visible()
    page.fill("#id_password", "browser-pw-1")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_stack.url}/")
    assert page.locator("h1").inner_text() == "Overview"
    assert page.locator(".who").inner_text().startswith("ops")
