"""A full consistency check of one projection: its whole history replayed in memory and compared with the
live generation, the shared read models (rankings, market tables, indexes) at one atomic cut.

1. *Replay* every event of the projection's types up to the live checkpoint read at the start, in memory, with
   the same pure folds (``projector/fold.py``; nothing is written).
2. *Cut*: one MULTI/EXEC reads the live checkpoint C and every shared key (the keys no user entity owns: the
   replay's and those a SCAN of the live generation finds). The projector commits atomically, so these are
   Redis at exactly C; the replay then folds the events up to exactly C.
3. *Compare* the shared keys, field by field and member by member, at C. A user's own keys are read after the
   cut (a MULTI per chunk of users) and compared where the entity's ``lastPosition`` is the replay's; a user
   that differs, or that the live projector moved past C meanwhile, gets a per-user check
   (:func:`~projections.maintenance.consistency.check_user`), which explains each difference by its events.

Live traffic causes no false difference: every comparison is of two states at one position.

A generation split into partitions is checked partition by partition: each replay folds what its partition folds
(``partition=``), its cut is that partition's checkpoint and keys. The history is read once per partition (P
reads of the projection's events: a full check is rare and the partitions' checkpoints differ).
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from projections import keys, layout
from projections.codec import text
from projections.connection import Together
from projections.errors import BadEvent, RebuildContended
from projections.events import CanaryAppended, DomainEvent, Ignored, Recorded, decode
from projections.eventstore import EventStore, Marker
from projections.keys import KeySpace
from projections.maintenance.consistency import check_user
from projections.maintenance.control import Control, Fence, Unattended, check
from projections.maintenance.pointer import live_generation, space
from projections.maintenance.report import (
    EXTRA_KEY,
    KEPT,
    MEMBER_EXTRA,
    MEMBER_MISSING,
    MISSING_KEY,
    SCORE_DIFFERS,
    Difference,
    EntityCheck,
    Report,
    compare,
)
from projections.maintenance.user_fold import own_append_keys
from projections.partitions import Partition
from projections.projector.fold import fold_batch, touched_refs
from projections.projector.reader import ReaderProcess
from projections.readmodels import PROJECTIONS, model
from projections.readmodels.base import ReadModel, Ref, Rendered

BATCH = 500  # events folded per call
READER_AFTER = 20_000  # positions to replay past which the events are read by a child process
WINDOW = 100  # the reader's checkpoint interval
USERS_PER_READ = 100  # users whose own keys one MULTI/EXEC reads


@dataclass
class _Replay:
    """The projection folded in memory: every entity's state and the append-only entries (capped)."""

    m: ReadModel
    ks: KeySpace
    partition: Partition | None = None  # the partition ``ks`` is: folded as its live runner folds
    states: dict[Ref, Any] = field(default_factory=dict)
    appends: dict[str, dict[str, float]] = field(default_factory=dict)
    caps: dict[str, int] = field(default_factory=dict)
    position: int = 0  # every event at or before it is folded
    events: int = 0
    head: int = 0  # the newest event's position when the check began (for the progress estimate)

    def fold(self, store: EventStore, upto: int, control: Control) -> None:
        """Fold the events of the projection's types in (position, upto]."""
        batch: list[DomainEvent] = []
        reached = self.position
        for item in self._items(store, upto):
            reached = item.envelope.position
            try:
                event = decode(item)
            except BadEvent:  # parked by the projector, skipped by every replay
                continue
            if not isinstance(event, (Ignored, CanaryAppended)):  # a canary is folded by nothing
                batch.append(event)
            if len(batch) >= BATCH:
                self._fold(batch)
                batch = []
                check(control)
                total = round(self.events * max(self.head, reached) / reached) if reached else None  # extrapolated
                control.report(self.events, total, f"replaying {self.m.name}")
        self._fold(batch)
        self.position = upto

    def _items(self, store: EventStore, upto: int) -> Iterator[Recorded]:
        """The events of the projection's types in (position, upto]: for a long replay read by a child process
        (:mod:`projections.projector.reader`, so reading and folding run on two cores, as a catch-up's), else here."""
        if upto - self.position < READER_AFTER:
            for item in store.read_types(self.m.event_types, self.position or None):
                if item.envelope.position > upto:
                    return
                yield item
            return
        reader = ReaderProcess(store.uri, self.position or None, self.m.event_types, WINDOW, flush_at=upto)
        try:
            for got in reader:
                if isinstance(got, Marker):
                    if got.is_caught_up or got.commit_position >= upto:
                        return  # every event up to upto has come
                    continue
                if got.envelope.position > upto:
                    return
                yield got
        finally:
            reader.stop()

    def _fold(self, events: list[DomainEvent]) -> None:
        if not events:
            return
        loaded = {ref: self.states[ref] for ref in touched_refs(self.m, events, self.partition) if ref in self.states}
        # a fold that raises is skipped, as the projector parks it
        result = fold_batch(self.m, self.ks, loaded, events, partition=self.partition)
        self.states.update(result.changed)
        for entry in result.appends:
            self.appends.setdefault(entry.key, {})[entry.member] = entry.score
            self.caps[entry.key] = entry.cap
        self.events += len(events)

    def history(self, key: str) -> dict[str, float]:
        members = self.appends.get(key, {})
        return dict(sorted(members.items(), key=lambda kv: kv[1])[-self.caps.get(key, len(members)):])

    def images(self) -> tuple[dict[Ref, Rendered], _Shared]:
        """Each user entity's own image (its hashes and own append-only keys), and everything shared."""
        users: dict[Ref, Rendered] = {}
        shared = _Shared()
        for ref, state in self.states.items():
            image = self.m.render(self.ks, ref, state)
            for key, members in image.zsets.items():
                shared.zsets.setdefault(key, {}).update(members)
            for key, values in image.hfields.items():
                shared.hashes.setdefault(key, {}).update(values)
            if ref[0] == self.m.user_kind:
                own = own_append_keys(self.m, self.ks, ref)
                users[ref] = Rendered(owned={k: v for k, v in image.owned.items() if v},
                                      zsets={k: self.history(k) for k in own if self.history(k)})
            else:
                for key, values in image.owned.items():
                    if values:
                        shared.hashes.setdefault(key, {}).update(values)
        owned_by_users = {k for image in users.values() for k in (*image.owned, *image.zsets)}
        for key in self.appends:
            if key not in owned_by_users and self.history(key):
                shared.zsets[key] = self.history(key)
        return users, shared


