"""The read side's common ground: identifier checks, reply helpers, ranked rows, and the base every subject's
queries share (one Redis client, the live generation resolved through its pointer)."""
from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from projections import infrastructure, inventory, keys, layout
from projections.codec import text
from projections.errors import InvalidIdentifier
from projections.events import is_identifier, is_pair
from projections.keys import KeySpace
from projections.partitions import Partition, partition_of, partitions_of
from projections.readmodels import PROJECTIONS

GENERATION_CACHE_S = 0.05  # short: after a flip, readers move to the new generation within 50 ms


def check_user(user_id: object) -> str:
    if not is_identifier(user_id):
        raise InvalidIdentifier("user id", user_id, "1-64 chars of [A-Za-z0-9_.-]")
    return str(user_id)


def check_pair(pair: object) -> str:
    if not is_pair(pair):
        raise InvalidIdentifier("pair", pair, "BASE-QUOTE, e.g. BTC-USD")
    return str(pair)


def check_projection(name: object) -> str:
    if name not in PROJECTIONS:
        raise InvalidIdentifier("projection", name, " | ".join(PROJECTIONS))
    return str(name)


def _f(value: Any, default: float = 0.0) -> float:
    return default if value in (None, "", b"") else float(text(value))


def _i(value: Any, default: int = 0) -> int:
    return default if value in (None, "", b"") else int(text(value))


def _tm(fields: Mapping[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in fields.items()}


@dataclass(frozen=True)
class Ranked:
    """A member of a ranking: its id, its score and its 1-based rank."""

    id: str
    score: float
    rank: int


def percentile(values: list[int], pct: float) -> int | None:
    """Nearest-rank percentile (an observed value, never interpolated); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


def _rank(zero_based: Any) -> int | None:
    return None if zero_based is None else int(zero_based) + 1


def _ranked(rows: list[tuple[Any, float]], start: int = 1) -> list[Ranked]:
    return [Ranked(text(m), float(s), start + i) for i, (m, s) in enumerate(rows)]


@dataclass(frozen=True)
class Spread:
    """A projection's live generation as its partitions' key spaces (one, unsplit, for most)."""

    projection: str
    generation: int
    count: int = 1

    @property
    def spaces(self) -> list[KeySpace]:
        return [layout.space(p, self.generation) for p in partitions_of(self.projection, self.count)]

    @property
    def tags(self) -> list[str]:
        """Each partition's hash tag (the projection's own name when it is not split)."""
        return [p.tag for p in partitions_of(self.projection, self.count)]

    @property
    def home(self) -> KeySpace:
        """Partition 0: where the home entities live (strategies), and the replicated ones (marks) are read."""
        return self.spaces[0]

    def of(self, user: str) -> KeySpace:
        """The key space of ``user``'s partition (built alone: readers call it once per user listed)."""
        return layout.space(Partition(self.projection, partition_of(user, self.count), self.count), self.generation)


class QueriesBase:
    """Queries over one Redis client (thread-safe; cheap to keep for the process)."""

    def __init__(self, client: redis.Redis) -> None:
        # redis-py types every reply as "Awaitable | value" (sync and async share stubs);
        # this is a sync client, so replies are plain values.
        self.client: Any = client
        self._generations: dict[str, tuple[float, int, int]] = {}
        self._memory: infrastructure.MemoryEstimate | None = None
        self._scans: dict[str, tuple[float, dict[int, inventory.Counted], inventory.Probe]] = {}

    def ks(self, projection: str) -> KeySpace:
        """The live generation's key space (its first partition's, for a projection split into partitions)."""
        return self.spread(projection).home

    def spread(self, projection: str) -> Spread:
        """The live generation's partitions as key spaces (pointer and layout read at most every 50 ms)."""
        cached = self._generations.get(projection)
        now = time.monotonic()
        if cached is None or now - cached[0] > GENERATION_CACHE_S:
            generation = _i(self.client.get(keys.generation_pointer(projection)), 1)
            count = layout.recorded(self.client, projection, generation) or 1
            cached = (now, generation, count)
            self._generations[projection] = cached
        _, generation, count = cached
        return Spread(projection, generation, count)

    def newest_day(self, projection: str) -> str:
        """The day of the newest event ``projection`` applied: the newest of its partitions' clocks."""
        pipe = self.client.pipeline(transaction=False)
        for space in self.spread(projection).spaces:
            pipe.hget(space.clock(), "day")
        return max((text(day) for day in pipe.execute()), default="")

    def top(self, names: Sequence[str], start: int, stop: int) -> list[tuple[Any, float]]:
        """Members ``start`` to ``stop`` (inclusive, 0-based) of the rankings ``names`` merged (one per partition),
        highest score first, ties as Redis orders them (member descending)."""
        if len(names) == 1:
            return list(self.client.zrevrange(names[0], start, stop, withscores=True))
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.zrevrange(name, 0, stop, withscores=True)
        merged = sorted((row for rows in pipe.execute() for row in rows), key=lambda r: (r[1], r[0]), reverse=True)
        return merged[start : stop + 1]

    def count(self, names: Sequence[str]) -> int:
        """Members of the rankings ``names`` (one per partition) in all."""
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.zcard(name)
        return sum(int(n) for n in pipe.execute())

    def rank_of(self, names: Sequence[str], own: str, member: str) -> int | None:
        """``member``'s 0-based place in the rankings ``names`` merged (``own``: the one it is in); None: unranked."""
        if len(names) == 1:
            found = self.client.zrevrank(own, member)
            return None if found is None else int(found)
        score = self.client.zscore(own, member)
        if score is None:
            return None
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.zcount(name, f"({score!r}", "+inf")
            pipe.zrangebyscore(name, score, score)
        replies = pipe.execute()
        above = sum(int(n) for n in replies[0::2])
        tied_ahead = sum(1 for tied in replies[1::2] for m in tied if text(m) > member)
        return above + tied_ahead

    def walk(self, names: Sequence[str], low: str, chunk: int) -> Iterator[list[tuple[str, float]]]:
        """The rankings ``names`` merged, from the top down to score ``low`` (inclusive; ``(x``: exclusive), ``chunk``
        members at a time, highest first."""
        cursors = [0] * len(names)
        buffers: list[list[tuple[str, float]]] = [[] for _ in names]
        done = [False] * len(names)
        while True:
            for i, name in enumerate(names):  # keep every partition's next member at hand
                if not buffers[i] and not done[i]:
                    rows = self.client.zrevrangebyscore(name, "+inf", low, start=cursors[i], num=chunk, withscores=True)
                    buffers[i] = [(text(m), float(sc)) for m, sc in rows]
                    cursors[i] += len(rows)
                    done[i] = len(rows) < chunk
            out: list[tuple[str, float]] = []
            while len(out) < chunk:
                heads = [(b[0][1], b[0][0], i) for i, b in enumerate(buffers) if b]
                if not heads:
                    break
                _, _, best = max(heads)
                out.append(buffers[best].pop(0))
                if not buffers[best] and not done[best]:
                    break  # refill that partition before going on, so the order stays exact
            if not out:
                return
            yield out
