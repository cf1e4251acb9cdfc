"""What an operator sees in a real browser: a refused live feed says why, identifiers wrap cleanly, no 404s."""
from __future__ import annotations

import pytest
import redis

from projections.queries import Queries
from tests.accounts import account
from tests.waiting import wait_until

pytestmark = pytest.mark.browser

# Where the text of an element breaks onto a new line: for each line break, the character before it.
LINE_BREAKS_JS = """(selector) => {
  const el = document.querySelector(selector);
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  const chars = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (let i = 0; i < node.length; i++) {
      const range = document.createRange();
      range.setStart(node, i);
      range.setEnd(node, i + 1);
      const rect = range.getClientRects()[0];
      if (rect) chars.push([node.data[i], rect.top, rect.height]);
    }
  }
  const before = [];
  for (let i = 1; i < chars.length; i++) {
    if (chars[i][1] > chars[i - 1][1] + chars[i - 1][2] / 2) before.push(chars[i - 1][0]);
  }
  return {text: chars.map((c) => c[0]).join(""), breaksAfter: before};
}"""


@pytest.fixture
def signed_in(live_stack, page):
    account("ops-screen", "browser-pw-3")
    page.goto(f"{live_stack.url}/login/")
    page.fill("#id_username", "ops-screen")
    page.fill("#id_password", "browser-pw-3")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_stack.url}/")
    page.wait_for_selector("body[data-live='on']", state="attached")
    return page


def test_a_refused_live_socket_says_why_and_is_not_retried(signed_in, live_stack) -> None:
    page = signed_in
    # the probe's own socket carries a query string, so that its websocket event (which may reach this side after
    # the listener below is added) is not counted as an attempt of htmx's
    code = page.evaluate("""() => new Promise((resolve) => {
        const ws = new WebSocket(`ws://${location.host}/ws/live/user/?probe=1`);
        ws.onclose = (e) => resolve(e.code);
    })""")
    assert code == 4400

    attempts: list[str] = []
    page.on("websocket", lambda ws: attempts.append(ws.url))
    # a live region whose socket the server refuses (the user page without its user), as htmx opens it
    page.evaluate("""() => {
        const el = document.createElement("div");
        el.setAttribute("hx-ext", "ws");
        el.setAttribute("ws-connect", "/ws/live/user/");
        document.querySelector("main").append(el);
        htmx.process(el);
    }""")
    page.wait_for_selector("body[data-live='refused']", state="attached")
    banner = page.locator("#live-banner")
    assert banner.is_visible()
    assert banner.inner_text().startswith("Live updates unavailable:")
    assert "reconnecting" not in banner.inner_text()
    # htmx would retry a 1006 or 1011 within a second (then with backoff); watch well past that
    page.wait_for_timeout(3000)
    assert [url for url in attempts if url.endswith("/ws/live/user/")] == [f"ws://127.0.0.1:{live_stack.port}/ws/live/user/"]
    assert page.get_attribute("body", "data-live") == "refused"


@pytest.mark.parametrize("width", [1440, 900])
def test_projector_id_breaks_only_after_a_colon(signed_in, live_stack, width: int) -> None:
    page = signed_in
    live_stack.start_projector()
    queries = Queries(redis.Redis.from_url(live_stack.env["REDIS_URL"]))
    projector = wait_until(lambda: queries.projection_status("portfolio")[0].projector, what="the projector to start")
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_stack.url}/projections/")
    shown = page.evaluate(LINE_BREAKS_JS, '#p-portfolio dd[data-field="projector"]')
    assert shown["text"] == projector
    assert set(shown["breaksAfter"]) <= {":"}, f"{projector!r} breaks after {shown['breaksAfter']}"


def test_login_and_overview_load_without_a_404(live_stack, page) -> None:
    missing: list[str] = []
    page.on("response", lambda r: r.status == 404 and missing.append(r.url))
    # the browser's own favicon request is no page response: its 404 shows only on the console
    page.on("console", lambda m: "404" in m.text and missing.append(m.location.get("url", m.text)))
    account("ops-icons", "browser-pw-4")
    page.goto(f"{live_stack.url}/login/", wait_until="networkidle")
    page.fill("#id_username", "ops-icons")
    page.fill("#id_password", "browser-pw-4")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_stack.url}/")
    page.wait_for_load_state("networkidle")
    assert missing == []
    icon = page.request.get(page.evaluate("document.querySelector('link[rel=icon]').href"))
    assert icon.ok and icon.headers["content-type"].startswith("image/svg+xml")
    assert page.request.get(f"{live_stack.url}/favicon.ico").ok
