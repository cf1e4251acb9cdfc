"""Consistency checks: a user's read models against a replay of the user's events, field by field,
each difference explained by the events behind it.

For each projection with user entities and each user checked:

1. *Snapshot* (as a per-user rebuild, :mod:`projections.maintenance.user_rebuild`): the live
   generation's checkpoint C and the entity's ``lastPosition`` L, in one MULTI/EXEC.
2. *Replay* the user's events up to C with the same pure folds (and the marks a full replay uses):
   the image a full replay leaves.
3. *Observe* what Redis holds for the entity, in one MULTI/EXEC, and keep it only if the entity's
   ``lastPosition`` is still L: the live projector applied no event of the user in between, so both
   stand at one position and live traffic causes no false difference (else go again, a bounded
   number of times).
4. *Compare* key by key, field by field, member by member; each difference gets its kind (missing
   key, extra key, value differs, ranking member missing, ranking member extra, score differs), the
   event that last set that place in the replay and the likely cause (keys gone while the
   checkpoint is intact; an event the checkpoint passed but Redis does not show; a value no event
   explains; a parked event of the user).

A report is the score over the users checked (1 − inconsistent ÷ checked), the differences (the
first ``KEPT`` of them, with their total) and the users to repair (a per-user rebuild of each).
Nothing is written: a check only reads Redis and the store.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from projections import keys
from projections.errors import RebuildContended
from projections.events import DomainEvent, Envelope, user_streams
from projections.eventstore import EventStore
from projections.keys import KeySpace
from projections.maintenance.control import Control, Unattended, check
from projections.maintenance.user_reader import UserRead, UserReaderProcess, read_user
from projections.maintenance.user_rebuild import (
    ATTEMPTS,
    Fold,
    Strays,
    live_keyspace,
    observe,
    own_append_keys,
    replay,
    segments,
    snapshots,
    stray_places,
    user_events,
    user_projections,
)
from projections.projector.fold import fold_batch
from projections.readmodels import model
from projections.readmodels.base import ReadModel, Ref, Rendered
from projections.readmodels.portfolio import MARKS, Marks
from projections.writer import text

log = logging.getLogger(__name__)

KEPT = 200  # differences a report keeps (the total is always counted)
EXPLAIN_MAX_EVENTS = 50_000  # a user with more events gets its differences without the events behind them

MISSING_KEY, EXTRA_KEY, VALUE_DIFFERS = "missing key", "extra key", "value differs"
MEMBER_MISSING, MEMBER_EXTRA, SCORE_DIFFERS = "ranking member missing", "ranking member extra", "score differs"

Place = tuple[str, str]  # (key, hash field or sorted-set member; '' for the key as a whole)


@dataclass(frozen=True)
class EventRef:
    """An event behind a difference: where it sits in the store."""

    event_id: str
    type: str
    stream: str
    position: int
    recorded_at: int  # ms since the epoch


@dataclass(frozen=True)
class Difference:
    projection: str
    user: str
    key: str
    field: str  # the hash field or the ranking member ('' for the key as a whole)
    kind: str
    expected: str  # what a replay gives ('' where it has nothing)
    actual: str  # what Redis holds ('' where it has nothing)
    cause: str
    event: EventRef | None = None  # the event that last set this place in the replay
    parked_event: str = ""  # a parked event of the user after it, named in the cause (its id)


@dataclass(frozen=True)
class EntityCheck:
    projection: str
    user: str
    checkpoint: int  # C: the position the replay went up to
    position: str  # L: the entity's lastPosition in Redis ('' when its hash is missing)
    events: int  # the user's events replayed
    differences: tuple[Difference, ...]

    @property
    def consistent(self) -> bool:
        return not self.differences


@dataclass
class Report:
    """What a consistency check found (JSON-able with :meth:`as_dict`)."""

    scope: str
    projections: list[str]
    checked: int = 0  # entities (one user in one projection)
    consistent: int = 0
    difference_count: int = 0
    differences: list[Difference] = field(default_factory=list)
    users_to_repair: list[str] = field(default_factory=list)
    checkpoints: dict[str, int] = field(default_factory=dict)  # the last checkpoint each projection was checked at
    per_projection: dict[str, dict[str, int]] = field(default_factory=dict)  # checked / consistent per projection
    skipped: list[str] = field(default_factory=list)  # "user in projection" live events kept moving: not compared
    seconds: float = 0.0

    @property
    def score(self) -> float | None:
        """1 − inconsistent ÷ checked; None when nothing was checked."""
        return None if not self.checked else 1 - (self.checked - self.consistent) / self.checked

    def add(self, entity: EntityCheck) -> None:
        self.checked += 1
        counts = self.per_projection.setdefault(entity.projection, {"checked": 0, "consistent": 0})
        counts["checked"] += 1
        self.checkpoints[entity.projection] = entity.checkpoint
        if entity.consistent:
            self.consistent += 1
            counts["consistent"] += 1
            return
        self.difference_count += len(entity.differences)
        self.differences.extend(entity.differences[: max(0, KEPT - len(self.differences))])
        if entity.user and entity.user not in self.users_to_repair:
            self.users_to_repair.append(entity.user)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["score"] = self.score
        out["scores"] = {p: c["consistent"] / c["checked"] for p, c in self.per_projection.items() if c["checked"]}
        return out


def check_users(client: redis.Redis, store: EventStore, users: Sequence[str], projections: Sequence[str] | None = None,
                control: Control | None = None, scope: str = "", urls: tuple[str, str] | None = None) -> Report:
    """Check each of ``users`` in ``projections`` (default: every projection with user entities); ``urls``
    (Redis, event store): read the users in a child process."""
    names = list(projections) if projections else list(user_projections())
    return _checked(client, store, [(user, names) for user in users], names, control,
                    scope or (users[0] if len(users) == 1 else f"{len(users):,} users"), urls)


def check_sample(client: redis.Redis, store: EventStore, size: int, projections: Sequence[str] | None = None,
                 control: Control | None = None, urls: tuple[str, str] | None = None) -> Report:
    """The next ``size`` users of the rolling sample (:func:`rolling_sample`): repeated samples cover every user."""
    names = list(projections) if projections else list(user_projections())
    report = _checked(client, store, [(u, names) for u in rolling_sample(client, size)], names, control,
                      f"a sample of {size:,} users", urls)
    return _with_emptied(client, report)


def _with_emptied(client: redis.Redis, report: Report) -> Report:
    """Count each emptied projection (:func:`emptied`) as one inconsistent entity of the report."""
    for difference in emptied(client, report.projections):
        report.add(EntityCheck(difference.projection, "", 0, "", 0, (difference,)))
    return report


def _checked(client: redis.Redis, store: EventStore, work: Sequence[tuple[str, Sequence[str]]], names: list[str],
             control: Control | None, scope: str, urls: tuple[str, str] | None = None) -> Report:
    """Check each (user, projections) of ``work``. Given ``urls`` (Redis, event store), a child process reads the
    users ahead while one is folded and compared, on another core."""
    control = control or Unattended()
    report = Report(scope, names)
    started = time.monotonic()
    strays = {name: stray_places(client, model(name), live_keyspace(client, name)) for name in names}  # once for all
    for i, read in enumerate(_read_ahead(client, store, work, urls)):
        check(control)
        control.report(i, len(work), f"checking {read.user_id}")
        for name, entity in _compared(client, store, read, strays):
            if entity is None:
                report.skipped.append(f"{read.user_id} in {name}")
            else:
                report.add(entity)
    report.seconds = round(time.monotonic() - started, 3)
    control.report(len(work), len(work), f"checked {len(work):,} users")
    return report


def _read_ahead(client: redis.Redis, store: EventStore, work: Sequence[tuple[str, Sequence[str]]],
                urls: tuple[str, str] | None) -> Iterator[UserRead]:
    """The users read ahead by a child process (with ``urls``), else one after the other here. Not by a thread:
    beside the folds' CPU work a reading thread waits for the interpreter on every gRPC message, and a read of
    a second ran past its 10 s deadline (measured)."""
    if urls is not None and len(work) > 1:
        child = UserReaderProcess(*urls, work)
        try:
            yield from child
        finally:
            child.stop()
        return
    for user, projections in work:
        yield read_user(client, store, user, projections)


def _compared(client: redis.Redis, store: EventStore, read: UserRead, strays: dict[str, Strays] | None = None
              ) -> list[tuple[str, EntityCheck | None]]:
    """Each projection's check of the user (None: live events kept moving the entity; not compared)."""
    events = list(read.events)
    return [(ks.projection, _check_one(client, store, model(ks.projection), ks,
                                       (str(model(ks.projection).user_kind), read.user_id), shot, events,
                                       (strays or {}).get(ks.projection), marks))
            for ks, shot, marks in zip(read.spaces(), read.shots, read.marks)]


