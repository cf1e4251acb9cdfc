"""Operations queries: projection status, parked events, lag, canaries, Redis memory and latency, generations, health samples, published events."""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from projections import infrastructure, inventory, keys, redis_nodes
from projections.codec import text
from projections.connection import primaries_info
from projections.errors import AmbiguousEvent, BadEvent, NotParked
from projections.events import PortfolioSignificantlyUpdated, RiskLevelChanged, decode
from projections.eventstore import EventStore
from projections.health import HealthSample, worst_window
from projections.partitions import partitions_of
from projections.published import published_streams
from projections.queries.base import (
    QueriesBase,
    _i,
    _tm,
    check_projection,
    check_user,
    percentile,
)
from projections.readmodels import PROJECTIONS
from projections.status import ProjectionStatus, combine, parse_status

CANARY_WINDOW_MS = 600_000  # the canaries' p50/p99 are over the last ten minutes


MEMORY_ESTIMATE_CACHE_S = 30.0  # memory per projection is sampled at most this often per process


GENERATIONS_CACHE_S = 30.0  # a projection's generations are scanned at most this often, unless one comes or goes


@dataclass(frozen=True)
class ParkedEvent:
    event_id: str
    stream: str
    position: int
    type: str
    field: str
    reason: str
    recorded_at: int
    retried: bool
    decision: str
    key: str = ""  # its name in the parked hash: ``stream/id`` (keys.parked_member), or the id alone if parked before


@dataclass(frozen=True)
class LagSample:
    at_ms: int
    lag_seconds: float


@dataclass(frozen=True)
class CanaryFreshness:
    """A projection's freshness canaries (``projector/canary.py``): the newest its live projector
    committed, and append -> commit in ms (appender's clock to projector's) over the last ``window_ms``:
    ``count`` canaries, their nearest-rank p50/p99 (None when the window holds none)."""

    projection: str
    canary_id: str  # the newest canary committed
    appended_at_ms: int  # when it was appended (the appender's clock)
    committed_at_ms: int  # when the batch holding it committed (the projector's clock)
    count: int
    p50_ms: int | None
    p99_ms: int | None
    window_ms: int
    now_ms: int

    @property
    def last_ms(self) -> int:
        """Append -> commit of the newest canary."""
        return self.committed_at_ms - self.appended_at_ms

    @property
    def last_seen_ms(self) -> int:
        return self.committed_at_ms

    @property
    def age_ms(self) -> int:
        """How long ago the projection last committed a canary: it grows while it sees none."""
        return max(0, self.now_ms - self.committed_at_ms)


@dataclass(frozen=True)
class CanaryAppend:
    """The newest canary beat appended (whichever projection has seen it)."""

    canary_id: str
    appended_at_ms: int
    position: int


PublishedEvent = RiskLevelChanged | PortfolioSignificantlyUpdated


def published_events(store: EventStore, user_id: str, limit: int = 20) -> list[PublishedEvent]:
    """The newest ``limit`` domain events the live projector published about the user (both kinds,
    newest first), read from their streams in the event store (:mod:`projections.published`)."""
    found: list[PublishedEvent] = []
    for stream in published_streams(check_user(user_id)):
        for item in store.read_stream_newest(stream, limit):
            try:
                event = decode(item)
            except BadEvent:
                continue
            if isinstance(event, (RiskLevelChanged, PortfolioSignificantlyUpdated)):
                found.append(event)
    return sorted(found, key=lambda e: e.envelope.position, reverse=True)[:limit]


def _parked(d: Mapping[str, Any], key: str) -> ParkedEvent:
    return ParkedEvent(
        d["eventId"], d["stream"], int(d["position"]), d["type"], d["field"], d["reason"], int(d.get("recordedAt", 0)),
        bool(d.get("retried", False)), d.get("decision", ""), key,
    )


