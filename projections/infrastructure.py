"""Infrastructure figures and their history: Redis memory (whole and per projection), round-trip latency,
read-model update rates, the event store's head and append rate.

The figures are measured here, framework-free; ``Queries`` hands the current ones to the console and
/metrics, and Celery beat calls :func:`record_samples` every few seconds to keep an hour of each for the
Infrastructure page's charts (read back with :func:`read_history`). Like the lag history this is
observability, not a read model: one sorted set per series (member ``<at ms>:<value>``, score at ms),
trimmed on each write, outside any transaction (a lost sample costs a point on a chart).

Memory per projection is an **estimate** with a bounded cost: ``RANDOMKEY`` draws a fixed number of keys
(O(1) each, whatever the keyspace), ``MEMORY USAGE`` sizes them, and each projection's share of the draws
is scaled by ``DBSIZE``. A ``SCAN ... MATCH`` of one projection's keys would walk the whole keyspace (MATCH
filters after the walk), so its cost grows with Redis, not with the sample. A keyspace no larger than the
sample is measured exactly instead.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from projections import keys
from projections.codec import text
from projections.connection import primaries_info
from projections.errors import EventStoreUnavailable

if TYPE_CHECKING:  # the read side imports this module: it need not load esdbclient
    from projections.eventstore import EventStore, Head

MEMORY_SAMPLE_KEYS = 500  # keys drawn per estimate
OTHER = "other keys"
PING_ROUND_TRIPS = 20  # per latency figure
QUERY_ROUND_TRIPS = 5
APPEND_WINDOW_MS = 60_000  # the append rate is over the last minute of recorded times...
APPEND_READ_LIMIT = 1_000  # ...read from at most this many of the newest events

# Series of the Infrastructure page (seconds for latencies, bytes for memory, events a second for rates).
REDIS_USED = "redis-used-bytes"
REDIS_FRAGMENTATION = "redis-fragmentation"
PING_P50, PING_P99 = "redis-ping-p50-s", "redis-ping-p99-s"
QUERY_P50, QUERY_P99 = "query-p50-s", "query-p99-s"
STORE_HEAD = "store-head"
APPEND_RATE = "store-append-rate"


def memory_series(projection: str) -> str:
    return f"memory-bytes:{projection}"


def rate_series(projection: str) -> str:
    return f"update-rate:{projection}"


@dataclass(frozen=True)
class RedisMemory:
    used_bytes: int
    max_bytes: int  # 0: no maxmemory set
    rss_bytes: int
    fragmentation: float  # INFO's mem_fragmentation_ratio: RSS / used


@dataclass(frozen=True)
class ProjectionMemory:
    projection: str
    bytes: int  # estimated (exact when the whole keyspace was measured)
    keys: int  # estimated likewise
    drawn: int  # of the sampled keys, how many were this projection's


@dataclass(frozen=True)
class MemoryEstimate:
    projections: dict[str, ProjectionMemory]
    other: ProjectionMemory  # every other key (Celery's, Channels', these samples, ...), estimated likewise
    total_keys: int
    sampled_keys: int
    exact: bool  # every key was measured (a keyspace no larger than the sample)
    measured_at: float  # time.time()


@dataclass(frozen=True)
class Latency:
    """Round trips timed one after another, in seconds (nearest-rank percentiles)."""

    p50: float
    p99: float
    samples: int


@dataclass(frozen=True)
class StoreActivity:
    head: Head | None  # None: an empty store
    append_rate: float  # events a second over the last APPEND_WINDOW_MS (a lower bound when saturated)


def redis_memory(client: redis.Redis) -> RedisMemory:
    """Redis's memory; a cluster's summed over its primaries (its maxmemory 0 if any primary has no limit)."""
    found = list(primaries_info(client, "memory").values())
    if len(found) == 1:
        info = found[0]
        return RedisMemory(int(info.get("used_memory", 0)), int(info.get("maxmemory", 0)),
                           int(info.get("used_memory_rss", 0)), float(info.get("mem_fragmentation_ratio", 0.0)))
    used, rss = (sum(int(i.get(name, 0)) for i in found) for name in ("used_memory", "used_memory_rss"))
    limits = [int(i.get("maxmemory", 0)) for i in found]
    return RedisMemory(used, sum(limits) if all(limits) else 0, rss, round(rss / used, 2) if used else 0.0)


def memory_by_projection(client: redis.Redis, projections: Sequence[str], sample: int = MEMORY_SAMPLE_KEYS) -> MemoryEstimate:
    """Each projection's keys and bytes (all its generations, status, parked events), estimated from ``sample`` keys."""
    c: Any = client  # redis-py types replies as "Awaitable | value"; this is a sync client
    total = int(c.dbsize())
    exact = total <= sample
    if exact:
        drawn = [text(k) for k in c.scan_iter(count=1000)]
    else:
        pipe = c.pipeline(transaction=False)
        for _ in range(sample):
            pipe.randomkey()
        drawn = [text(k) for k in pipe.execute() if k is not None]
    pipe = c.pipeline(transaction=False)
    for key in drawn:
        pipe.memory_usage(key)
    sizes = [int(s or 0) for s in pipe.execute()] if drawn else []
    scale = 1.0 if exact or not drawn else total / len(drawn)
    # a projection's keys: under its own tag, or a partition's (``lucent:{portfolio.p03…}``)
    prefixes = [(name, (keys.tag(name) + ":", keys.tag(name)[:-1] + ".p")) for name in projections]
    groups: dict[str, list[int]] = {name: [] for name in [*projections, OTHER]}
    for key, size in zip(drawn, sizes):
        groups[next((name for name, starts in prefixes if key.startswith(starts)), OTHER)].append(size)
    out = {name: ProjectionMemory(name, round(sum(s) * scale), round(len(s) * scale), len(s)) for name, s in groups.items()}
    other = out.pop(OTHER)
    return MemoryEstimate(out, other, total, len(drawn), exact, time.time())