@dataclass
class _Shared:
    hashes: dict[str, dict[str, str]] = field(default_factory=dict)
    zsets: dict[str, dict[str, float]] = field(default_factory=dict)

    def rendered(self) -> Rendered:
        return Rendered(owned=self.hashes, zsets=self.zsets)


def check_projection(client: redis.Redis, store: EventStore, projection: str, control: Control | None = None) -> Report:
    """Every read model of ``projection`` against a replay of its whole history (see the module doc); split into
    partitions, each partition against a replay of what it folds, at its own checkpoint, one after the other."""
    control = control or Unattended()
    started = time.monotonic()
    generation = live_generation(client, projection)
    parts = layout.partitions(client, projection, generation)
    report = Report(f"everything in {projection}", [projection])
    for i, part in enumerate(parts):
        one = _check_partition(client, store, part, space(part, generation),
                               control if len(parts) == 1 else _Cumulative(control, report.events, i, len(parts)))
        _merge(report, one)
    report.seconds = round(time.monotonic() - started, 3)
    control.report(report.events, report.events, f"checked everything in {projection}")
    return report


def _check_partition(client: redis.Redis, store: EventStore, part: Partition, ks: KeySpace, control: Control) -> Report:
    """One partition of the live generation (the whole projection when it is one) against its replay."""
    m = model(part.projection)
    replay = _Replay(m, ks, part if part.count > 1 else None)
    head = store.head(m.event_types)
    replay.head = head.position if head else 0
    replay.fold(store, int(text(client.get(ks.checkpoint)) or 0), control)
    users, shared = replay.images()
    user_keys = {k for image in users.values() for k in (*image.owned, *image.zsets)}
    checkpoint, seen = _cut(client, ks, set(shared.hashes) | set(shared.zsets), user_keys)
    if checkpoint > replay.position:  # the events the live projector applied since the replay's start
        replay.fold(store, checkpoint, control)
        users, shared = replay.images()
        mine = {k for image in users.values() for k in (*image.owned, *image.zsets)}  # new users' keys: theirs
        seen = Rendered(owned={k: v for k, v in seen.owned.items() if k not in mine},
                        zsets={k: v for k, v in seen.zsets.items() if k not in mine})
    report = Report(f"everything in {part.label}", [part.projection])
    names = {*shared.hashes, *shared.zsets, *seen.owned, *seen.zsets}
    ranked = _add_shared(report, m, ks, checkpoint, names, compare(shared.rendered(), seen, whole_keys=True),
                         {ref[1] for ref in users})
    for entity in _users(client, store, m, ks, checkpoint, users, ranked, control, report.skipped):
        report.add(entity)
    report.events = replay.events
    return report


