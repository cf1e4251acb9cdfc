#!/usr/bin/env python
"""Rebuilds, measured (JSON on stdout, progress on stderr):

    python benchmarks/bench_rebuild.py [--events N | --quick]

For each projection, in the same run on the same store: (a) a plain catch-up from nothing
(the live projector's speed) and (r) a full rebuild into a new generation with the live
projector running beside it and a paced appender adding ``--rate`` events a second, ending
with the flip; the ratio r ÷ a (target ≥ 0.8), how long the live projector stood still for
the flip (target ≤ 50 ms), and a per-user rebuild of the busiest user. The store and Redis
are separate processes (``bench_projector.Servers``); the appender is a thread.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402
from bench_projector import Servers, config  # noqa: E402

from projections import keys  # noqa: E402
from projections.eventstore import EventStore  # noqa: E402
from projections.maintenance.control import Unattended  # noqa: E402
from projections.maintenance.generations import next_generation, switch_to  # noqa: E402
from projections.maintenance.user_rebuild import rebuild_user  # noqa: E402
from projections.projector.runner import Runner  # noqa: E402
from projections.queries import Queries  # noqa: E402
from projections.readmodels import PROJECTIONS  # noqa: E402
from projections.simulation.appender import append_events  # noqa: E402
from projections.simulation.market import Market  # noqa: E402


def say(message: str) -> None:
    print(f"[bench_rebuild] {message}", file=sys.stderr, flush=True)


class Paced(threading.Thread):
    """Appends simulated events at about ``rate`` a second until stopped."""

    def __init__(self, uri: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.uri, self.rate, self.halt, self.sent = uri, rate, threading.Event(), 0

    def run(self) -> None:
        market = Market(seed=123, users=1000, pairs=8, exchanges=4)
        with EventStore(self.uri) as store:
            started = time.monotonic()
            while not self.halt.is_set():
                due = int((time.monotonic() - started) * self.rate) - self.sent
                if due > 0:
                    self.sent += append_events(store, market.events(min(due, 50)), batch_size=50)
                else:
                    self.halt.wait(0.005)


def catch_up(s: Servers, name: str) -> dict[str, float]:
    client = redis.Redis.from_url(s.redis_url)
    for key in client.scan_iter(match=keys.projection_pattern(name)):
        client.delete(key)
    runner = Runner(config(name, s))
    start = time.perf_counter()
    runner.run()
    elapsed = time.perf_counter() - start
    return {"events": runner.status.applied, "seconds": round(elapsed, 3), "events_per_s": round(runner.status.applied / elapsed, 1)}


def rebuild(s: Servers, name: str, rate: float) -> dict[str, float]:
    client = redis.Redis.from_url(s.redis_url)
    live = Runner(replace(config(name, s), exit_when_caught_up=False))
    thread = threading.Thread(target=live.run, daemon=True)
    thread.start()
    while not live.caught_up:
        time.sleep(0.05)
    traffic = Paced(s.uri, rate)
    traffic.start()
    generation = next_generation(client, name)
    start = time.perf_counter()
    try:
        done = switch_to(client, config(name, s), generation, Unattended(), verify=True, flip_anyway=True, max_lag_s=5.0)
    finally:
        traffic.halt.set()
        traffic.join(10)
        live.stop()
        thread.join(30)
    elapsed = time.perf_counter() - start
    return {"events": done.applied, "seconds": round(elapsed, 3), "events_per_s": round(done.applied / elapsed, 1),
            "flip_pause_ms": done.pause_ms, "compared": done.compared, "differences": done.difference_count,
            "appended_meanwhile": traffic.sent}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--quick", action="store_true", help="20,000 events")
    parser.add_argument("--rate", type=float, default=200.0, help="appends a second during the rebuilds")
    args = parser.parse_args()
    n = 20_000 if args.quick else args.events
    result: dict[str, object] = {"events": n, "append_rate_during_rebuild": args.rate, "projections": {}}
    with tempfile.TemporaryDirectory() as tmp:
        s = Servers(Path(tmp))
        try:
            say(f"appending {n:,} simulated events")
            with EventStore(s.uri) as store:
                append_events(store, Market(seed=7, users=1000, pairs=8, exchanges=4).events(n), batch_size=500)
            for name in PROJECTIONS:
                say(f"{name}: plain catch-up, then a full rebuild beside the live projector at {args.rate:g} appends/s")
                a = catch_up(s, name)
                r = rebuild(s, name, args.rate)
                result["projections"][name] = {"catch_up": a, "rebuild": r,  # type: ignore[index]
                                               "rebuild_over_catch_up": round(r["events_per_s"] / a["events_per_s"], 3)}
            client = redis.Redis.from_url(s.redis_url)
            user = Queries(client).top_portfolios(1)[0].user_id
            say(f"per-user rebuild of {user}")
            start = time.perf_counter()
            with EventStore(s.uri) as store:
                done = rebuild_user(client, store, user)
            result["per_user"] = {"user": user, "events": sum(p.events for p in done.projections),
                                  "seconds": round(time.perf_counter() - start, 3)}
        finally:
            s.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