def check_user(client: redis.Redis, store: EventStore, user_id: str, projections: Sequence[str] | None = None
               ) -> list[EntityCheck]:
    """``user_id`` in each of ``projections``, compared with a replay of the user's events; RebuildContended if
    live events kept moving it."""
    done = _compared(client, store, read_user(client, store, user_id, projections))
    if any(entity is None for _, entity in done):
        raise RebuildContended(f"user {user_id!r}: live events kept moving it during {ATTEMPTS} attempts of its "
                               "consistency check; check again when the user is quieter")
    return [entity for _, entity in done if entity is not None]


def _check_one(client: redis.Redis, store: EventStore, m: ReadModel, ks: KeySpace, ref: Ref, snapshot: tuple[int, str],
               events: list[DomainEvent], strays: Strays | None = None,
               marks: dict[int, dict[str, float]] | None = None) -> EntityCheck | None:
    main = m.main_key(ks, ref)
    fold = Fold()
    for attempt in range(1, ATTEMPTS + 1):
        if attempt > 1:
            snapshot = snapshots(client, [(ks, main)])[0]
            events = user_events(store, ref[1])
        checkpoint, last = snapshot
        expected = replay(fold, client, store, m, ks, ref, checkpoint, events, marks)
        actual = observe(client, m, ks, ref, expected, strays)
        if actual.owned.get(main, {}).get("lastPosition", "") != last:
            continue  # the live projector applied an event of the user meanwhile: both at one position again
        found = compare(expected, actual)
        differences = _explained(client, m, ks, ref, fold, found, checkpoint, last) if found else ()
        return EntityCheck(m.name, ref[1], checkpoint, last, fold.count, tuple(differences))
    log.info("consistency check of %s in %s: live events kept moving it during %d attempts; not compared", ref[1],
             m.name, ATTEMPTS)
    return None


