"""Shards queries: the projector members and the partitions they own, as the Shards page and ``manage.py shards``
show them (two Redis round trips: the partitions and the announcements, then what each member says)."""
from __future__ import annotations

import time
from dataclasses import dataclass

from projections import keys
from projections.codec import text
from projections.partitions import Partition, holder_of, partitions_of
from projections.queries.base import QueriesBase, _f, _i, _tm
from projections.readmodels import PROJECTIONS
from projections.status import ProjectionState, parse_status


@dataclass(frozen=True)
class PartitionRow:
    """One partition: who owns it (and under which fencing epoch), for how long yet, where it stands."""

    partition: Partition
    owner: str  # the member holding its lease ('' if nobody does)
    epoch: int  # the epoch of that ownership (0: none)
    lease_left_ms: int  # how long the lease holds without a renewal (0: not held)
    state: ProjectionState
    checkpoint: int
    lag_seconds: float
    events_behind: int
    events_behind_bounded: bool
    throughput: float  # events a second of its last status interval
    updated_at: float  # when its runner last reported (epoch s; 0: never)


@dataclass(frozen=True)
class MemberRow:
    """One projector member, as it last described itself."""

    member: str
    host: str
    pid: int
    partitions: tuple[str, ...]  # the partitions it owns, as the console names them (``Partition.label``)
    events_per_second: float  # the sum of its partitions' throughput
    cpu_seconds: float
    rss_mb: float
    started_at: float  # epoch s
    expires_in_ms: int  # its announcement lapses after this without a renewal


@dataclass(frozen=True)
class Shards:
    partitions: list[PartitionRow]
    members: list[MemberRow]

    @property
    def unowned(self) -> list[PartitionRow]:
        return [p for p in self.partitions if not p.owner]


class ShardsQueries(QueriesBase):
    def shards(self, partitions: list[Partition] | None = None) -> Shards:
        """Every partition (default: those of each projection's live generation) with its owner and status, and
        every live member."""
        chosen = partitions or [p for name in PROJECTIONS
                                for p in partitions_of(name, self.spread(name).count)]
        now_ms = int(time.time() * 1000)
        pipe = self.client.pipeline(transaction=False)
        for p in chosen:
            pipe.get(keys.lease(p.tag))
            pipe.pttl(keys.lease(p.tag))
            pipe.hgetall(keys.status(p.tag))
            pipe.get(keys.heartbeat(p.tag))
        pipe.zrangebyscore(keys.members(), now_ms, "+inf", withscores=True)
        replies = pipe.execute()
        rows = []
        for i, p in enumerate(chosen):
            lease, ttl, status, beat = replies[4 * i : 4 * i + 4]
            value = text(lease)
            owner, epoch = holder_of(value) or (value, 0)  # a runner that took the lease itself has no epoch
            s = parse_status(p.tag, _tm(status), beat, 0, 1)
            rows.append(PartitionRow(p, owner, epoch, max(0, int(ttl)) if owner else 0,
                                     s.effective_state, s.checkpoint, s.lag_seconds, s.events_behind,
                                     s.events_behind_bounded, s.throughput, s.updated_at))
        announced = [(text(m), int(score)) for m, score in replies[-1]]
        return Shards(rows, self._members(announced, rows, now_ms))

    def _members(self, announced: list[tuple[str, int]], rows: list[PartitionRow], now_ms: int) -> list[MemberRow]:
        pipe = self.client.pipeline(transaction=False)
        for member, _ in announced:
            pipe.hgetall(keys.member_info(member))
        out = []
        for (member, expires), raw in zip(announced, pipe.execute(), strict=True):
            info = _tm(raw)
            owned = tuple(r.partition.label for r in sorted(rows, key=lambda r: r.partition) if r.owner == member)
            rate = sum(r.throughput for r in rows if r.owner == member)
            out.append(MemberRow(member, info.get("host", ""), _i(info.get("pid")), owned, rate, _f(info.get("cpu_s")),
                                 _f(info.get("rss_mb")), _i(info.get("started")) / 1000, max(0, expires - now_ms)))
        return sorted(out, key=lambda m: m.member)