class OperationsQueries(QueriesBase):
    def projection_status(self, projection: str | None = None) -> list[ProjectionStatus]:
        """Status of one or every projection, in one round trip."""
        names = [check_projection(projection)] if projection else list(PROJECTIONS)
        spreads = [self.spread(name) for name in names]
        pipe = self.client.pipeline(transaction=False)
        for spread in spreads:
            for part in partitions_of(spread.projection, spread.count):
                pipe.hgetall(keys.status(part.tag))
                pipe.get(keys.heartbeat(part.tag))
                pipe.hlen(keys.parked(part.tag))
        replies = iter(pipe.execute())
        out = []
        for spread in spreads:  # a projection split into partitions: their figures summed, the worst one named
            parts = [(part.label, parse_status(part.tag, _tm(next(replies)), next(replies), int(next(replies)),
                                               spread.generation)) for part in partitions_of(spread.projection, spread.count)]
            out.append(combine(spread.projection, parts))
        return out

    def write_refusal(self) -> str:
        """Why Redis refuses writes now, with the figures ('' while it takes them): ``maxmemory`` reached under the
        ``noeviction`` policy, which evicts nothing to make room (every projector then stalls)."""
        for node, memory in primaries_info(self.client, "memory").items():
            used, most = int(memory.get("used_memory", 0)), int(memory.get("maxmemory", 0))
            if not most or used <= most or memory.get("maxmemory_policy") != "noeviction":
                continue
            where = f" on node {node}" if node else ""
            return (f"Redis refuses writes (out of memory{where}): {used / 2**20:,.1f} MiB used of its maxmemory "
                    f"{most / 2**20:,.1f} MiB, policy noeviction")
        return ""

    def parked_events(self, projection: str, limit: int | None = 100, newest: bool = False) -> list[ParkedEvent]:
        """Parked events of ``projection`` (of all its partitions): the oldest ``limit`` (None: all) by position,
        oldest first (``newest``: the newest ``limit``, newest first)."""
        tags = self.spread(check_projection(projection)).tags
        end = -1 if limit is None else limit - 1
        pipe = self.client.pipeline(transaction=False)
        for tag in tags:
            if newest:
                pipe.zrevrange(keys.parked_index(tag), 0, end, withscores=True)
            else:
                pipe.zrange(keys.parked_index(tag), 0, end, withscores=True)
        found = sorted(((float(score), text(m), tag) for tag, rows in zip(tags, pipe.execute()) for m, score in rows),
                       reverse=newest)[: None if limit is None else limit]
        if not found:
            return []
        pipe = self.client.pipeline(transaction=False)
        for _, member, tag in found:
            pipe.hget(keys.parked(tag), member)
        return [_parked(json.loads(text(r)), m) for (_, m, _), r in zip(found, pipe.execute()) if r is not None]

    def parked_member(self, projection: str, name: str) -> str:
        """The parked event of ``projection`` an operator names by ``name``: ``stream/id``, its commit position, or
        its event id alone when no other parked event has that id (event ids are unique only within a stream).
        Raises NotParked if none is, AmbiguousEvent (listing each as ``stream/id`` with its position) if several."""
        return self.parked_place(projection, name)[1]

    def parked_place(self, projection: str, name: str) -> tuple[str, str]:
        """(the tag of the partition that parked it, its member) of the event :meth:`parked_member` names."""
        proj = check_projection(projection)
        found = sorted((tag, member) for tag in self.spread(proj).tags for member in self._parked_named(tag, name))
        if not found:
            raise NotParked(f"event {name} is not parked in the {proj} projection; nothing to retry")
        if len(found) == 1:
            return found[0]
        scores = [self.client.zscore(keys.parked_index(tag), member) for tag, member in found]
        listed = ", ".join(f"{m} (position {int(p) if p is not None else '?'})" for (_, m), p in zip(found, scores))
        raise AmbiguousEvent(f"event id {name} names {len(found)} parked events of the {proj} projection: "
                             f"{listed}; name one as stream/id or by its commit position")

    def _parked_named(self, proj: str, name: str) -> set[str]:
        """The members of the parked hash of ``proj`` (a projection's or a partition's tag) that ``name`` may mean
        (see :meth:`parked_member`)."""
        found: set[str] = set()
        if self.client.hexists(keys.parked(proj), name):  # stream/id, or an id parked before issue 22
            found.add(name)
        if name.isdigit():  # event ids are UUIDs: digits alone are a commit position
            found.update(text(m) for m in self.client.zrangebyscore(keys.parked_index(proj), name, name))
        elif "/" in name:  # a record parked before issue 22 is named by its id alone: find it by its stream too
            stream, _, event_id = name.rpartition("/")
            old = self.client.hget(keys.parked(proj), event_id)
            if old is not None and json.loads(text(old)).get("stream") == stream:
                found.add(event_id)
        else:
            pattern = "*/" + "".join(f"\\{c}" if c in "*?[]\\" else c for c in name)
            found.update(text(f) for f, _ in self.client.hscan_iter(keys.parked(proj), match=pattern, count=1000))
        return found

    def lag_history(self, projection: str, now_ms: int) -> list[LagSample]:
        """Lag samples of the last hour (see ``projector/lag.py``), oldest first."""
        name = check_projection(projection)
        members = self.client.zrangebyscore(keys.lag_history(name), now_ms - keys.LAG_HISTORY_MS, "+inf")
        samples = []
        for member in members:
            at, _, lag = text(member).partition(":")
            samples.append(LagSample(int(at), float(lag)))
        return samples

    def canary(self, projection: str, now_ms: int | None = None, window_ms: int = CANARY_WINDOW_MS) -> CanaryFreshness | None:
        """``projection``'s freshness canaries (see :class:`CanaryFreshness`); None if it never committed one
        (within the hour the samples are kept)."""
        name = check_projection(projection)
        now = int(time.time() * 1000) if now_ms is None else now_ms
        samples = keys.canary_samples(self.spread(name).tags[0])  # a projection split: its partition 0 records them
        pipe = self.client.pipeline(transaction=False)
        pipe.zrange(samples, -1, -1)
        pipe.zrangebyscore(samples, now - window_ms, "+inf")
        newest, recent = pipe.execute()
        if not newest:
            return None
        committed, appended, canary_id = text(newest[0]).split(":", 2)
        figures = [int(c) - int(a) for c, a, _ in (text(m).split(":", 2) for m in recent)]
        return CanaryFreshness(name, canary_id, int(appended), int(committed), len(figures), percentile(figures, 50),
                               percentile(figures, 99), window_ms, now)

    def canary_appended(self) -> CanaryAppend | None:
        """The newest canary beat appended, or None if none was."""
        d = _tm(self.client.hgetall(keys.canary_appended()))
        return CanaryAppend(d["canaryId"], int(d["appendedAt"]), _i(d.get("position"))) if d.get("canaryId") else None

    def redis_memory(self) -> infrastructure.RedisMemory:
        return infrastructure.redis_memory(self.client)

    def projection_memory(self, max_age: float = MEMORY_ESTIMATE_CACHE_S) -> infrastructure.MemoryEstimate:
        """Memory per projection, estimated from a bounded sample of keys; measured at most every ``max_age`` s."""
        cached = self._memory
        if cached is None or time.time() - cached.measured_at > max_age:
            cached = self._memory = infrastructure.memory_by_projection(self.client, list(PROJECTIONS))
        return cached

    def redis_nodes(self) -> list[redis_nodes.RedisNode]:
        """The Redis servers (the primary and its replicas; a cluster's nodes): role, memory, operations a second,
        replication offset, link, and the live partitions each primary holds."""
        live = [p for name in PROJECTIONS for p in partitions_of(name, self.spread(name).count)]
        return redis_nodes.redis_nodes(self.client, partitions=live)

    def redis_latency(self, n: int = infrastructure.PING_ROUND_TRIPS) -> infrastructure.Latency:
        """PING round trips from this process."""
        return infrastructure.round_trips(self.client.ping, n)

    def query_latency(self, n: int = infrastructure.QUERY_ROUND_TRIPS) -> infrastructure.Latency:
        """Round trips of a typical query (every projection's status) from this process."""
        return infrastructure.round_trips(self.projection_status, n)

    def infra_history(self, series: list[str], now_ms: int) -> dict[str, list[tuple[int, float]]]:
        """Infrastructure samples of the last hour per series, oldest first (see ``infrastructure.record_samples``)."""
        return infrastructure.read_history(self.client, series, now_ms)

    def generations(self, projection: str, max_age: float = GENERATIONS_CACHE_S) -> list[inventory.Generation]:
        """Every generation of ``projection`` present in Redis with its role, keys and memory (estimated; see
        ``projections/inventory.py``). The roles are read each time (a probe, two round trips); the keys are
        counted by a SCAN at most every ``max_age`` s, and again as soon as the probe sees a generation come or go."""
        name = check_projection(projection)
        cached = self._scans.get(name)
        if cached is not None:
            at, counted, before = cached
            seen = inventory.probe(self.client, name, inventory.numbers_to_probe(counted))
            if time.monotonic() - at <= max_age and seen.marks == before.marks:
                return inventory.describe(name, counted, seen)
        counted = inventory.count(self.client, name)
        seen = inventory.probe(self.client, name, inventory.numbers_to_probe(counted))
        self._scans[name] = (time.monotonic(), counted, seen)
        return inventory.describe(name, counted, seen)

    def health_samples(self, projection: str) -> list[HealthSample]:
        """The projector's status samples (``projector/status.py``), newest first: the health window."""
        tags = self.spread(check_projection(projection)).tags
        pipe = self.client.pipeline(transaction=False)
        for tag in tags:
            pipe.lrange(keys.health_samples(tag), 0, -1)
        windows = [[s for s in (HealthSample.decode(text(m)) for m in members) if s is not None] for members in pipe.execute()]
        return windows[0] if len(windows) == 1 else worst_window(windows)
