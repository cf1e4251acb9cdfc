#!/usr/bin/env python
"""Live freshness under steady single appends, pass after pass, with each stage's share (JSON on stdout).

    python benchmarks/bench_freshness.py [--passes 10] [--seconds 10] [--rate 1000] [--seed-events N] [--quick]

On a store seeded with ``--seed-events`` simulated events, a live portfolio projector runs in its own process
(caught up first); then ``--passes`` consecutive passes, each ``--seconds`` of single appends at ``--rate`` a
second (open loop: each append is sent at its own time whether or not earlier ones were acknowledged), from
a load generator process of their own. Per pass:

* appends a second reached, and freshness p50/p99: append start → the projector's Redis commit that
  covers the event (target: p99 ≤ 50 ms in every pass, last pass ÷ first ≤ 1.2);
* each stage's p50/p99, per append: ``to_store`` (append start → the store's committer queue),
  ``queue_wait`` (→ its group's transaction began), ``sql`` (the group's inserts), ``commit`` (COMMIT, with
  fsync per the store's durability), ``ack_hold`` (commit → acknowledgement handed to the event loop: the
  store's delivery-first wait), ``ack`` (append start → acknowledgement received), ``delivery`` (commit →
  the subscription had sent the event), ``projector_batch`` (sent → the projector's batch holding it began
  its fold) and ``projector_commit`` (→ that batch's Redis commit);
* the store's committer: groups, operations per group, share of the pass it was busy;
* CPU-seconds of each process during the pass: the store, the projector, the load generator.

Store-side stages come from the store's own trace (``EVENTSTORE_LITE_TRACE``, off by default), projector
stages from the runner's hook; all timestamps are wall-clock seconds on the same machine.
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent))

import redis  # noqa: E402
from bench_projector import Servers, config, pct  # noqa: E402
from esdbclient import NewEvent, StreamState  # noqa: E402
from esdbclient.asyncio_client import AsyncEventStoreDBClient  # noqa: E402

from projections import keys  # noqa: E402
from projections.codec import text  # noqa: E402
from projections.eventstore import EventStore, ProposedEvent  # noqa: E402
from projections.maintenance.user_rebuild import heal  # noqa: E402
from projections.projector.runner import Runner  # noqa: E402
from projections.simulation.appender import append_events  # noqa: E402
from projections.simulation.market import Market  # noqa: E402

PROJECTION = "portfolio"  # folds every event type
CLK_TCK = os.sysconf("SC_CLK_TCK")
STAGES = ("to_store", "queue_wait", "sql", "commit", "ack_hold", "ack", "delivery", "projector_batch",
          "projector_commit")


def say(message: str) -> None:
    print(f"[bench_freshness] {message}", file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU-seconds a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# -- child processes: the live projector and the load generator ----------------------------------


def projector_child(redis_url: str, uri: str, out: str) -> None:
    """The live projector until SIGTERM, then each committed batch: (checkpoint, fold began, committed)."""
    halt = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: halt.set())
    commits: list[tuple[int, float, float]] = []
    began = [0.0]
    s = _Addresses(redis_url, uri)
    runner: Runner

    def hook(step: str) -> None:
        if step == "read":  # the batch is read and its fold begins
            began[0] = time.time()
        elif step == "commit":  # its Redis transaction committed
            commits.append((runner.status.checkpoint, began[0], time.time()))

    runner = Runner(replace(config(PROJECTION, s), exit_when_caught_up=False, batch_size=500, live_flush_ms=2),
                    hook=hook, healer=heal)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    halt.wait()
    runner.stop()
    thread.join(30)
    Path(out).write_text(json.dumps(commits))


class _Addresses:
    def __init__(self, redis_url: str, uri: str) -> None:
        self.redis_url, self.uri = redis_url, uri


def load_child(uri: str, n: int, rate: float, t0: float) -> None:
    """Print ``{"rows": [(position, sent, acked)], "cpu_s": ..., "refused": ...}`` for ``n`` single appends at
    ``rate`` from ``t0`` (``refused``: appends that failed)."""
    items = list(Market(seed=int(t0 * 1000) % 2**31, users=200, pairs=6, exchanges=3).events(n))  # new ids
    asyncio.run(_report(items, uri, t0, rate))


async def _report(items: list[tuple[str, ProposedEvent]], uri: str, t0: float, rate: float) -> None:
    rows, cpu, refused = await _append_paced(items, uri, t0, rate)
    print(json.dumps({"rows": rows, "cpu_s": round(cpu, 3), "refused": refused}), flush=True)
    os._exit(0)  # asyncio's teardown sometimes hangs on grpc.aio after failed calls: nothing is left to do


async def _append_paced(items: list[tuple[str, ProposedEvent]], uri: str, t0: float,
                        rate: float) -> tuple[list[tuple[int, float, float]], float, int]:
    """Open loop through esdbclient's asyncio client (its sync client starts a thread per call, which on two
    cores would cost the load generator more CPU than the store under test); CPU counted from ``t0``."""
    client = AsyncEventStoreDBClient(uri)
    await client.connect()
    rows: list[tuple[int, float, float]] = []
    refused: list[str] = []

    async def append(stream: str, event: NewEvent) -> None:
        sent = time.time()
        try:
            position = await client.append_to_stream(stream, current_version=StreamState.ANY, events=event)
        except Exception as exc:  # noqa: BLE001 - a refusal (e.g. too many calls in flight) is a figure
            refused.append(type(exc).__name__)
            return
        rows.append((position, sent, time.time()))

    tasks = []
    cpu0 = time.process_time() if t0 <= time.time() else None
    for i, (stream, event) in enumerate(items):
        delay = t0 + i / rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if cpu0 is None:
            cpu0 = time.process_time()
        tasks.append(asyncio.create_task(append(stream, event.to_new_event())))
    await asyncio.gather(*tasks)
    cpu = time.process_time() - (cpu0 or 0.0)
    await client.close()
    return sorted(rows), cpu, len(refused)


# -- the measurement --------------------------------------------------------------------------------


class Trace:
    """The store's trace file, indexed by position: each operation's group timings, and the sends."""

    def __init__(self, path: Path) -> None:
        self.groups: list[tuple[float, float, float, float, int]] = []  # began, written, committed, acked, ops
        self.ops: dict[int, tuple[float, int]] = {}  # position -> (submitted, group index)
        sent: list[tuple[int, float]] = []
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record[0] == "group":
                self.groups.append((*record[1:5], len(record[5])))
                for submitted, position in record[5]:
                    if position > 0:
                        self.ops[position] = (submitted, len(self.groups) - 1)
            elif record[0] == "sent":
                sent.append((record[1], record[2]))
        sent.sort()
        self.sent_positions = [p for p, _ in sent]
        self.sent_at = [at for _, at in sent]
        for i in range(len(self.sent_at) - 2, -1, -1):  # first time each position had been sent
            self.sent_at[i] = min(self.sent_at[i], self.sent_at[i + 1])

    def first_sent(self, position: int) -> float | None:
        i = bisect.bisect_left(self.sent_positions, position)
        return self.sent_at[i] if i < len(self.sent_at) else None


def summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(pct(values, 50), 2), "p99_ms": round(pct(values, 99), 2)}


def analyse(rows: list[list[float]], commits: list[list[float]], trace: Trace | None, since: float,
            until: float) -> dict[str, Any]:
    """Freshness and the stages of the appends in ``rows`` (one pass), and the committer's load in it."""
    checkpoints = [c[0] for c in commits]
    fresh: list[float] = []
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    for position, sent, acked in rows:
        position = int(position)
        stages["ack"].append((acked - sent) * 1000)
        i = bisect.bisect_left(checkpoints, position)
        if i == len(commits):
            continue
        _, fold_began, redis_committed = commits[i]
        fresh.append((redis_committed - sent) * 1000)
        stages["projector_commit"].append((redis_committed - fold_began) * 1000)
        if trace is None or position not in trace.ops:
            continue
        submitted, g = trace.ops[position]
        began, written, committed, acknowledged, _ = trace.groups[g]
        for name, ms in (("to_store", submitted - sent), ("queue_wait", began - submitted), ("sql", written - began),
                         ("commit", committed - written), ("ack_hold", acknowledged - committed)):
            stages[name].append(ms * 1000)
        at = trace.first_sent(position)
        if at is not None:
            stages["delivery"].append((at - committed) * 1000)
            stages["projector_batch"].append((fold_began - at) * 1000)
    result: dict[str, Any] = {"samples": len(fresh), "freshness": summary(fresh),
                              "stages": {name: summary(v) for name, v in stages.items() if v}}
    if trace is not None:
        result["committer"] = committer_load(trace, since, until)
    return result


