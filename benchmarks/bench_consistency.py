#!/usr/bin/env python
"""Consistency checks, measured (JSON on stdout, progress on stderr):

    python benchmarks/bench_consistency.py [--events N | --quick] [--users U] [--store DIR] [--rate R]

On one store of ``--events`` simulated events (default 1,000,000), projected by a plain catch-up of every
projection, all in one run:

* a check of ``--users`` users (default 1,000) in every projection with user entities, against reading those
  users' events alone (the per-user reads the check makes; target ≤ 1.2×);
* a full check of the portfolio projection (its whole history replayed, shared read models included) against
  a full rebuild of it into a new generation (target ≤ 1.2×);
* the live projector's freshness (append → change notice) p50/p99 while the check of the users runs, with
  another process appending ``--rate`` events a second (target p99 ≤ 100 ms).

The store and Redis are separate processes, as are the live projector and the appender (``bench_rebuild``).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402
from bench_projector import Servers, config  # noqa: E402
from bench_rebuild import Child, catch_up, freshness, simulated_store  # noqa: E402

from projections import keys  # noqa: E402
from projections.codec import text  # noqa: E402
from projections.eventstore import EventStore  # noqa: E402
from projections.maintenance.consistency import check_users  # noqa: E402
from projections.maintenance.control import Unattended  # noqa: E402
from projections.maintenance.full_check import check_projection  # noqa: E402
from projections.maintenance.generations import switch_to  # noqa: E402
from projections.maintenance.retention import next_generation  # noqa: E402
from projections.maintenance.user_fold import history  # noqa: E402
from projections.readmodels import PROJECTIONS, model  # noqa: E402


def say(message: str) -> None:
    print(f"[bench_consistency] {message}", file=sys.stderr, flush=True)


def users_check(s: Servers, users: list[str]) -> dict[str, Any]:
    client = redis.Redis.from_url(s.redis_url)
    with EventStore(s.uri) as store:
        start = time.perf_counter()
        events = sum(sum(1 for _ in history(store, u)) for u in users)
        read_s = time.perf_counter() - start
        start = time.perf_counter()
        report = check_users(client, store, users, urls=(s.redis_url, s.uri))
        check_s = time.perf_counter() - start
    return {"users": len(users), "user_events": events, "read_alone_s": round(read_s, 3), "check_s": round(check_s, 3),
            "check_over_read": round(check_s / read_s, 3), "entities": report.checked, "differences": report.difference_count}


def full_check(s: Servers, name: str) -> dict[str, Any]:
    client = redis.Redis.from_url(s.redis_url)
    client.delete(keys.heartbeat(name))  # no live projector: the rebuild flips at once
    with EventStore(s.uri) as store:
        start = time.perf_counter()
        report = check_projection(client, store, name)
        check_s = time.perf_counter() - start
    start = time.perf_counter()
    done = switch_to(client, config(name, s), next_generation(client, name), Unattended(), verify=False, max_lag_s=1e9)
    rebuild_s = time.perf_counter() - start
    return {"projection": name, "events": done.applied, "full_check_s": round(check_s, 3), "rebuild_s": round(rebuild_s, 3),
            "check_over_rebuild": round(check_s / rebuild_s, 3), "entities": report.checked,
            "differences": report.difference_count}


def live_freshness(s: Servers, tmp: Path, users: list[str], rate: float) -> dict[str, Any]:
    client = redis.Redis.from_url(s.redis_url)
    name = "portfolio"
    live = Child(tmp, "live", name, s.redis_url, s.uri)
    deadline = time.monotonic() + 120
    mine = f":{live.proc.pid}:"
    while not (mine in text(client.hget(keys.status(name), "projector"))
               and text(client.hget(keys.status(name), "state")) == "live"):
        if time.monotonic() > deadline:
            raise SystemExit("the live portfolio projector did not go live")
        time.sleep(0.05)
    paced = Child(tmp, "paced", s.uri, str(rate))
    time.sleep(1)
    since = time.time()
    try:
        with EventStore(s.uri) as store:
            report = check_users(client, store, users, urls=(s.redis_url, s.uri))
    finally:
        until = time.time()
        rows = paced.stop()
        notices = live.stop()
    return {"append_rate": rate, "checked_users": len(users), "seconds": round(until - since, 3),
            "differences": report.difference_count,
            "live_freshness": {**freshness(notices, rows, model(name).event_types, since, until), "notices": len(notices)}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="20,000 events, 50 users")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--store", type=Path, help="a directory to keep the store in and reuse (bench_rebuild's too)")
    args = parser.parse_args()
    n, wanted = (20_000, 50) if args.quick else (args.events, args.users)
    result: dict[str, Any] = {"events": n}
    with tempfile.TemporaryDirectory() as tmp:
        if args.store:
            args.store.mkdir(parents=True, exist_ok=True)
        s = Servers(args.store or Path(tmp))
        try:
            users = simulated_store(s, n, args.store)
            for name in PROJECTIONS:
                say(f"{name}: catching up")
                result.setdefault("catch_up", {})[name] = catch_up(s, name)
            chosen = sorted(users)[:wanted]
            say(f"checking {len(chosen):,} users, then reading their events alone")
            result["users_check"] = users_check(s, chosen)
            say(json.dumps(result["users_check"]))
            say(f"the same check beside the live projector and {args.rate:g} appends/s")
            result["during_live_traffic"] = live_freshness(s, Path(tmp), chosen, args.rate)
            say(json.dumps(result["during_live_traffic"]))
            say("a full check of portfolio, then a full rebuild of it")
            result["full_check"] = full_check(s, "portfolio")
        finally:
            s.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
