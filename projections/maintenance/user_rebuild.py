"""Per-user rebuild: one user's read models in every projection, refolded from the event store.

For each projection whose read model has user entities (``ReadModel.user_kind``):

1. *Snapshot*, in one MULTI/EXEC: the live generation's checkpoint C and the
   entity's ``lastPosition`` L ('' when its hash is missing).
2. *Replay*: the user's events from the user's own streams (``events.user_streams``), read page by page
   once, after every projection's snapshot, for all of them, each projection folding its entity's events up
   to its C — what the live projector has applied — with the same pure folds and the marks a full replay
   uses (:mod:`projections.maintenance.user_fold`): the entity's state, its Redis image and its history
   entries, in memory that does not grow with the user's history.
3. *Observe* what Redis holds for the entity now: its own hashes, its members in
   the shared rankings and hashes — also where the image no longer puts it (a
   stray member of an old day's leaderboard, an alert of the user left behind) —
   and turn that into the replayed image with absolute writes (``writer.diff``).
4. *Write* with :func:`~projections.writer.write_entity`: only if L is still the
   entity's ``lastPosition``, i.e. the live projector applied no event of the user
   since the snapshot (then the state as of C is the state now); the same script
   bumps ``state-epoch``, so the projector's cache and its batch in flight notice.
   If L moved, go again from 1 (a bounded number of times).

*Partitions.* In a generation split into partitions each step acts on the partition holding the user
(:func:`projections.maintenance.pointer.user_space`): its checkpoint is C, its marks are folded with, its keys and
ranking members are written, and its ``state-epoch`` is bumped — one script per partition, as the live runner of
that partition commits in one. The replay folds as that runner does (``partition=``). With one partition the key
space is the projection's own, as before partitions.

Everything else (the market, strategies, the clocks) is not one user's and is
left alone: a full rebuild refolds those. Replays have no side effects: no change
notice is sent (the console re-reads on the next one) and nothing is published.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from projections.codec import text
from projections.connection import Together
from projections.errors import RebuildContended
from projections.eventstore import EventStore
from projections.keys import KeySpace
from projections.maintenance.control import Control, Unattended, check
from projections.maintenance.pointer import partition_of_space, user_space
from projections.maintenance.user_fold import Fold, advance, catch_up, history, history_length, new_fold, own_append_keys
from projections.readmodels import model, user_projections
from projections.readmodels.base import ReadModel, Ref, Rendered
from projections.writer import Plan, diff, write_entity

log = logging.getLogger(__name__)

ATTEMPTS = 5  # snapshots tried before giving up to live traffic (each loses only if the user traded meanwhile)


@dataclass(frozen=True)
class EntityRebuilt:
    """What a per-user rebuild did in one projection."""

    projection: str
    checkpoint: int  # the position the entity was rebuilt at
    events: int  # the user's events folded
    writes: int  # Redis writes it took (0: Redis already held exactly the replay)
    attempts: int


@dataclass(frozen=True)
class UserRebuilt:
    user_id: str
    projections: tuple[EntityRebuilt, ...]

    @property
    def writes(self) -> int:
        return sum(p.writes for p in self.projections)


def rebuild_user(
    client: redis.Redis, store: EventStore, user_id: str, projections: Sequence[str] | None = None,
    control: Control | None = None,
) -> UserRebuilt:
    """Rebuild ``user_id``'s read models in ``projections`` (default: every one with user entities).

    Raises RebuildContended if live events for the user kept winning the race, JobCancelled
    between projections if ``control`` asks (each projection's write is atomic: a cancel leaves
    every projection either rebuilt or untouched).
    """
    control = control or Unattended()
    models = [model(name) for name in (tuple(projections) if projections else user_projections())]
    owned = [user_space(client, m.name, user_id) for m in models]  # the user's partition in each
    refs: list[Ref] = [(str(m.user_kind), user_id) for m in models]
    mains = [m.main_key(ks, ref) for m, (ks, _), ref in zip(models, owned, refs)]
    shots = snapshots(client, [(ks, main) for (ks, _), main in zip(owned, mains)])
    folds = [new_fold(client, store, m, ks, ref, partition) for m, (ks, partition), ref in zip(models, owned, refs)]
    total = history_length(store, user_id)  # progress is counted in the user's events read
    control.report(0, total, f"reading {user_id}'s events")
    upto = max(checkpoint for checkpoint, _ in shots)  # after every snapshot: all the events up to each C are stored
    advance([(fold, shot[0]) for fold, shot in zip(folds, shots)], history(store, user_id, upto=upto), control,
            total, f"reading {user_id}'s events")
    done = []
    for m, fold, shot in zip(models, folds, shots):
        check(control)
        control.report(total, total, f"rebuilding {user_id} in {m.name}")
        done.append(_rebuild_one(client, store, fold, shot, control=control))
    control.report(total, total, f"rebuilt {user_id}")
    return UserRebuilt(user_id, tuple(done))


def heal(client: redis.Redis, store: EventStore, ks: KeySpace, users: Sequence[str]) -> None:
    """The projector's healer (``projector/vanished.py``): rebuild ``users``' entities of ``ks.projection`` in
    generation ``ks.generation`` at its checkpoint, which the calling runner holds still. ``ks`` is the runner's
    own: in a generation split into partitions, one partition's (``ks.tag``), and only the users that partition
    holds are rebuilt there (a user of another partition named by the caller is that partition's to heal)."""
    m = model(ks.projection)
    partition = partition_of_space(client, ks)
    mine = [user for user in users if partition.owns(user)]
    if len(mine) < len(users):
        log.debug("healer of %s: %d user(s) of other partitions left alone", partition.label, len(users) - len(mine))
    strays = stray_places(client, m, ks) if mine else None
    for user in mine:
        ref: Ref = (str(m.user_kind), user)
        shot = snapshots(client, [(ks, m.main_key(ks, ref))])[0]
        fold = new_fold(client, store, m, ks, ref, partition)
        catch_up(fold, store, shot[0])
        _rebuild_one(client, store, fold, shot, strays)


def _rebuild_one(client: redis.Redis, store: EventStore, fold: Fold, snapshot: tuple[int, str],
                 strays: Strays | None = None, control: Control | None = None) -> EntityRebuilt:
    """Write ``fold``'s entity as a replay up to the snapshot's checkpoint leaves it (``fold`` stands there), if
    the entity has not moved since; else snapshot, catch the fold up and try again."""
    m, ks, ref = fold.m, fold.ks, fold.ref
    main = m.main_key(ks, ref)
    for attempt in range(1, ATTEMPTS + 1):
        if attempt > 1:
            snapshot = snapshots(client, [(ks, main)])[0]
            catch_up(fold, store, snapshot[0], control)  # read after the snapshot: all <= C are stored
        checkpoint, last = snapshot
        expected = fold.image()
        plan = Plan()
        diff(observe(client, m, ks, ref, expected, strays), expected, plan)
        if not plan.writes or write_entity(client, ks, main, last, plan.writes):
            return EntityRebuilt(m.name, checkpoint, fold.count, len(plan.writes), attempt)
        log.info("per-user rebuild of %s in %s: a live event moved it (attempt %d); again", ref[1], m.name, attempt)
    raise RebuildContended(f"user {ref[1]!r} in {m.name}: live events kept moving the entity during {ATTEMPTS} "
                           "attempts; try again when the user is quieter")


def snapshots(client: redis.Redis, entities: Sequence[tuple[KeySpace, str]]) -> list[tuple[int, str]]:
    """Each projection's checkpoint and its entity's lastPosition, all read in one MULTI/EXEC."""
    pipe = Together(client)
    for ks, main in entities:
        pipe.get(ks.checkpoint)
        pipe.hget(main, "lastPosition")
    replies = pipe.execute()
    return [(int(text(replies[2 * i]) or 0), text(replies[2 * i + 1])) for i in range(len(entities))]


def observe(client: redis.Redis, m: ReadModel, ks: KeySpace, ref: Ref, image: Rendered, strays: Strays | None = None
            ) -> Rendered:
    """What Redis holds for the entity, read in one MULTI/EXEC: over the keys of the replayed
    ``image``, of the image its current hash describes, and the stray places (``strays``, or found by
    scanning; see the module doc); the entity's own append-only keys whole."""
    kept = {key: members for key, members in image.zsets.items() if key in own_append_keys(m, ks, ref)}
    current: dict[Any, Any] = client.hgetall(m.main_key(ks, ref))  # type: ignore[assignment]  # sync client
    before = m.render(ks, ref, m.parse(ref, {text(k): text(v) for k, v in current.items()})) if current else Rendered()
    owned = {*image.owned, *before.owned}
    zsets: dict[str, set[str]] = {}
    hfields: dict[str, set[str]] = {}
    for source in (image, before):
        for key, members in source.zsets.items():
            zsets.setdefault(key, set()).update(members)
        for key, names in source.hfields.items():
            hfields.setdefault(key, set()).update(names)
    (strays or stray_places(client, m, ks)).add(ref[1], zsets, hfields)
    whole = set(kept) | own_append_keys(m, ks, ref)
    pipe = Together(client)
    for key in sorted(owned):
        pipe.hgetall(key)
    for key in sorted(whole):
        pipe.zrange(key, 0, -1, withscores=True)
    pairs = [(key, member) for key in sorted(zsets) if key not in whole for member in sorted(zsets[key])]
    for key, member in pairs:
        pipe.zscore(key, member)
    wanted = [(key, sorted(names)) for key, names in sorted(hfields.items()) if names]
    for key, field_names in wanted:
        pipe.hmget(key, field_names)
    replies = iter(pipe.execute())
    seen_owned = {key: {text(f): text(v) for f, v in next(replies).items()} for key in sorted(owned)}
    seen_z: dict[str, dict[str, float]] = {key: {text(mb): float(s) for mb, s in next(replies)} for key in sorted(whole)}
    for key, member in pairs:
        score = next(replies)
        if score is not None:
            seen_z.setdefault(key, {})[member] = float(score)
    seen_h: dict[str, dict[str, str]] = {}
    for key, field_names in wanted:
        for name, value in zip(field_names, next(replies)):
            if value is not None:
                seen_h.setdefault(key, {})[name] = text(value)
    return Rendered(owned={k: v for k, v in seen_owned.items() if v}, zsets=seen_z, hfields=seen_h)


@dataclass(frozen=True)
class Strays:
    """The places a user may have been left in that no image names (the read model's ``stray_places``): for a
    trader, every day's volume leaderboard; for a user's risk, the alerts whose details name the user. Found by
    scanning once, then used for any number of users (a stray created afterwards is found by the next scan)."""

    keys: tuple[str, ...] = ()  # every sorted set that may hold a stray member of a user
    alerts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # user -> alert ids naming them
    alert_details: str = ""
    alerts_ranking: str = ""

    def add(self, user: str, zsets: dict[str, set[str]], hfields: dict[str, set[str]]) -> None:
        for key in self.keys:
            zsets.setdefault(key, set()).add(user)
        if self.alert_details:
            for alert in self.alerts.get(user, ()):
                hfields.setdefault(self.alert_details, set()).add(alert)
                zsets.setdefault(self.alerts_ranking, set()).add(alert)


def stray_places(client: redis.Redis, m: ReadModel, ks: KeySpace) -> Strays:
    """Scan for the stray places of ``m``'s users (see :class:`Strays`)."""
    places = m.stray_places(ks)
    keys = tuple(sorted(text(k) for k in client.scan_iter(match=places.keys, count=1000))) if places.keys else ()
    if not places.details:
        return Strays(keys=keys)
    found: dict[str, list[str]] = {}
    for alert, value in client.hscan_iter(places.details, count=1000):
        try:
            user = json.loads(text(value)).get("userId")
        except (ValueError, AttributeError):  # not the projector's: the comparison shows it
            continue
        if isinstance(user, str):
            found.setdefault(user, []).append(text(alert))
    return Strays(keys=keys, alerts={u: tuple(a) for u, a in found.items()}, alert_details=places.details,
                  alerts_ranking=places.ranking or "")