Found = tuple[str, str, str, str, str]  # key, field, kind, expected, actual


def compare(expected: Rendered, actual: Rendered, whole_keys: bool = False) -> list[Found]:
    """Every place where Redis's image differs from the replay's, with its kind. With ``whole_keys`` (the images
    hold whole sorted sets, not one entity's memberships), a sorted set missing or extra as a whole is one
    difference of the key."""
    out: list[Found] = []
    for key in sorted({*expected.owned, *actual.owned}):
        want, have = expected.owned.get(key) or {}, actual.owned.get(key) or {}
        if not want and not have:  # an empty hash is no key in Redis
            continue
        if not have:
            out.append((key, "", MISSING_KEY, _fields(want), ""))
        elif not want:
            out.append((key, "", EXTRA_KEY, "", _fields(have)))
        else:
            out.extend((key, f, VALUE_DIFFERS, want.get(f, ""), have.get(f, ""))
                       for f in sorted({*want, *have}) if want.get(f) != have.get(f))
    for key in sorted({*expected.zsets, *actual.zsets}):
        want_z, have_z = expected.zsets.get(key, {}), actual.zsets.get(key, {})
        if whole_keys and not have_z and want_z:
            out.append((key, "", MISSING_KEY, f"{len(want_z):,} members", ""))
            continue
        if whole_keys and not want_z and have_z:
            out.append((key, "", EXTRA_KEY, "", f"{len(have_z):,} members"))
            continue
        for member in sorted({*want_z, *have_z}):
            if member not in have_z:
                out.append((key, member, MEMBER_MISSING, _score(want_z[member]), ""))
            elif member not in want_z:
                out.append((key, member, MEMBER_EXTRA, "", _score(have_z[member])))
            elif want_z[member] != have_z[member]:
                out.append((key, member, SCORE_DIFFERS, _score(want_z[member]), _score(have_z[member])))
    for key in sorted({*expected.hfields, *actual.hfields}):
        want_h, have_h = expected.hfields.get(key, {}), actual.hfields.get(key, {})
        for name in sorted({*want_h, *have_h}):
            if want_h.get(name) != have_h.get(name):
                kind = MISSING_KEY if name not in have_h else EXTRA_KEY if name not in want_h else VALUE_DIFFERS
                out.append((key, name, kind, want_h.get(name, ""), have_h.get(name, "")))
    return out


