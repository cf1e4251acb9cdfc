"""Projector members and the partitions they own.

A member is one projector process. It announces itself in ``keys.members()`` (a sorted set scored by when its
announcement expires, renewed every third of the TTL) and owns partitions through leases:

* **Claim.** A partition's lease is taken only while nobody holds it, in one script that also bumps the
  partition's fencing epoch; the lease holds ``<member>#<epoch>``, the token every commit of that ownership
  carries and the commit script compares. A member that loses a partition and takes it again later holds a new
  token, so a batch of its earlier ownership can never commit.
* **Share.** Each projection's partitions are split over the live members: ``count // M`` each, one more for
  ``count % M`` of them, by rank rotated per projection (16 over 3 members is 6/5/5, and which member has the
  extra one differs between projections). A member never claims past its share; one holding more (a member
  joined) hands the excess back after draining it: ``on_lose`` returns once the partition's runner stopped, and
  only then is the lease released, so the next owner's first commit comes after this one's last.
* **Preference.** Which partitions a member takes or hands back follows rendezvous hashing (CRC-32 of member
  and tag): stable, so a join or a leave moves only the partitions that have to move.
* **Loss.** A renewal refused (the lease expired while the member was paused, or it was taken) ends the
  ownership at once (``on_lose`` with "lost"); the fence refuses whatever that runner still tries to commit.

The caller runs :meth:`Membership.tick` every :attr:`Membership.interval` seconds (at most a second) and
:meth:`Membership.leave` when it stops.
"""
from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from projections import keys
from projections.codec import text
from projections.partitions import Partition

log = logging.getLogger(__name__)

