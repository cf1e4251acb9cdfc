#!/usr/bin/env python
"""A busy user's per-user rebuild and consistency check, measured (JSON on stdout, progress on stderr):

    python benchmarks/bench_busy_user.py [--events N | --quick]

One store holds a market with a single trader, so nearly every event is the user's (trades, rebalances,
closures; the rest are prices). At a tenth of ``--events`` (default 1,000,000) and then at all of them, the
store is projected, the user's keys are deleted, and a fresh process — as a worker runs the job — rebuilds the
user, another checks the user; each reports its peak RSS above what it held before the work, and the time.
Target: the peak at N events within 1.2 × the peak at N/10 (memory flat), and the check finding 0 differences.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402
from bench_projector import Servers, config  # noqa: E402

from projections.eventstore import EventStore  # noqa: E402
from projections.keys import KeySpace  # noqa: E402
from projections.maintenance.consistency import check_user  # noqa: E402
from projections.maintenance.user_rebuild import heal, rebuild_user  # noqa: E402
from projections.projector.runner import Runner  # noqa: E402
from projections.readmodels import PROJECTIONS  # noqa: E402
from projections.simulation.appender import append_events  # noqa: E402
from projections.simulation.market import Market  # noqa: E402

HERE = Path(__file__).resolve()


def say(message: str) -> None:
    print(f"[bench_busy_user] {message}", file=sys.stderr, flush=True)


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def child(work: str, redis_url: str, uri: str, user: str) -> None:
    """One rebuild or check of ``user`` in this fresh process: its RSS before, its peak, its time."""
    client = redis.Redis.from_url(redis_url)
    with EventStore(uri) as store:
        store.ping()
        before = _rss_kb()
        start = time.perf_counter()
        if work == "rebuild":
            done = rebuild_user(client, store, user)
            events, differences = sum(p.events for p in done.projections), 0
        else:
            checks = check_user(client, store, user)
            events, differences = sum(c.events for c in checks), sum(len(c.differences) for c in checks)
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"rss_before_mb": round(before / 1024, 1), "peak_rss_mb": round(peak / 1024, 1),
                      "peak_over_before_mb": round((peak - before) / 1024, 1), "seconds": round(seconds, 2),
                      "events_folded": events, "differences": differences}))


def measure(s: Servers, work: str, user: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(HERE), "--child", work, s.redis_url, s.uri, user], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return dict(json.loads(out))


def at_size(s: Servers, market: Any, appended: int, n: int) -> tuple[int, dict[str, Any]]:
    """Append the market's events up to ``n``, project them, lose the user's keys, rebuild, check."""
    say(f"appending events {appended:,} .. {n:,}")
    with EventStore(s.uri) as store:
        append_events(store, (next(market) for _ in range(n - appended)), batch_size=1000)
    say("projecting")
    for name in PROJECTIONS:
        Runner(config(name, s), healer=heal).run()
    client = redis.Redis.from_url(s.redis_url)
    user = next(iter(client.zrange(KeySpace("portfolio").portfolio_values(), 0, 0))).decode()
    client.delete(KeySpace("portfolio").portfolio(user), KeySpace("risk").user_risk(user),
                  KeySpace("leaderboards").trader(user))
    say(f"rebuilding and checking {user}")
    rebuilt = measure(s, "rebuild", user)
    checked = measure(s, "check", user)
    say(json.dumps({"rebuild": rebuilt, "check": checked}))
    return n, {"events": n, "rebuild": rebuilt, "check": checked}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="50,000 events")
    parser.add_argument("--child", nargs=4, metavar=("WORK", "REDIS", "URI", "USER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    n = 50_000 if args.quick else args.events
    with tempfile.TemporaryDirectory(prefix="bench-busy-user-") as tmp:
        s = Servers(Path(tmp))
        try:
            market = iter(Market(seed=5, users=1, pairs=3, exchanges=2).events(n))
            appended, small = at_size(s, market, 0, n // 10)
            _, big = at_size(s, market, appended, n)
        finally:
            s.stop()
    ratios = {work: round(big[work]["peak_over_before_mb"] / max(small[work]["peak_over_before_mb"], 1.0), 2)
              for work in ("rebuild", "check")}
    print(json.dumps({"small": small, "big": big, "peak_big_over_small": ratios,
                      "target": "peak at N within 1.2 x the peak at N/10; 0 differences"}))


if __name__ == "__main__":
    main()