def committer_load(trace: Trace, since: float, until: float) -> dict[str, float]:
    groups = [g for g in trace.groups if since <= g[0] < until]
    busy = sum(acked - began for began, _, _, acked, _ in groups)
    ops = sum(g[4] for g in groups)
    return {"groups": len(groups), "ops_per_group": round(ops / max(1, len(groups)), 2),
            "busy_share": round(busy / (until - since), 3),
            "commit_p99_ms": round(pct([(c - w) * 1000 for _, w, c, _, _ in groups], 99), 2),
            "commit_max_ms": round(max(((c - w) * 1000 for _, w, c, _, _ in groups), default=0.0), 2)}


def run_pass(s: Servers, projector: subprocess.Popen[bytes], n: int, rate: float, wal: Path) -> dict[str, Any]:
    """One pass of ``n`` appends at ``rate``; ``wal``: the store's write-ahead log, whose size is reported."""
    t0 = time.time() + 2  # the load generator starts sending on this clock, once it is up
    cpu_before = {"store": cpu_seconds(s.store.pid), "projector": cpu_seconds(projector.pid)}
    child = subprocess.run([sys.executable, str(HERE), "--load", s.uri, str(n), str(rate), str(t0)],
                           stdout=subprocess.PIPE, text=True, check=True)
    until = time.time()
    cpu = {name: round(cpu_seconds(pid) - cpu_before[name], 2)
           for name, pid in (("store", s.store.pid), ("projector", projector.pid))}
    load = json.loads(child.stdout)
    rows = load["rows"]
    cpu["load_generator"] = load["cpu_s"]
    wait_projected(s, rows[-1][0])
    return {"t0": t0, "until": until, "rows": rows, "cpu_s": cpu, "refused": load["refused"], "wal_mb": round(wal.stat().st_size / 2**20, 1) if wal.exists() else 0,
            "appends_per_s": round(len(rows) / (max(r[2] for r in rows) - t0), 1)}