_CLAIM = """
-- KEYS: the partition's lease, its epoch; ARGV: member, ttl (ms). The new epoch, or nil if the lease is held.
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '#' .. epoch, 'PX', ARGV[2])
return epoch
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

LOST, MOVED, LEAVING, RESPLIT = "lost", "moved", "leaving", "re-split"  # why a member stops owning a partition


@dataclass(frozen=True, slots=True)
class Claim:
    """One ownership of a partition: its token (``member#epoch``) is what its commits are fenced by."""

    partition: Partition
    token: str
    epoch: int


Gain = Callable[[Claim], None]
Lose = Callable[[Claim, str], None]


def share(count: int, members: Sequence[str], member: str, offset: int = 0) -> int:
    """How many of a projection's ``count`` partitions ``member`` may own among the live ``members`` (sorted;
    ``offset`` rotates which members get one more, per projection). The shares of all members add up to ``count``."""
    size = len(members)
    rank = members.index(member)
    return count // size + (1 if (rank - offset) % size < count % size else 0)


def preference(member: str, partition: Partition) -> int:
    """Rendezvous score: a member prefers the partitions it scores highest (stable across joins and leaves)."""
    return zlib.crc32(f"{member}|{partition.tag}".encode())


class Membership:
    """This member's announcement and the leases of the partitions it owns (see the module doc)."""

    def __init__(self, client: redis.Redis, member: str, partitions: Iterable[Partition], ttl_ms: int,
                 on_gain: Gain, on_lose: Lose, info: Callable[[], Mapping[str, str]] | None = None) -> None:
        self.client, self.member, self.ttl_ms = client, member, ttl_ms
        self.partitions = sorted(partitions)
        self.on_gain, self.on_lose, self.info = on_gain, on_lose, info
        self.owned: dict[Partition, Claim] = {}
        self.live: list[str] = []
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._projections = sorted({p.projection for p in self.partitions})

    @property
    def interval(self) -> float:
        """Seconds between two ticks: a third of the TTL, at most a second (a free partition is claimed within a
        second of its lease's expiry; a tick is a handful of cheap scripts)."""
        return min(self.ttl_ms / 3000, 1.0)

    def tick(self) -> None:
        """Renew what is owned, announce, hand back what is over the share, claim free partitions up to it.

        Renewing comes first: it is a PEXPIRE, not a deny-OOM write, so with Redis out of memory (the announcement's
        ZADD refused, the tick ended there) the member keeps what it owns instead of losing every lease and
        restarting its runners into a Redis that refuses their heartbeats."""
        self._renew_owned()
        self.live = self._announce()
        for offset, projection in enumerate(self._projections):
            mine = [c for p, c in self.owned.items() if p.projection == projection]
            candidates = [p for p in self.partitions if p.projection == projection]
            wanted = share(len(candidates), self.live, self.member, offset)
            if len(mine) > wanted:
                self._hand_back(sorted(mine, key=lambda c: preference(self.member, c.partition))[: len(mine) - wanted])
            elif len(mine) < wanted:
                free = sorted((p for p in candidates if p not in self.owned), key=lambda p: -preference(self.member, p))
                self._take(free, wanted - len(mine))
        self._describe()

    def repartition(self, partitions: Iterable[Partition]) -> None:
        """The partitions to share are now ``partitions`` (a rebuild into another count was flipped): those owned
        that are no longer among them are handed back (drained first); the next tick claims the new ones."""
        self.partitions = sorted(partitions)
        self._projections = sorted({p.projection for p in self.partitions})
        self._hand_back([c for p, c in self.owned.items() if p not in self.partitions], RESPLIT)

    def leave(self) -> None:
        """Stop owning everything (each drained first) and withdraw the announcement."""
        self._hand_back(list(self.owned.values()), LEAVING)
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(keys.members(), self.member)
        pipe.delete(keys.member_info(self.member))
        pipe.execute()

    def give_up(self, partition: Partition) -> None:
        """Stop owning ``partition`` whose runner already ended (nothing to drain): its lease is released, so it is
        claimed again, by any member, with a new epoch."""
        claim = self.owned.pop(partition, None)
        if claim is not None:
            self._release(keys=[keys.lease(partition.tag)], args=[claim.token])

    def _announce(self) -> list[str]:
        now = int(time.time() * 1000)
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(keys.members(), {self.member: now + self.ttl_ms})
        pipe.zremrangebyscore(keys.members(), "-inf", now)
        pipe.zrange(keys.members(), 0, -1)
        return sorted(text(m) for m in pipe.execute()[2])

    def _renew_owned(self) -> None:
        for partition, claim in list(self.owned.items()):
            if not self._renew(keys=[keys.lease(partition.tag)], args=[claim.token, self.ttl_ms]):
                del self.owned[partition]
                log.warning("member %s lost %s (its lease %s is no longer %s)", self.member, partition.label,
                            keys.lease(partition.tag), claim.token)
                self.on_lose(claim, LOST)

    def _hand_back(self, claims: Sequence[Claim], why: str = MOVED) -> None:
        for claim in claims:
            self.owned.pop(claim.partition, None)
            self.on_lose(claim, why)  # drained: its runner stopped before the lease goes
            self._release(keys=[keys.lease(claim.partition.tag)], args=[claim.token])
            log.info("member %s handed back %s (%s)", self.member, claim.partition.label, why)

    def _take(self, free: Sequence[Partition], wanted: int) -> None:
        for partition in free:
            if wanted <= 0:
                return
            tag = partition.tag
            epoch = self._claim(keys=[keys.lease(tag), keys.partition_epoch(tag)], args=[self.member, self.ttl_ms])
            if epoch is None:
                continue  # held by another member (it hands it back once over its share, or its lease expires)
            claim = Claim(partition, f"{self.member}#{int(epoch)}", int(epoch))
            self.owned[partition] = claim
            wanted -= 1
            log.info("member %s owns %s (epoch %s)", self.member, partition.label, claim.epoch)
            self.on_gain(claim)

    def _describe(self) -> None:
        fields: dict[str, Any] = {"partitions": ",".join(p.tag for p in sorted(self.owned)), "seen_ms": int(time.time() * 1000)}
        if self.info is not None:
            fields.update(self.info())
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(keys.member_info(self.member))
        pipe.hset(keys.member_info(self.member), mapping=fields)
        pipe.pexpire(keys.member_info(self.member), self.ttl_ms)
        pipe.execute()