def _merge(report: Report, part: Report) -> None:
    """Add ``part`` (one projection's or one partition's check) to ``report``."""
    report.checked += part.checked
    report.consistent += part.consistent
    report.difference_count += part.difference_count
    report.differences.extend(part.differences[: max(0, KEPT - len(report.differences))])
    report.users_to_repair.extend(u for u in part.users_to_repair if u not in report.users_to_repair)
    report.checkpoints.update(part.checkpoints)
    for name, counts in part.per_projection.items():
        mine = report.per_projection.setdefault(name, {"checked": 0, "consistent": 0})
        mine["checked"] += counts["checked"]
        mine["consistent"] += counts["consistent"]
    report.skipped.extend(part.skipped)
    report.events += part.events


def check_everything(client: redis.Redis, store: EventStore, projections: Sequence[str] | None = None,
                     control: Control | None = None) -> Report:
    """:func:`check_projection` of each of ``projections`` (default: all), in one report."""
    names = list(projections) if projections else list(PROJECTIONS)
    report = Report("everything", names)
    started = time.monotonic()
    control = control or Unattended()
    done = 0
    for i, name in enumerate(names):
        part = check_projection(client, store, name, _Cumulative(control, done, i, len(names)))
        done += part.events
        _merge(report, part)
    report.seconds = round(time.monotonic() - started, 3)
    return report


class _Cumulative(Control):
    """One projection's progress as part of a check of several: events counted on from the earlier ones, the
    total extrapolated over the projections still to come."""

    def __init__(self, control: Control, before: int, index: int, count: int) -> None:
        self.control, self.before, self.index, self.count = control, before, index, count

    def report(self, done: int, total: int | None, phase: str = "") -> None:
        whole = None if total is None else round((self.before + total) * self.count / (self.index + 1))
        self.control.report(self.before + done, whole, f"{phase} ({self.index + 1} of {self.count})")

    def cancelled(self) -> bool:
        return self.control.cancelled()

    def fence(self) -> Fence | None:
        return self.control.fence()


def _cut(client: redis.Redis, ks: KeySpace, shared: set[str], user_keys: set[str]) -> tuple[int, Rendered]:
    """The live checkpoint and every shared key of the live generation, read in one MULTI/EXEC."""
    skip = {ks.checkpoint, ks.state_epoch} | user_keys
    found = {text(k) for k in client.scan_iter(match=f"{keys.generation_prefix(ks.root, ks.generation)}:*",
                                                count=1000)}
    names = sorted((shared | found) - skip)
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.type(name)
    kinds = [text(kind) for kind in pipe.execute()]
    together = Together(client)
    together.get(ks.checkpoint)
    for name, kind in zip(names, kinds):
        if kind == "zset":
            together.zrange(name, 0, -1, withscores=True)
        else:
            together.hgetall(name) if kind == "hash" else together.exists(name)
    replies = together.execute()
    hashes: dict[str, dict[str, str]] = {}
    zsets: dict[str, dict[str, float]] = {}
    for name, kind, reply in zip(names, kinds, replies[1:]):
        if kind == "zset" and reply:
            zsets[name] = {text(member): float(score) for member, score in reply}
        elif kind == "hash" and reply:
            hashes[name] = {text(f): text(v) for f, v in reply.items()}
        elif kind not in ("zset", "hash", "none"):
            hashes[name] = {"(type)": kind}  # a key of another type: never a read model's
    return int(text(replies[0]) or 0), Rendered(owned=hashes, zsets=zsets)