def round_trips(call: Callable[[], object], n: int) -> Latency:
    """Time ``n`` calls of ``call`` one after another."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    times.sort()
    return Latency(_rank(times, 0.50), _rank(times, 0.99), n)


def _rank(ordered: Sequence[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]


def store_activity(store: EventStore, now_ms: int) -> StoreActivity:
    """The head of ``$all`` and the append rate over the last minute, from the newest events' recorded times.

    Raises EventStoreUnavailable. With more than APPEND_READ_LIMIT events in the window, the rate is that many
    over the time they span (the store's clock only); else it is the events of the window over its length,
    measured against this process's clock (a skew of a second moves it by under 2%).
    """
    newest = store.newest(APPEND_READ_LIMIT)
    if not newest:
        return StoreActivity(None, 0.0)
    in_window = [h for h in newest if h.recorded_at > now_ms - APPEND_WINDOW_MS]
    if len(in_window) == len(newest) == APPEND_READ_LIMIT:
        span = newest[0].recorded_at - newest[-1].recorded_at
        rate = (len(newest) - 1) * 1000 / span if span > 0 else float(len(newest))
    else:
        rate = len(in_window) * 1000 / APPEND_WINDOW_MS
    return StoreActivity(newest[0], rate)


def record_samples(
    client: redis.Redis, store: EventStore | None, projections: Iterable[str], query: Callable[[], object], now_ms: int,
    sample: int = MEMORY_SAMPLE_KEYS,
) -> dict[str, float]:
    """Measure every figure, append each to its series at ``now_ms`` and trim them to the hour; return what was
    recorded. The store's figures are left out while it does not answer; a projection without a heartbeat
    records no update rate (a dead projector has none: the page says it is dead)."""
    names = list(projections)
    c: Any = client
    memory = redis_memory(client)
    ping = round_trips(c.ping, PING_ROUND_TRIPS)
    typical = round_trips(query, QUERY_ROUND_TRIPS)
    figures: dict[str, float] = {
        REDIS_USED: memory.used_bytes, REDIS_FRAGMENTATION: memory.fragmentation,
        PING_P50: ping.p50, PING_P99: ping.p99, QUERY_P50: typical.p50, QUERY_P99: typical.p99,
    }
    for name, estimate in memory_by_projection(client, names, sample).projections.items():
        figures[memory_series(name)] = estimate.bytes
    pipe = c.pipeline(transaction=False)
    for name in names:
        pipe.hget(keys.status(name), "throughput")
        pipe.exists(keys.heartbeat(name))
    replies = pipe.execute()
    for i, name in enumerate(names):
        throughput, alive = replies[2 * i], replies[2 * i + 1]
        if throughput is not None and alive:
            figures[rate_series(name)] = float(text(throughput))
    if store is not None:
        try:
            activity = store_activity(store, now_ms)
            figures[APPEND_RATE] = activity.append_rate
            if activity.head is not None:
                figures[STORE_HEAD] = activity.head.position
        except EventStoreUnavailable:
            pass
    pipe = c.pipeline(transaction=False)
    for series, value in figures.items():
        key = keys.infra_history(series)
        pipe.zadd(key, {f"{now_ms}:{value if isinstance(value, int) else f'{value:.6g}'}": now_ms})
        pipe.zremrangebyscore(key, "-inf", now_ms - keys.INFRA_HISTORY_MS)
    pipe.execute()
    return figures


def read_history(client: redis.Redis, series: Sequence[str], now_ms: int) -> dict[str, list[tuple[int, float]]]:
    """The samples of the last hour of each of ``series``, oldest first: (at ms, value)."""
    c: Any = client
    pipe = c.pipeline(transaction=False)
    for name in series:
        pipe.zrangebyscore(keys.infra_history(name), now_ms - keys.INFRA_HISTORY_MS, "+inf")
    out = {}
    for name, members in zip(series, pipe.execute()):
        points = []
        for member in members:
            at, _, value = text(member).partition(":")
            points.append((int(at), float(value)))
        out[name] = points
    return out