def wait_projected(s: Servers, position: int, timeout: float = 60) -> None:
    client = redis.Redis.from_url(s.redis_url)
    deadline = time.monotonic() + timeout
    while int(text(client.hget(keys.status(PROJECTION), "checkpoint")) or 0) < position:
        if time.monotonic() > deadline:
            raise SystemExit(f"the projector did not reach {position} in {timeout}s")
        time.sleep(0.05)


def start_projector(s: Servers, out: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, str(HERE), "--projector", s.redis_url, s.uri, str(out)])
    client = redis.Redis.from_url(s.redis_url)
    mine = f":{proc.pid}:"
    deadline = time.monotonic() + 300
    status = keys.status(PROJECTION)
    while not (mine in text(client.hget(status, "projector")) and text(client.hget(status, "state")) == "live"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise SystemExit("the live projector did not go live")
        time.sleep(0.1)
    return proc


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    trace_path = tmp / "store-trace.jsonl"
    if not args.no_trace:
        os.environ["EVENTSTORE_LITE_TRACE"] = str(trace_path)  # the store process inherits it
    s = Servers(tmp)
    passes: list[dict[str, Any]] = []
    commits_out = tmp / "commits.json"
    try:
        if args.seed_events:
            say(f"seeding {args.seed_events:,} events")
            with EventStore(s.uri) as store:
                append_events(store, Market(seed=7, users=1000, pairs=8, exchanges=4).events(args.seed_events),
                              batch_size=500)
        say("the live projector catches up")
        projector = start_projector(s, commits_out)
        try:
            for number in range(args.passes):
                passes.append(run_pass(s, projector, int(args.seconds * args.rate), args.rate,
                                       tmp / "events.sqlite3-wal"))  # where Servers puts the store
                say(f"pass {number + 1}/{args.passes}: {passes[-1]['appends_per_s']} appends/s")
        finally:
            projector.send_signal(signal.SIGTERM)
            projector.wait(60)
    finally:
        s.stop()  # the store writes the rest of its trace as it stops
    commits = json.loads(commits_out.read_text())
    if args.keep:
        keep = Path(args.keep)
        keep.mkdir(parents=True, exist_ok=True)
        (keep / "passes.json").write_text(json.dumps(passes))
        (keep / "commits.json").write_text(json.dumps(commits))
        if trace_path.exists():
            (keep / "store-trace.jsonl").write_bytes(trace_path.read_bytes())
    trace = Trace(trace_path) if trace_path.exists() else None
    results = []
    for p in passes:
        figures = analyse(p["rows"], commits, trace, p["t0"], p["until"])
        results.append({"appends_per_s": p["appends_per_s"], "refused": p["refused"], **figures, "cpu_s": p["cpu_s"], "wal_mb": p["wal_mb"]})
    return {"passes": results}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passes", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seed-events", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="3 passes of 3 s on 10,000 seeded events")
    parser.add_argument("--no-trace", action="store_true", help="without the store's trace (no store stages)")
    parser.add_argument("--keep", metavar="DIR", help="keep the raw timings (appends, commits, store trace) in DIR")
    parser.add_argument("--projector", nargs=3, metavar=("REDIS", "URI", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--load", nargs=4, metavar=("URI", "N", "RATE", "T0"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.projector:
        projector_child(*args.projector)
        return
    if args.load:
        uri, count, rate, t0 = args.load
        load_child(uri, int(count), float(rate), float(t0))
        return
    if args.quick:
        args.passes, args.seconds, args.seed_events = 3, 3.0, 10_000
    with tempfile.TemporaryDirectory() as tmp:
        result: dict[str, Any] = {"passes_of_s": args.seconds, "rate": args.rate, "seed_events": args.seed_events,
                                  "cpus": os.cpu_count(), **measure(args, Path(tmp))}
    p99s = [p["freshness"]["p99_ms"] for p in result["passes"]]
    result["freshness_p99_ms_per_pass"] = p99s
    result["last_over_first_p99"] = round(p99s[-1] / p99s[0], 2) if p99s and p99s[0] else None
    result["worst_p99_ms"] = max(p99s, default=None)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
