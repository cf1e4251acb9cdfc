#!/usr/bin/env python
"""Rebuilds, measured (JSON on stdout, progress on stderr):

    python benchmarks/bench_rebuild.py [--events N | --quick] [--rate R]

On one store of ``--events`` simulated events (default 1,000,000), all in one run:

* for each projection, (a) a plain catch-up from nothing (the live projector's speed), then
  (r) a full rebuild into a new generation, run in this process as a worker runs it, while the
  live projector runs beside it in its own process and another process appends ``--rate``
  events a second (single appends): r ÷ a (target ≥ 0.8), the live projector's freshness
  (append → change notice) p50/p99 during the rebuild (target p99 ≤ 100 ms), how long the live
  projector stood still for the flip (target ≤ 50 ms), and this process's RSS (plus its reader
  child) sampled during the rebuild (flat);
* all four projections rebuilt at once, each in its own process as four workers would, against
  one bare esdbclient ``read_all`` of the same events (target ≤ 1.5×);
* a per-user rebuild of the user whose event count is nearest 10,000 (target ≤ 1 s).

The store and Redis are separate processes (``bench_projector.Servers``).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402
from bench_projector import Servers, bench_read_all, config, pct, rss_mb  # noqa: E402

from projections import keys  # noqa: E402
from projections.codec import text  # noqa: E402
from projections.eventstore import EventStore, ProposedEvent  # noqa: E402
from projections.maintenance.control import Unattended  # noqa: E402
from projections.maintenance.generations import switch_to  # noqa: E402
from projections.maintenance.retention import next_generation  # noqa: E402
from projections.maintenance.user_rebuild import rebuild_user  # noqa: E402
from projections.projector.runner import Runner  # noqa: E402
from projections.readmodels import PROJECTIONS, model  # noqa: E402
from projections.simulation.appender import append_events  # noqa: E402
from projections.simulation.market import Market  # noqa: E402

HERE = Path(__file__).resolve()
PER_USER_TARGET = 10_000  # events of the user rebuilt alone


def say(message: str) -> None:
    print(f"[bench_rebuild] {message}", file=sys.stderr, flush=True)


# -- child processes: the live projector, the paced appender, a rebuild as one worker ----------


def _until_terminated() -> threading.Event:
    halt = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: halt.set())
    return halt


def live_child(name: str, redis_url: str, uri: str, out: str) -> None:
    """The live projector: runs until SIGTERM, then writes its change notices (checkpoint, time)."""
    halt = _until_terminated()
    notices: list[tuple[int, float]] = []
    s = _Addresses(redis_url, uri)
    runner = Runner(replace(config(name, s), exit_when_caught_up=False, batch_size=500, live_flush_ms=2),
                    notifier=lambda n: notices.append((n["checkpoint"], time.time())))
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    halt.wait()
    runner.stop()
    thread.join(30)
    Path(out).write_text(json.dumps(notices))


def paced_child(uri: str, rate: float, out: str) -> None:
    """Single appends at ``rate`` a second until SIGTERM, then (position, sent, acked, type) of each."""
    halt = _until_terminated()
    rows: list[tuple[int, float, float, str]] = []
    events = Market(seed=os.getpid(), users=1000, pairs=8, exchanges=4).events(10_000_000)  # new ids each run
    with EventStore(uri) as store:
        started = time.monotonic()
        while not halt.is_set():
            if int((time.monotonic() - started) * rate) <= len(rows):
                halt.wait(0.001)
                continue
            stream, event = next(events)
            sent = time.time()
            position = store.append(stream, [event])
            rows.append((position, sent, time.time(), event.type))
    Path(out).write_text(json.dumps(rows))


def switch_child(name: str, redis_url: str, uri: str) -> None:
    """One projection rebuilt into a new generation, as one worker runs it."""
    client = redis.Redis.from_url(redis_url)
    switch_to(client, config(name, _Addresses(redis_url, uri)), next_generation(client, name), Unattended(),
              verify=False, max_lag_s=1e9)


class _Addresses:
    def __init__(self, redis_url: str, uri: str) -> None:
        self.redis_url, self.uri = redis_url, uri


class Child:
    """A child process of this script, stopped with SIGTERM; its JSON output read back."""

    def __init__(self, tmp: Path, mode: str, *args: str) -> None:
        self.out = tmp / f"{mode}-{time.monotonic_ns()}.json"
        self.proc = subprocess.Popen([sys.executable, str(HERE), f"--{mode}", *args, str(self.out)])

    def stop(self) -> Any:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        return json.loads(self.out.read_text())


# -- the measurements -----------------------------------------------------------------------


def clear(s: Servers, name: str) -> None:
    client = redis.Redis.from_url(s.redis_url)
    for key in client.scan_iter(match=keys.projection_pattern(name), count=1000):
        client.delete(key)


def catch_up(s: Servers, name: str) -> dict[str, float]:
    clear(s, name)
    runner = Runner(config(name, s))
    start = time.perf_counter()
    runner.run()
    elapsed = time.perf_counter() - start
    return {"events": runner.status.applied, "seconds": round(elapsed, 3), "events_per_s": round(runner.status.applied / elapsed, 1)}


def freshness(notices: list[list[float]], rows: list[list[Any]], types: tuple[str, ...], since: float,
              until: float) -> dict[str, float]:
    """Append → first change notice at or past its position, for the appends of the projection's
    ``types`` sent in [since, until]."""
    latencies, j = [], 0
    for position, sent, _acked, kind in sorted(rows):
        if kind not in types:
            continue
        while j < len(notices) and notices[j][0] < position:
            j += 1
        if j < len(notices) and since <= sent <= until:
            latencies.append((notices[j][1] - sent) * 1000)
    return {"samples": len(latencies), "p50_ms": round(pct(latencies, 50), 2), "p99_ms": round(pct(latencies, 99), 2)}


def rebuild(s: Servers, tmp: Path, name: str, rate: float, servers: set[int]) -> dict[str, Any]:
    client = redis.Redis.from_url(s.redis_url)
    live = Child(tmp, "live", name, s.redis_url, s.uri)
    status = keys.status(name)
    deadline = time.monotonic() + 120
    mine = f":{live.proc.pid}:"  # the live child's own status (the catch-up's lease may hold it off a while)
    while not (mine in text(client.hget(status, "projector")) and text(client.hget(status, "state")) == "live"):
        if time.monotonic() > deadline:
            raise SystemExit(f"the live {name} projector did not go live")
        time.sleep(0.05)
    paced = Child(tmp, "paced", s.uri, str(rate))
    rss: list[float] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.5):
            rss.append(rss_mb(servers | {live.proc.pid, paced.proc.pid}))

    sampler = threading.Thread(target=sample, daemon=True)
    time.sleep(1)  # the appender warms up; the freshness window starts with the rebuild
    sampler.start()
    since = time.time()
    start = time.perf_counter()
    try:
        done = switch_to(client, config(name, s), next_generation(client, name), Unattended(), verify=True,
                         flip_anyway=True, max_lag_s=5.0)
    finally:
        elapsed = time.perf_counter() - start
        until = time.time()
        sampling.set()
        rows = paced.stop()
        notices = live.stop()
    return {"events": done.applied, "seconds": round(elapsed, 3), "events_per_s": round(done.applied / elapsed, 1),
            "flip_pause_ms": done.pause_ms, "compared": done.compared, "differences": done.difference_count,
            "appended_meanwhile": len(rows), "live_freshness": {**freshness(notices, rows, model(name).event_types, since, until),
                                                                 "notices": len(notices)},
            "rss_mb": {"first": rss[0] if rss else None, "max": max(rss) if rss else None,
                       "last": rss[-1] if rss else None, "samples": len(rss)}}


def all_four(s: Servers) -> dict[str, Any]:
    """Every projection rebuilt at once, one process each, against one bare read_all."""
    client = redis.Redis.from_url(s.redis_url)
    client.delete(*[keys.heartbeat(name) for name in PROJECTIONS])  # no live projector: each flips at once
    count, read_s = bench_read_all(s.uri)
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, str(HERE), "--switch", name, s.redis_url, s.uri]) for name in PROJECTIONS]
    for proc in procs:
        if proc.wait(3600) != 0:
            raise SystemExit(f"a rebuild process exited with {proc.returncode}")
    wall = time.perf_counter() - start
    return {"read_all": {"events": count, "seconds": round(read_s, 3)}, "rebuild_all_seconds": round(wall, 3),
            "over_read_all": round(wall / read_s, 2)}


def per_user(s: Servers, user: str, events: int) -> dict[str, Any]:
    client = redis.Redis.from_url(s.redis_url)
    runs = []
    with EventStore(s.uri) as store:
        for _ in range(3):
            start = time.perf_counter()
            done = rebuild_user(client, store, user)
            runs.append(round(time.perf_counter() - start, 3))
    return {"user": user, "user_events": events, "events_folded": sum(p.events for p in done.projections),
            "writes": done.writes, "seconds_per_run": runs, "best_s": min(runs)}


def counted(events: Iterator[tuple[str, ProposedEvent]], counts: Counter[str]) -> Iterator[tuple[str, ProposedEvent]]:
    for stream, event in events:
        if not stream.startswith("prices-"):
            counts[stream.split("-", 1)[1]] += 1
        yield stream, event


def simulated_store(s: Servers, n: int, directory: Path | None) -> Counter[str]:
    """``n`` simulated events appended to the store (1,000 users, 8 pairs, 4 exchanges), or, in a ``directory``
    kept from an earlier run, reused; each user's event count."""
    kept = directory / "counts.json" if directory else None
    users: Counter[str] = Counter()
    if kept is not None and kept.exists():
        print(f"[bench] reusing the store in {directory}", file=sys.stderr, flush=True)
        users.update(json.loads(kept.read_text()))
        return users
    print(f"[bench] appending {n:,} simulated events", file=sys.stderr, flush=True)
    with EventStore(s.uri) as store:
        append_events(store, counted(Market(seed=7, users=1000, pairs=8, exchanges=4).events(n), users), batch_size=500)
    if kept is not None:
        kept.write_text(json.dumps(users))
    return users


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="20,000 events")
    parser.add_argument("--rate", type=float, default=200.0, help="appends a second during the rebuilds")
    parser.add_argument("--store", type=Path, help="a directory to keep the store in and reuse on the next run "
                        "(its events are appended once; Redis starts empty each run)")
    parser.add_argument("--only", nargs="*", default=list(PROJECTIONS), help="the projections rebuilt one by one")
    parser.add_argument("--live", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--paced", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--switch", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.live:
        return live_child(*args.live)
    if args.paced:
        return paced_child(args.paced[0], float(args.paced[1]), args.paced[2])
    if args.switch:
        return switch_child(*args.switch)
    n = 20_000 if args.quick else args.events
    result: dict[str, Any] = {"events": n, "append_rate_during_rebuild": args.rate, "projections": {}}
    with tempfile.TemporaryDirectory() as tmp:
        if args.store:
            args.store.mkdir(parents=True, exist_ok=True)
        s = Servers(args.store or Path(tmp))
        servers = {s.redis.pid, s.store.pid}
        try:
            users = simulated_store(s, n, args.store)
            for name in args.only:
                say(f"{name}: plain catch-up, then a full rebuild beside the live projector at {args.rate:g} appends/s")
                a = catch_up(s, name)
                r = rebuild(s, Path(tmp), name, args.rate, servers)
                result["projections"][name] = {"catch_up": a, "rebuild": r,
                                               "rebuild_over_catch_up": round(r["events_per_s"] / a["events_per_s"], 3)}
                say(json.dumps(result["projections"][name]))
            user = min(users, key=lambda u: abs(users[u] - PER_USER_TARGET))
            say(f"per-user rebuild of {user} ({users[user]:,} events)")
            result["per_user"] = per_user(s, user, users[user])
            say("all four projections rebuilt at once, one process each, against one bare read_all")
            result["all_four"] = all_four(s)
        finally:
            s.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