def _fields(values: Any) -> str:
    return json.dumps(dict(sorted(values.items())))[:500] if values else ""


def _score(value: float) -> str:
    return repr(float(value))


def _explained(client: redis.Redis, m: ReadModel, ks: KeySpace, ref: Ref, fold: Fold, found: list[Found],
               checkpoint: int, last: str) -> list[Difference]:
    """Each difference with the event behind it and its likely cause."""
    places = {(key, name) for key, name, *_ in found}
    setters = _last_setters(m, ks, ref, fold, places) if len(fold.events) <= EXPLAIN_MAX_EVENTS else {}
    parked = _parked_of(client, m.name, ref[1])
    at = int(last) if last.isdigit() else 0
    out = []
    for key, name, kind, expected, actual in found:
        event = setters.get((key, name))
        later = _parked_after(parked, event)
        out.append(Difference(m.name, ref[1], ks.name_of(key), name, kind, expected[:500], actual[:500],
                              _cause(kind, event, at, checkpoint, later, last), _ref(event),
                              str(later[0].get("eventId", "")) if later else ""))
    return out


def _parked_after(parked: list[dict[str, Any]], event: Envelope | None) -> list[dict[str, Any]]:
    """The user's parked events after the event behind a difference (all of them when there is none)."""
    return [p for p in parked if event is None or int(p.get("position") or 0) > event.position]


def _cause(kind: str, event: Envelope | None, at: int, checkpoint: int, parked: list[dict[str, Any]], last: str) -> str:
    """The likely cause, in words; the first of ``parked`` (the user's parked events after the event behind it) is
    named too (the replay skips it as the projector did: it explains a difference only if it was applied since, or
    damaged state)."""
    cause = _likely(kind, event, at, checkpoint, last)
    if parked:
        first = parked[0]
        cause += (f"; note: event {first.get('eventId', '?')} of this user ({first.get('type', '?')} at "
                  f"{first.get('position', '?')}) is parked ({first.get('reason', '')}): a poison event may have damaged it")
    return cause


def _likely(kind: str, event: Envelope | None, at: int, checkpoint: int, last: str) -> str:
    if kind == MISSING_KEY and not last and checkpoint:
        return (f"keys missing while the checkpoint is intact (at {checkpoint}): evicted under maxmemory, flushed, "
                "or lost in a failover")
    if event is not None and event.position > at:
        return (f"the checkpoint passed the event at {event.position} but Redis stands at {at or 'nothing'}: lost writes "
                "(a failover, or keys restored from an older copy)")
    if kind in (EXTRA_KEY, MEMBER_EXTRA) and event is None:
        return "no event of this user puts it there: an outside writer, or a leftover the projector did not remove"
    if event is not None:
        return (f"no event of this user touched it after the one at {event.position}, which the read model applied: "
                "an outside writer changed it")
    return "no event of this user sets it: an outside writer"


def _ref(event: Envelope | None) -> EventRef | None:
    if event is None:
        return None
    return EventRef(event.event_id, event.type, event.stream, event.position, event.recorded_at)