def _add_shared(report: Report, m: ReadModel, ks: KeySpace, checkpoint: int, names: set[str],
                found: Iterable[tuple[str, str, str, str, str]], users: set[str]) -> set[str]:
    """The shared keys as entities of the report: one per key, consistent unless a difference names it. A ranking
    member that is one of the replayed users is left to that user's own check, which compares its rankings too:
    returns those users."""
    by_key: dict[str, list[Difference]] = {}
    ranked: set[str] = set()
    for key, name, kind, expected, actual in found:
        if kind in (MEMBER_MISSING, MEMBER_EXTRA, SCORE_DIFFERS) and name in users:
            ranked.add(name)
            continue
        by_key.setdefault(key, []).append(Difference(m.name, "", ks.name_of(key), name, kind, expected[:500], actual[:500],
                                                     _shared_cause(kind, checkpoint)))
    for key in sorted(names | set(by_key)):
        report.add(EntityCheck(m.name, "", checkpoint, "", 0, tuple(by_key.get(key, ()))))
    return ranked


def _shared_cause(kind: str, checkpoint: int) -> str:
    if kind == MISSING_KEY:
        return (f"keys missing while the checkpoint is intact (at {checkpoint}): evicted under maxmemory, flushed, or "
                "lost in a failover")
    if kind in (EXTRA_KEY, MEMBER_EXTRA):
        return "no replayed event puts it there: an outside writer, or a leftover the projector did not remove"
    return f"a replay up to {checkpoint} gives another value: an outside writer changed it, or writes were lost"


def _users(client: redis.Redis, store: EventStore, m: ReadModel, ks: KeySpace, checkpoint: int,
           users: dict[Ref, Rendered], ranked: set[str], control: Control, skipped: list[str]) -> Iterable[EntityCheck]:
    """Each replayed user compared with the live generation; a per-user check of those that differ, moved, or
    whose place in a shared ranking differs (``ranked``)."""
    refs = sorted(users)
    for start in range(0, len(refs), USERS_PER_READ):
        check(control)
        chunk = refs[start:start + USERS_PER_READ]
        for ref, actual in zip(chunk, _read_users(client, m, ks, chunk, users)):
            expected = users[ref]
            main = m.main_key(ks, ref)
            want = expected.owned.get(main, {}).get("lastPosition", "")
            have = actual.owned.get(main, {}).get("lastPosition", "")
            if want == have and ref[1] not in ranked and not compare(expected, actual):
                yield EntityCheck(m.name, ref[1], checkpoint, have, 0, ())
                continue
            try:
                yield from check_user(client, store, ref[1], [m.name])  # explained, at one position under live traffic
            except RebuildContended:
                skipped.append(f"{ref[1]} in {m.name}")  # a very busy user: not compared this time


def _read_users(client: redis.Redis, m: ReadModel, ks: KeySpace, refs: Sequence[Ref], users: dict[Ref, Rendered]
                ) -> list[Rendered]:
    """What the live generation holds in each user's own keys, in one MULTI/EXEC."""
    plan: list[tuple[list[str], list[str]]] = []
    pipe = Together(client)
    for ref in refs:
        hashes = sorted({*users[ref].owned, m.main_key(ks, ref)})
        zsets = sorted(own_append_keys(m, ks, ref))
        for key in hashes:
            pipe.hgetall(key)
        for key in zsets:
            pipe.zrange(key, 0, -1, withscores=True)
        plan.append((hashes, zsets))
    replies = iter(pipe.execute())
    out = []
    for hashes, zsets in plan:
        owned = {key: {text(f): text(v) for f, v in next(replies).items()} for key in hashes}
        history = {key: {text(mb): float(s) for mb, s in next(replies)} for key in zsets}
        out.append(Rendered(owned={k: v for k, v in owned.items() if v}, zsets={k: v for k, v in history.items() if v}))
    return out
