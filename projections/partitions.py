"""Partitions of a projection (the platform document's ``@ShardBy('user_id')``): which partition a user's
entities live in, and the name of each partition's Redis hash tag.

A user-keyed projection has ``count`` partitions, a power of two fixed per generation with the hash function
(CRC-32, to be recorded beside it): a user's partition is the CRC-32 of the UTF-8 user id, masked to
``count``. CRC-32 and not Python's ``hash``: the same id must land in the same partition in every process, on
every machine, in every release (``hash`` of a str is salted per process).

A partition's keys share one hash tag (:attr:`Partition.tag`): its checkpoint, lease, state epoch and read
models commit in one script, as a whole projection's did. With one partition the tag is the projection's name,
so an unpartitioned projection's keys are what they always were.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

from redis.crc import key_slot

from projections.errors import ConfigurationError

MAX_PARTITIONS = 1024


def check_count(count: int, name: str = "partitions") -> int:
    """``count`` if it is a power of two from 1 to :data:`MAX_PARTITIONS`; else a ConfigurationError naming ``name``."""
    if not 1 <= count <= MAX_PARTITIONS or count & (count - 1):
        raise ConfigurationError(name, f"must be a power of two from 1 to {MAX_PARTITIONS} (1, 2, 4, … 1024), got {count}")
    return count


def partition_of(user_id: str, count: int) -> int:
    """The partition of ``user_id`` among ``count`` (a power of two)."""
    return zlib.crc32(user_id.encode()) & (count - 1)


@dataclass(frozen=True, order=True, slots=True)
class Partition:
    """Partition ``index`` of ``count`` of ``projection``."""

    projection: str
    index: int = 0
    count: int = 1

    @property
    def tag(self) -> str:
        """The hash tag of its keys: ``portfolio`` for a projection in one partition, else ``portfolio.p03`` with,
        if need be, a suffix that spreads the partitions over a Redis Cluster's slots (:func:`spread_tag`)."""
        if self.count == 1:
            return self.projection
        return spread_tag(self.projection, self.index, self.count)

    @property
    def label(self) -> str:
        """How the console and the command line name it: ``portfolio`` or ``portfolio 3/16``."""
        return self.projection if self.count == 1 else f"{self.projection} {self.index}/{self.count}"

    def owns(self, user_id: str) -> bool:
        return self.count == 1 or partition_of(user_id, self.count) == self.index


SLOTS = 16384  # a Redis Cluster's hash slots


@lru_cache(maxsize=8192)
def spread_tag(projection: str, index: int, count: int) -> str:
    """The hash tag of partition ``index`` of ``count``: ``portfolio.p03``, or ``portfolio.p03.<n>`` with the
    smallest n that puts its slot (CRC16 of the tag) in the first quarter of the ``index``-th of ``count`` equal
    slot ranges. A cluster whose primaries hold equal contiguous slot ranges (as ``redis-cli --cluster create``
    makes them) then holds ``count / primaries`` partitions each, give or take one: 16 over 3 is 6/5/5, where
    the bare names put 8 of leaderboards' 16 on one primary."""
    width = max(2, len(str(count - 1)))
    base = f"{projection}.p{index:0{width}d}"
    low = index * SLOTS // count
    high = low + max(1, (SLOTS // count) // 4)
    salt = 0
    while not low <= key_slot((tag := base if salt == 0 else f"{base}.{salt}").encode()) < high:
        salt += 1
    return tag


def partitions_of(projection: str, count: int) -> list[Partition]:
    """Every partition of ``projection`` split ``count`` ways."""
    check_count(count)
    return [Partition(projection, index, count) for index in range(count)]


def holder_of(value: str | None) -> tuple[str, int] | None:
    """(member, epoch) of a partition lease's value (``member#epoch``); None if nobody holds it."""
    if not value or "#" not in value:
        return None
    member, _, epoch = value.rpartition("#")
    return (member, int(epoch)) if epoch.isdigit() else None
