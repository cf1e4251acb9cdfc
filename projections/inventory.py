"""The generations of a projection present in Redis: each one's role, key count and memory.

The read side (``Queries.generations``: the Projections page, ``manage.py generations``) and the engine
(``maintenance/generations.py``: which generation is kept, what a flip drops, which number a rebuild takes)
share this one view, so the console shows what the engine acts on.

* *Which generations.* One SCAN of the projection's generation keys (``lucent:{p}:g<N>:…`` and the
  lease ``…:g<N>-lease``), counted per generation. MATCH filters after the walk, so its cost grows with the
  whole keyspace: ``Queries`` keeps a scan for a while and scans again sooner only when a cheap probe (each
  generation's checkpoint and lease, and the next number's) sees a generation come or go.
* *Memory* is an estimate: ``MEMORY USAGE`` of up to ``sample`` keys of each generation (the first the SCAN
  returns, in hash order, so no particular kind of key) times its key count; exact when it has no more keys.
* *Roles* (:class:`Role`): live (the pointer), being written (its lease held by a writer no flip fenced),
  kept for a rollback (:func:`kept_of`), or an orphan (none of these: nothing will use it; the retention
  drops it).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis

from projections import keys, layout
from projections.codec import text
from projections.keys import KeySpace
from projections.writer import FLIPPED

SAMPLE = 100  # keys of a generation sized with MEMORY USAGE


class Role(StrEnum):
    LIVE = "live"
    WRITING = "writing"  # a job's runner holds its lease (a rebuild's new generation, a rollback's catch-up)
    KEPT = "kept"  # for a rollback, until the retention drops it
    ORPHAN = "orphan"


@dataclass(frozen=True)
class Counted:
    keys: int
    bytes: int  # estimated from ``sampled`` keys
    sampled: int


@dataclass(frozen=True)
class Probe:
    """A cheap look (two round trips) at what decides the roles: the pointer, the kept generation, and for each
    generation asked about whether its checkpoint exists and whether a writer holds its lease."""

    live: int
    kept: tuple[int, int] | None  # (generation, since ms)
    marks: dict[int, tuple[bool, bool]]  # generation -> (checkpoint exists, being written)
    checkpoints: dict[int, int | None]


@dataclass(frozen=True)
class Generation:
    projection: str
    generation: int
    role: Role
    keys: int
    bytes: int  # an estimate unless ``exact``
    sampled: int  # keys sized with MEMORY USAGE
    checkpoint: int | None  # None: no checkpoint key (a generation half dropped, or one a rebuild just began)
    kept_since_ms: int = 0  # KEPT: when the flip left it

    @property
    def exact(self) -> bool:
        return self.sampled >= self.keys


_NUMBER = re.compile(r"g(\d+)(:|-lease$)")


def number_of(projection: str, key: str) -> int | None:
    """The generation a key of ``projection`` (or of one of its partitions) belongs to (None: not a generation's)."""
    root = keys.tag(projection)[:-1]  # "lucent:{portfolio", then "}" or ".pNN}"
    if not key.startswith(root) or key[len(root) : len(root) + 1] not in ("}", "."):
        return None
    found = _NUMBER.match(key, key.find("}:", len(root)) + 2)
    return int(found.group(1)) if found else None


def patterns(projection: str) -> list[str]:
    """SCAN patterns of every generation key of ``projection``: under its own tag and its partitions'."""
    return [f"{keys.tag(projection)}:g*", f"{keys.tag(projection)[:-1]}.p*}}:g*"]


def count(client: redis.Redis, projection: str, sample: int = SAMPLE) -> dict[int, Counted]:
    """Every generation with a key in Redis: its keys counted by SCAN, its memory estimated from ``sample`` keys
    (``sample`` 0: not sized). A generation with only its lease counts 0 keys."""
    c: Any = client  # redis-py types replies as "Awaitable | value"; this is a sync client
    found: dict[int, int] = {}
    drawn: dict[int, list[str]] = {}
    for raw in (raw for pattern in patterns(projection) for raw in c.scan_iter(match=pattern, count=1000)):
        key = text(raw)
        n = number_of(projection, key)
        if n is None:
            continue
        found.setdefault(n, 0)
        if key.endswith("-lease"):
            continue
        found[n] += 1
        if len(drawn.setdefault(n, [])) < sample:
            drawn[n].append(key)
    pipe = c.pipeline(transaction=False)
    for n in sorted(drawn):
        for key in drawn[n]:
            pipe.memory_usage(key)
    sizes = iter(pipe.execute())
    out = {}
    for n in sorted(found):
        sized = [int(next(sizes) or 0) for _ in drawn.get(n, [])]
        estimate = round(sum(sized) / len(sized) * found[n]) if sized else 0
        out[n] = Counted(found[n], estimate, len(sized))
    return out


def probe(client: redis.Redis, projection: str, numbers: Iterable[int] = ()) -> Probe:
    """The pointer, the kept generation and the checkpoint and lease of each of ``numbers`` (and of the
    generations the kept one is chosen from)."""
    c: Any = client
    pipe = c.pipeline(transaction=False)
    pipe.get(keys.generation_pointer(projection))
    pipe.hgetall(keys.flip(projection))
    pipe.hgetall(keys.kept(projection))
    pointer, flip_hash, kept_hash = pipe.execute()
    live = int(text(pointer) or 1)
    flip = {text(k): text(v) for k, v in flip_hash.items()}
    record = {text(k): text(v) for k, v in kept_hash.items()}
    candidates = [(int(flip["from"]), int(flip.get("flipped_at") or 0))] if (
        flip.get("state") == "done" and flip.get("from", "").isdigit()) else []
    if record.get("generation", "").isdigit():
        candidates.append((int(record["generation"]), int(record.get("since") or 0)))
    asked = sorted({*numbers, live, *(n for n, _ in candidates)})
    # a generation split into partitions is present while its first partition's checkpoint is (a drop unlinks all
    # its checkpoints at once, first), and written while its first partition's lease is held (one job writes all)
    first = {n: layout.partitions(c, projection, n)[0].tag for n in asked}
    pipe = c.pipeline(transaction=False)
    for n in asked:
        pipe.get(KeySpace(projection, n, first[n]).checkpoint)
        pipe.get(keys.generation_lease(first[n], n))
    replies = pipe.execute()
    checkpoints = {n: None if replies[2 * i] is None else int(text(replies[2 * i]) or 0) for i, n in enumerate(asked)}
    writing = {n: replies[2 * i + 1] is not None and text(replies[2 * i + 1]) != FLIPPED for i, n in enumerate(asked)}
    # The last flip's source while that flip's record stands (so a crash before the job's bookkeeping loses
    # nothing), else the generation the bookkeeping recorded (an aborted flip since changes neither).
    kept = next(((n, since) for n, since in candidates if n != live and checkpoints[n] is not None), None)
    return Probe(live, kept, {n: (checkpoints[n] is not None, writing[n]) for n in asked}, checkpoints)


def kept_of(client: redis.Redis, projection: str) -> tuple[int, int] | None:
    """The generation kept for a rollback and since when (ms), if its keys are still there."""
    return probe(client, projection).kept


def role(seen: Probe, generation: int) -> Role:
    if generation == seen.live:
        return Role.LIVE
    if seen.marks.get(generation, (False, False))[1]:
        return Role.WRITING
    if seen.kept is not None and seen.kept[0] == generation:
        return Role.KEPT
    return Role.ORPHAN


def describe(projection: str, counted: dict[int, Counted], seen: Probe) -> list[Generation]:
    """Each generation of ``counted`` (and the live one, even without keys) with its role, by number."""
    out = []
    for n in sorted({*counted, seen.live}):
        c = counted.get(n, Counted(0, 0, 0))
        kept_since = seen.kept[1] if seen.kept is not None and seen.kept[0] == n else 0
        out.append(Generation(projection, n, role(seen, n), c.keys, c.bytes, c.sampled, seen.checkpoints.get(n),
                              kept_since))
    return out


def numbers_to_probe(counted: dict[int, Counted]) -> list[int]:
    """The generations a probe watches: those counted and the next number (where a new one appears)."""
    return sorted({*counted, max(counted, default=0) + 1})


def generations(client: redis.Redis, projection: str, sample: int = SAMPLE) -> list[Generation]:
    """Every generation of ``projection`` present in Redis (and the live one), scanned now."""
    counted = count(client, projection, sample)
    return describe(projection, counted, probe(client, projection, numbers_to_probe(counted)))
