"""Consistency checks: a user's read models against a replay of the user's events, field by field,
each difference explained by the events behind it.

For each projection with user entities and each user checked:

1. *Snapshot* (as a per-user rebuild, :mod:`projections.maintenance.user_rebuild`): the live
   generation's checkpoint C and the entity's ``lastPosition`` L, in one MULTI/EXEC.
2. *Replay* the user's events up to C with the same pure folds (and the marks a full replay uses),
   folded while read page by page (:mod:`projections.maintenance.user_fold`): the image a full replay
   leaves.
3. *Observe* what Redis holds for the entity, in one MULTI/EXEC, and keep it only if the entity's
   ``lastPosition`` is still L: the live projector applied no event of the user in between, so both
   stand at one position and live traffic causes no false difference (else go again, a bounded
   number of times).
4. *Compare* key by key, field by field, member by member; each difference gets its kind (missing
   key, extra key, value differs, ranking member missing, ranking member extra, score differs), the
   event that last set that place in the replay and the likely cause (keys gone while the
   checkpoint is intact; an event the checkpoint passed but Redis does not show; a value no event
   explains; a parked event of the user).

In a generation split into partitions a user is checked in the partition holding the user (its checkpoint, its
keys, its rankings; :mod:`projections.maintenance.pointer`), replayed as that partition folds.

The report is :mod:`projections.maintenance.report`'s, the explanations
:mod:`projections.maintenance.explain`'s. Nothing is written: a check only reads Redis and the store.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence

import redis

from projections import keys
from projections.codec import text
from projections.errors import RebuildContended
from projections.eventstore import EventStore
from projections.keys import KeySpace
from projections.maintenance.control import Control, Unattended, check
from projections.maintenance.explain import explained
from projections.maintenance.pointer import live_spaces
from projections.maintenance.report import MISSING_KEY, Difference, EntityCheck, Report, compare
from projections.maintenance.user_fold import Fold, advance, catch_up, new_fold
from projections.maintenance.user_reader import UserRead, UserReaderProcess, read_user
from projections.maintenance.user_rebuild import (
    ATTEMPTS,
    Strays,
    observe,
    snapshots,
    stray_places,
)
from projections.readmodels import model, user_projections

log = logging.getLogger(__name__)


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
    strays: dict[KeySpace, Strays] = {}  # scanned once per partition for all the users checked
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


def _compared(client: redis.Redis, store: EventStore, read: UserRead, strays: dict[KeySpace, Strays] | None = None
              ) -> list[tuple[str, EntityCheck | None]]:
    """Each projection's check of the user in the user's partition (None: live events kept moving the entity; not
    compared). The user's events are read once and folded as they come, for every projection up to its
    checkpoint. ``strays``: the stray places found so far, per key space (filled in here)."""
    spaces = read.spaces()
    folds = [new_fold(client, store, model(ks.projection), ks, (str(model(ks.projection).user_kind), read.user_id),
                      partition) for ks, partition in zip(spaces, read.partitions())]
    advance([(fold, shot[0]) for fold, shot in zip(folds, read.shots)], read.items)
    if strays is not None:
        for ks in spaces:
            if ks not in strays:
                strays[ks] = stray_places(client, model(ks.projection), ks)
    return [(ks.projection, _check_one(client, store, fold, shot, (strays or {}).get(ks)))
            for ks, fold, shot in zip(spaces, folds, read.shots)]


def check_user(client: redis.Redis, store: EventStore, user_id: str, projections: Sequence[str] | None = None
               ) -> list[EntityCheck]:
    """``user_id`` in each of ``projections``, compared with a replay of the user's events; RebuildContended if
    live events kept moving it."""
    done = _compared(client, store, read_user(client, store, user_id, projections))
    if any(entity is None for _, entity in done):
        raise RebuildContended(f"user {user_id!r}: live events kept moving it during {ATTEMPTS} attempts of its "
                               "consistency check; check again when the user is quieter")
    return [entity for _, entity in done if entity is not None]


def _check_one(client: redis.Redis, store: EventStore, fold: Fold, snapshot: tuple[int, str],
               strays: Strays | None = None) -> EntityCheck | None:
    """``fold``'s entity (``fold`` stands at the snapshot's checkpoint) against what Redis holds for it."""
    m, ks, ref = fold.m, fold.ks, fold.ref
    main = m.main_key(ks, ref)
    for attempt in range(1, ATTEMPTS + 1):
        if attempt > 1:
            snapshot = snapshots(client, [(ks, main)])[0]
            catch_up(fold, store, snapshot[0])
        checkpoint, last = snapshot
        expected = fold.image()
        actual = observe(client, m, ks, ref, expected, strays)
        if actual.owned.get(main, {}).get("lastPosition", "") != last:
            continue  # the live projector applied an event of the user meanwhile: both at one position again
        found = compare(expected, actual)
        differences = explained(client, store, fold, found, checkpoint, last) if found else ()
        return EntityCheck(m.name, ref[1], checkpoint, last, fold.count, tuple(differences))
    log.info("consistency check of %s in %s: live events kept moving it during %d attempts; not compared", ref[1],
             m.name, ATTEMPTS)
    return None


def users_of(client: redis.Redis, projection: str) -> list[str]:
    """Every user the live generation of ``projection`` holds an entity hash for (in any of its partitions), sorted."""
    m = model(projection)
    found: set[str] = set()
    for ks in live_spaces(client, projection):
        pattern = m.main_key(ks, (str(m.user_kind), "*"))
        prefix = pattern[:-1]
        names = (text(key)[len(prefix):] for key in client.scan_iter(match=pattern, count=1000, _type="hash"))
        found.update(name for name in names if ":" not in name)  # not the user's other hashes (positions, ...)
    return sorted(found)


def known_users(client: redis.Redis) -> list[str]:
    """Every user any projection knows of: an entity hash in one of them, or a member of a user ranking. A user
    whose keys one projection lost is still found through the others."""
    found: set[str] = set()
    for projection in user_projections():
        found.update(users_of(client, projection))
    rankings = [model(name).user_ranking(ks) for name in user_projections() for ks in live_spaces(client, name)]
    for key in (r for r in rankings if r):
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
    were emptied (a flush, eviction, a failover) and the checkpoint survived — a projector would not refold them.
    Split into partitions, the projection as a whole (its furthest partition's checkpoint, no user in any): a
    partition may rightly hold no user, and one emptied alone is found through its users (:func:`known_users`)."""
    out = []
    for projection in projections:
        spaces = live_spaces(client, projection)
        ks = spaces[0]
        checkpoint = max(int(text(client.get(space.checkpoint)) or 0) for space in spaces)
        if checkpoint and not users_of(client, projection):
            out.append(Difference(projection, "", ks.name_of(model(projection).main_key(ks, (str(model(projection).user_kind), "*"))), "",
                                  MISSING_KEY, "every user's entity", "",
                                  f"read models missing while the checkpoint is intact (at {checkpoint}): Redis was "
                                  "emptied or evicted and the checkpoint survived; rebuild the projection"))
    return out
