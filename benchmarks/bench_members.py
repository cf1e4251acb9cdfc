#!/usr/bin/env python
"""Rebalancing between projector members (two ``run_projector``-like member processes over the four projections):

(a) after one member is killed with -9, the time until each of its projections commits again (its checkpoint moves
    under the live traffic): target ≤ the lease's TTL + 2 s;
(b) meanwhile, the longest pause between two commits of the projections that did not move, against the longest
    pause in the 5 s before the kill (traffic alone leaves gaps: a projection commits only when an event of its
    types arrives); what the rebalance added is the difference: target ≤ 50 ms.

A paced appender keeps the market live (``--rate`` events a second) and a sampler reads every checkpoint every
millisecond. Prints one JSON object; progress on stderr.
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from bench_projector import Servers, pct  # noqa: E402

from projections import keys  # noqa: E402
from projections.codec import text  # noqa: E402
from projections.eventstore import EventStore  # noqa: E402
from projections.queries import Queries  # noqa: E402
from projections.readmodels import PROJECTIONS  # noqa: E402
from projections.simulation.appender import append_events  # noqa: E402
from projections.simulation.market import Market  # noqa: E402


def say(message: str) -> None:
    print(f"[bench_members] {message}", file=sys.stderr, flush=True)


def owners(client: redis.Redis) -> dict[str, str]:
    """Each projection's owning member ('' for nobody), as the Shards page shows it."""
    return {row.partition.projection: row.owner for row in Queries(client).shards().partitions}


class Sampler(threading.Thread):
    """Every checkpoint read every millisecond: when each projection committed (its checkpoint moved)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client, self.halt = redis.Redis.from_url(url), threading.Event()
        self.commits: dict[str, list[float]] = {name: [] for name in PROJECTIONS}

    def run(self) -> None:
        last: dict[str, bytes | None] = {}
        names = list(PROJECTIONS)
        checkpoints = [keys.KeySpace(name).checkpoint for name in names]
        while not self.halt.is_set():
            values = self.client.mget(checkpoints)
            now = time.monotonic()
            for name, value in zip(names, values, strict=True):
                if value != last.get(name):
                    last[name] = value
                    self.commits[name].append(now)
            time.sleep(0.001)


def paced(uri: str, rate: float, halt: threading.Event) -> None:
    market = Market(seed=71, start=datetime.now(UTC), mean_interval_ms=int(1000 / rate))
    events = market.events(10_000_000)
    with EventStore(uri) as store:
        started, sent = time.monotonic(), 0
        while not halt.is_set():
            due = int((time.monotonic() - started) * rate)
            if due > sent:
                sent += append_events(store, (next(events) for _ in range(due - sent)), batch_size=100)
            time.sleep(0.002)


def longest_gap(times: list[float], start: float, end: float) -> float:
    inside = [t for t in times if start <= t <= end]
    return max((b - a for a, b in zip(inside, inside[1:])), default=end - start)


def run(events: int, rate: float, lease_ms: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-members-"))
    servers = Servers(tmp)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    halt = threading.Event()
    try:
        say(f"appending {events:,} events, then two members over the four projections")
        with EventStore(servers.uri) as store:
            append_events(store, Market(seed=70).events(events), batch_size=500)
        config = {"projection": "", "redis_url": servers.redis_url, "eventstore_uri": servers.uri, "lease_ms": lease_ms}
        for name in ("first", "second"):
            args = json.dumps({"id": name, "projections": list(PROJECTIONS), "config": config})
            with (tmp / f"{name}.log").open("ab") as log:
                procs[name] = subprocess.Popen([sys.executable, "-m", "projections.projector.member", args], cwd=ROOT, stdout=log,
                                               stderr=subprocess.STDOUT, env={"PYTHONPATH": str(ROOT)})
        client = redis.Redis.from_url(servers.redis_url)
        deadline = time.monotonic() + 300
        while not (set(owners(client).values()) == {"first", "second"}
                   and sorted(Counter(owners(client).values()).values()) == [2, 2]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the members did not split the projections: {owners(client)}")
            time.sleep(0.1)
        while not all(text(client.hget(keys.status(name), "state")) == "live" for name in PROJECTIONS):
            if time.monotonic() > deadline:
                raise RuntimeError("the projections did not catch up")
            time.sleep(0.1)
        appender = threading.Thread(target=paced, args=(servers.uri, rate, halt), daemon=True)
        appender.start()
        sampler = Sampler(servers.redis_url)
        sampler.start()
        time.sleep(5)  # the baseline: both members live under the traffic
        moved = [name for name, owner in owners(client).items() if owner == "first"]
        stayed = [name for name in PROJECTIONS if name not in moved]
        say(f"killing the first member (it owns {', '.join(moved)})")
        before_kill = time.monotonic()
        procs["first"].send_signal(signal.SIGKILL)
        procs["first"].wait()
        while set(owners(client).values()) != {"second"}:
            if time.monotonic() - before_kill > lease_ms / 1000 + 30:
                raise RuntimeError(f"the second member did not take over: {owners(client)}")
            time.sleep(0.01)
        while not all(any(t > before_kill for t in sampler.commits[name]) for name in moved):
            time.sleep(0.01)
        recovered = time.monotonic()
        time.sleep(3)  # the moved projections settle in; the others keep committing
        sampler.halt.set()
        sampler.join()
        back = {name: round(min(t for t in sampler.commits[name] if t > before_kill) - before_kill, 3) for name in moved}
        baseline = {name: longest_gap(sampler.commits[name], before_kill - 5, before_kill) for name in stayed}
        during = {name: longest_gap(sampler.commits[name], before_kill, recovered + 1) for name in stayed}
        gaps = [b - a for name in stayed for a, b in zip(sampler.commits[name], sampler.commits[name][1:])]
        return {
            "events_before": events, "live_rate_per_s": rate, "lease_ttl_s": lease_ms / 1000,
            "moved": moved, "stayed": stayed,
            "death_to_commit_s": back, "death_to_commit_max_s": max(back.values()),
            "target_death_to_commit_s": lease_ms / 1000 + 2,
            "death_to_commit_met": max(back.values()) <= lease_ms / 1000 + 2,
            "stayed_longest_pause_before_ms": {k: round(v * 1000, 1) for k, v in baseline.items()},
            "stayed_longest_pause_during_ms": {k: round(v * 1000, 1) for k, v in during.items()},
            "stayed_pause_p99_ms": round(pct(gaps, 99) * 1000, 1),
            "stayed_stall_added_ms": round(max(0.0, max(during[k] - baseline[k] for k in stayed)) * 1000, 1),
            "target_stayed_stall_added_ms": 50.0,
            "stayed_stall_met": max(during[k] - baseline[k] for k in stayed) * 1000 <= 50.0,
        }
    finally:
        halt.set()
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(15)
        servers.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller store")
    parser.add_argument("--rate", type=float, default=200.0, help="live events a second")
    parser.add_argument("--lease-ms", type=int, default=10_000)
    args = parser.parse_args()
    print(json.dumps(run(5_000 if args.quick else 50_000, args.rate, args.lease_ms), indent=2))


if __name__ == "__main__":
    main()
