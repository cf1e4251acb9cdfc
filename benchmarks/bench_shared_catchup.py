#!/usr/bin/env python
"""Catch-up of all four projections from nothing, against one bare esdbclient ``read_all`` of the same store:

(a) one process reading ``$all`` once for all four (the member's shared reader, ``projections/projector/fanout.py``):
    target ≤ 1.5 × the bare read;
(b) the same four runners in one process, each on a subscription of its own (the projector before the shared
    reader), for comparison;
(c) two member processes sharing the four projections (two each), each reading ``$all`` once: events/s per
    process, and CPU-seconds per event in the reader (the reader child process) and in the folds (the member).

Each variant runs in a process of its own (CPU measured by ``getrusage``: the process itself, and its reader
children once they have ended). Redis is emptied between variants; the store is the same. Prints one JSON object;
progress on stderr.

    .venv/bin/python benchmarks/bench_shared_catchup.py --events 200000
"""
from __future__ import annotations

import argparse
import json
import resource
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
from bench_projector import Servers, bench_read_all  # noqa: E402
from bench_rebuild import simulated_store  # noqa: E402

from projections import keys  # noqa: E402
from projections.eventstore import EventStore  # noqa: E402
from projections.maintenance.user_rebuild import heal  # noqa: E402
from projections.partitions import Partition  # noqa: E402
from projections.projector.member import Member  # noqa: E402
from projections.projector.runner import Runner, RunnerConfig, shared_reader  # noqa: E402
from projections.readmodels import PROJECTIONS  # noqa: E402
from projections.readmodels import model as model_named  # noqa: E402

HERE = Path(__file__).resolve()


def say(message: str) -> None:
    print(f"[bench_shared_catchup] {message}", file=sys.stderr, flush=True)


def heads(uri: str) -> dict[str, int]:
    with EventStore(uri) as store:
        found = {name: store.head(model_named(name).event_types) for name in PROJECTIONS}
    return {name: head.position if head else 0 for name, head in found.items()}


def all_caught_up(client: redis.Redis, targets: dict[str, int], names: list[str]) -> bool:
    for name in names:
        value = client.get(keys.KeySpace(name).checkpoint)
        if not value or int(value) < targets[name]:
            return False
    return True


def cpu() -> dict[str, float]:
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"self": me.ru_utime + me.ru_stime, "children": children.ru_utime + children.ru_stime}


def child(mode: str, redis_url: str, uri: str, names: list[str], member_id: str) -> None:
    """One variant in this process: run until ``names`` are caught up, print the seconds and CPU as JSON."""
    targets = heads(uri)
    client = redis.Redis.from_url(redis_url)
    base = RunnerConfig("", redis_url, uri, batch_size=1000, lease_ms=10_000)
    shared = shared_reader(base) if mode != "separate" else None
    stop = threading.Event()
    start = time.perf_counter()
    if mode == "member":
        def build(partition: Partition, token: str) -> Runner:
            return Runner(RunnerConfig(partition.projection, redis_url, uri, batch_size=1000), healer=heal, token=token,
                          client=client, shared=shared)

        member = Member(client, [Partition(n) for n in PROJECTIONS], build, base.lease_ms, member_id=member_id)
        thread = threading.Thread(target=member.run, args=(stop,), daemon=True)
        thread.start()

        def mine() -> list[str]:
            return [p.projection for p in member.running]
    else:
        runners = [Runner(RunnerConfig(n, redis_url, uri, batch_size=1000), healer=heal, client=client, shared=shared)
                   for n in names]
        threads = [threading.Thread(target=r.run, daemon=True) for r in runners]
        for t in threads:
            t.start()

        def mine() -> list[str]:
            return names
    owned: list[str] = []
    while True:
        owned = mine()
        if owned and (mode != "member" or len(owned) == 2) and all_caught_up(client, targets, owned):
            break
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "cpu": cpu(), "projections": owned}), flush=True)
    sys.stdin.read()  # the other members go on until every one has reported (a member leaving moves partitions)
    stop.set()
    if mode == "member":
        thread.join(30)
    else:
        for r in runners:
            r.stop()
        for t in threads:
            t.join(30)
    if shared is not None:
        shared.stop()


def run_children(s: Servers, mode: str, count: int) -> list[dict[str, Any]]:
    redis.Redis.from_url(s.redis_url).flushdb()
    procs = [subprocess.Popen([sys.executable, str(HERE), "--child", mode, s.redis_url, s.uri, ",".join(PROJECTIONS),
                               f"m{index}"], stdout=subprocess.PIPE, stdin=subprocess.PIPE) for index in range(count)]
    out = []
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"a {mode} child exited with {proc.wait()}")
        out.append(json.loads(line))
    for proc in procs:
        proc.communicate(b"", 120)
    return out


def summary(runs: list[dict[str, Any]], events: int, read_s: float) -> dict[str, Any]:
    wall = max(r["seconds"] for r in runs)
    return {
        "seconds": round(wall, 2), "over_read_all": round(wall / read_s, 2),
        "processes": [{"projections": r["projections"], "seconds": round(r["seconds"], 2),
                       "events_per_s": round(events / r["seconds"]),
                       "cpu_s_fold": round(r["cpu"]["self"], 2), "cpu_s_reader": round(r["cpu"]["children"], 2),
                       "cpu_us_per_event_fold": round(r["cpu"]["self"] / events * 1e6, 1),
                       "cpu_us_per_event_reader": round(r["cpu"]["children"] / events * 1e6, 1)} for r in runs],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="20,000 events")
    parser.add_argument("--store", type=Path, help="a directory to keep the store in and reuse on the next run")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, redis_url, uri, names, member_id = args.child
        return child(mode, redis_url, uri, names.split(","), member_id)
    n = 20_000 if args.quick else args.events
    result: dict[str, Any] = {"events": n}
    with tempfile.TemporaryDirectory() as tmp:
        if args.store:
            args.store.mkdir(parents=True, exist_ok=True)
        s = Servers(args.store or Path(tmp))
        try:
            simulated_store(s, n, args.store)
            count, read_s = bench_read_all(s.uri)
            cpu_before = cpu()["self"]
            bench_read_all(s.uri)
            result["read_all"] = {"events": count, "seconds": round(read_s, 2),
                                  "cpu_us_per_event": round((cpu()["self"] - cpu_before) / count * 1e6, 1)}
            say(f"bare read_all: {count:,} events in {read_s:.2f} s")
            for label, mode, processes in (("one_process_shared_reader", "shared", 1),
                                           ("one_process_four_subscriptions", "separate", 1),
                                           ("two_processes_shared_reader_each", "member", 2)):
                say(f"{label}: catching up all four projections from nothing")
                result[label] = summary(run_children(s, mode, processes), count, read_s)
                say(json.dumps(result[label]))
            result["target"] = "one_process_shared_reader.over_read_all <= 1.5"
        finally:
            s.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