def _last_setters(m: ReadModel, ks: KeySpace, ref: Ref, fold: Fold, places: set[Place]) -> dict[Place, Envelope]:
    """For each place, the last of the user's events whose fold changed what the replay shows there."""
    states: dict[Ref, Any] = {}
    own = own_append_keys(m, ks, ref)
    previous = _values(Rendered(), places)
    setters: dict[Place, Envelope] = {}
    for chunk, marks in segments(fold.events, fold.marks):
        if marks is not None:
            states[MARKS] = Marks(marks)
        for event in chunk:
            result = fold_batch(m, ks, states, [event])
            states.update(result.changed)
            for entry in result.appends:
                if entry.key in own and (entry.key, entry.member) in places:
                    setters[(entry.key, entry.member)] = event.envelope
            state = states.get(ref)
            now = _values(Rendered() if state is None else m.render(ks, ref, state), places)
            for place in places:
                if now[place] != previous[place]:
                    setters[place] = event.envelope
            previous = now
    return setters


def _values(image: Rendered, places: Iterable[Place]) -> dict[Place, Any]:
    out: dict[Place, Any] = {}
    for key, name in places:
        if not name:
            out[(key, name)] = repr(sorted((image.owned.get(key) or image.zsets.get(key) or {}).items()))
        else:
            out[(key, name)] = (image.owned.get(key, {}).get(name) or image.hfields.get(key, {}).get(name)
                                or image.zsets.get(key, {}).get(name))
    return out


def _parked_of(client: redis.Redis, projection: str, user_id: str) -> list[dict[str, Any]]:
    """The parked events of ``projection`` in the user's streams, oldest first."""
    streams = set(user_streams(user_id))
    found = []
    for raw in client.hvals(keys.parked(projection)):  # type: ignore[union-attr]  # sync client
        record = json.loads(text(raw))
        if record.get("stream") in streams:
            found.append(record)
    return sorted(found, key=lambda r: int(r.get("position") or 0))


def users_of(client: redis.Redis, projection: str) -> list[str]:
    """Every user the live generation of ``projection`` holds an entity hash for, sorted."""
    m = model(projection)
    ks = live_keyspace(client, projection)
    pattern = m.main_key(ks, (str(m.user_kind), "*"))
    prefix = pattern[:-1]
    found = (text(key)[len(prefix):] for key in client.scan_iter(match=pattern, count=1000, _type="hash"))
    return sorted(name for name in found if ":" not in name)  # not the user's other hashes (positions, ...)


def known_users(client: redis.Redis) -> list[str]:
    """Every user any projection knows of: an entity hash in one of them, or a member of a user ranking. A user
    whose keys one projection lost is still found through the others."""
    found: set[str] = set()
    for projection in user_projections():
        found.update(users_of(client, projection))
    rankings = [live_keyspace(client, "portfolio").portfolio_values(), live_keyspace(client, "risk").user_risk_scores()]
    for key in rankings:
        found.update(text(member) for member in client.zrange(key, 0, -1))  # type: ignore[union-attr]  # sync client
    return sorted(found)


def rolling_sample(client: redis.Redis, size: int) -> list[str]:
    """The next ``size`` known users in a rolling order (a cursor kept in Redis), so that repeated samples cover
    every user."""
    users = known_users(client)
    if not users or size <= 0:
        return []
    start = int(client.incrby(keys.consistency_cursor(), size)) - size  # type: ignore[arg-type]  # sync client
    return [users[(start + i) % len(users)] for i in range(min(size, len(users)))]


def emptied(client: redis.Redis, projections: Sequence[str]) -> list[Difference]:
    """A projection whose checkpoint stands past events while it holds no user entity at all: its read models
    were emptied (a flush, eviction, a failover) and the checkpoint survived — a projector would not refold them."""
    out = []
    for projection in projections:
        ks = live_keyspace(client, projection)
        checkpoint = int(text(client.get(ks.checkpoint)) or 0)
        if checkpoint and not users_of(client, projection):
            out.append(Difference(projection, "", ks.name_of(model(projection).main_key(ks, ("user", "*"))), "",
                                  MISSING_KEY, "every user's entity", "",
                                  f"read models missing while the checkpoint is intact (at {checkpoint}): Redis was "
                                  "emptied or evicted and the checkpoint survived; rebuild the projection"))
    return out
