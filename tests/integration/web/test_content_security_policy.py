"""The Content-Security-Policy: no inline script or style anywhere, and htmx evaluating nothing."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from tests.accounts import account

pytestmark = pytest.mark.django_db

TEMPLATES = Path(__file__).resolve().parents[3] / "templates"


@pytest.fixture
def staff(client: Client) -> Client:
    client.force_login(account("ops", "pw-ops-123"))
    return client


def directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


@pytest.mark.parametrize("path", ["/", "/login/", "/admin/"])
def test_every_page_carries_a_policy_without_inline_or_eval(staff: Client, path: str) -> None:
    policy = directives(staff.get(path))
    for directive in ("script-src", "style-src", "default-src", "connect-src"):
        assert policy[directive] == ["'self'"], (directive, policy)
    assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]


def test_htmx_is_configured_without_eval_or_script_tags(staff: Client) -> None:
    page = staff.get("/").content.decode()
    assert ('<meta name="htmx-config" content=\'{"allowEval": false, "allowScriptTags": false, '
            '"includeIndicatorStyles": false}\'>') in page


def test_no_template_has_inline_script_style_or_event_handlers() -> None:
    inline = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+=|\shx-on|js:", re.IGNORECASE)
    found = [f"{path.relative_to(TEMPLATES)}: {match.group(0)}" for path in TEMPLATES.rglob("*.html")
             for match in inline.finditer(path.read_text())]
    assert found == []
