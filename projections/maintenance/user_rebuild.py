"""Per-user rebuild: one user's read models in every projection, refolded from the event store.

For each projection whose read model has user entities (``ReadModel.user_kind``):

1. *Snapshot*, in one MULTI/EXEC: the live generation's checkpoint C and the
   entity's ``lastPosition`` L ('' when its hash is missing).
2. *Events*: the user's own streams (``events.user_streams``), keeping the
   projection's types whose entity is this user and whose position is at most C
   — what the live projector has applied. The events are read once, after every
   projection's snapshot, for all of them. The portfolio also needs marks: a full
   replay values positions at the marks of each of the user's events, but only a
   rebalance's and the last event's outlive the next event
   (``portfolio.marks_outlive``). A rebalance's marks come from the portfolio's
   ``rebalance-marks`` index (what the projector folded it with, replay-exact);
   the last event's, and a rebalance's the index no longer keeps, are the last
   price of each pair read backwards from the event (:func:`marks_at`): one
   pipelined read and a short one, not every price of the user's history.
3. *Fold* with the same pure folds (``projector/fold.py``) → the entity's state,
   its Redis image and its history entries.
4. *Observe* what Redis holds for the entity now: its own hashes, its members in
   the shared rankings and hashes — also where the image no longer puts it (a
   stray member of an old day's leaderboard, an alert of the user left behind) —
   and turn that into the replayed image with absolute writes (``writer.diff``).
5. *Write* with :func:`~projections.writer.write_entity`: only if L is still the
   entity's ``lastPosition``, i.e. the live projector applied no event of the user
   since the snapshot (then the state as of C is the state now); the same script
   bumps ``state-epoch``, so the projector's cache and its batch in flight notice.
   If L moved, go again from 1 (a bounded number of times).

Everything else (the market, strategies, the clocks) is not one user's and is
left alone: a full rebuild refolds those. Replays have no side effects: no change
notice is sent (the console re-reads on the next one) and nothing is published.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from projections.errors import BadEvent, RebuildContended
from projections.events import CanaryAppended, DomainEvent, Ignored, PriceUpdated, Recorded, decode, user_streams
from projections.eventstore import EventStore
from projections.keys import KeySpace
from projections.maintenance.control import Control, Unattended, check
from projections.maintenance.pointer import live_generation
from projections.projector.fold import fold_batch
from projections.readmodels import PROJECTIONS, model
from projections.readmodels.base import Append, ReadModel, Ref, Rendered
from projections.readmodels.portfolio import MARKS, Marks, marks_outlive, pairs_of, parse_rebalance_marks
from projections.writer import Plan, diff, text, write_entity

log = logging.getLogger(__name__)

ATTEMPTS = 5  # snapshots tried before giving up to live traffic (each loses only if the user traded meanwhile)
CHUNK = 2000  # events folded per call (states are carried from one chunk to the next)


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


def user_projections() -> tuple[str, ...]:
    """The projections that keep per-user read models."""
    return tuple(name for name in PROJECTIONS if model(name).user_kind)


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
    spaces = [live_keyspace(client, m.name) for m in models]
    refs: list[Ref] = [(str(m.user_kind), user_id) for m in models]
    mains = [m.main_key(ks, ref) for m, ks, ref in zip(models, spaces, refs)]
    shots = snapshots(client, [(ks, main) for ks, main in zip(spaces, mains)])
    events = user_events(store, user_id)  # after every snapshot, once for all the projections (module doc, 2)
    done = []
    for i, m in enumerate(models):
        check(control)
        control.report(i, len(models), f"rebuilding {user_id} in {m.name}")
        done.append(_rebuild_one(client, store, m, spaces[i], refs[i], shots[i], events))
    control.report(len(models), len(models), f"rebuilt {user_id}")
    return UserRebuilt(user_id, tuple(done))


@dataclass
class Fold:
    """A fold of one user's events carried from one attempt to the next: a retry only folds what
    the live projector applied since."""

    states: dict[Ref, Any] = field(default_factory=dict)
    appends: list[Append] = field(default_factory=list)
    events_upto: int = 0  # every event of the user at or before this position is folded
    pairs: set[str] = field(default_factory=set)  # every pair the folded events named (for the marks)
    count: int = 0
    events: list[DomainEvent] = field(default_factory=list)  # the events folded, in order
    marks: dict[int, dict[str, float]] = field(default_factory=dict)  # the true marks set before these positions


def heal(client: redis.Redis, store: EventStore, ks: KeySpace, users: Sequence[str]) -> None:
    """The projector's healer (``projector/vanished.py``): rebuild ``users``' entities of ``ks.projection`` in
    generation ``ks.generation`` at its checkpoint, which the calling runner holds still."""
    m = model(ks.projection)
    strays = stray_places(client, m, ks)
    for user in users:
        ref: Ref = (str(m.user_kind), user)
        shot = snapshots(client, [(ks, m.main_key(ks, ref))])[0]
        _rebuild_one(client, store, m, ks, ref, shot, user_events(store, user), strays)


def _rebuild_one(client: redis.Redis, store: EventStore, m: ReadModel, ks: KeySpace, ref: Ref,
                 snapshot: tuple[int, str], events: list[DomainEvent], strays: Strays | None = None) -> EntityRebuilt:
    main = m.main_key(ks, ref)
    fold = Fold()
    for attempt in range(1, ATTEMPTS + 1):
        if attempt > 1:
            snapshot = snapshots(client, [(ks, main)])[0]
            events = user_events(store, ref[1])  # read after the snapshot: all <= C are stored
        checkpoint, last = snapshot
        expected = replay(fold, client, store, m, ks, ref, checkpoint, events)
        plan = Plan()
        diff(observe(client, m, ks, ref, expected, strays), expected, plan)
        if not plan.writes or write_entity(client, ks, main, last, plan.writes):
            return EntityRebuilt(m.name, checkpoint, fold.count, len(plan.writes), attempt)
        log.info("per-user rebuild of %s in %s: a live event moved it (attempt %d); again", ref[1], m.name, attempt)
    raise RebuildContended(f"user {ref[1]!r} in {m.name}: live events kept moving the entity during {ATTEMPTS} "
                           "attempts; try again when the user is quieter")


def replay(fold: Fold, client: redis.Redis, store: EventStore, m: ReadModel, ks: KeySpace, ref: Ref,
           checkpoint: int, events: list[DomainEvent], marks: dict[int, dict[str, float]] | None = None) -> Rendered:
    """The entity's image (its position history included) as a full replay up to ``checkpoint``
    leaves it, folding into ``fold`` what it has not folded yet (``marks``: those :func:`marks_of` gave for
    that, read ahead; else they are read here)."""
    _advance(fold, client, store, m, ks, ref, checkpoint, events, marks if not fold.events_upto else None)
    state = fold.states.get(ref)
    image = Rendered() if state is None else m.render(ks, ref, state)
    return _with_history(image, _history(fold.appends))


def own_events(m: ReadModel, ref: Ref, events: list[DomainEvent], after: int, upto: int) -> list[DomainEvent]:
    """The entity's events of ``m``'s types in (``after``, ``upto``]."""
    return [e for e in events if after < e.envelope.position <= upto and e.envelope.type in m.event_types
            and ref in m.touches(e)]


def marks_of(client: redis.Redis, store: EventStore, m: ReadModel, ks: KeySpace, ref: Ref, events: list[DomainEvent],
             upto: int) -> dict[int, dict[str, float]]:
    """The true marks a first fold of the entity up to ``upto`` needs (none for a model without prices)."""
    if "PriceUpdated" not in m.event_types:
        return {}
    return marks_at(client, store, ks, marks_needed(own_events(m, ref, events, 0, upto), set()))


def _advance(fold: Fold, client: redis.Redis, store: EventStore, m: ReadModel, ks: KeySpace, ref: Ref,
             checkpoint: int, events: list[DomainEvent], known: dict[int, dict[str, float]] | None = None) -> None:
    """Fold the user's ``events`` in (``fold.events_upto``, ``checkpoint``] into ``fold``."""
    new = own_events(m, ref, events, fold.events_upto, checkpoint)
    fold.events_upto = max(fold.events_upto, checkpoint)
    if not new:
        return
    marks: dict[int, dict[str, float]] = {}
    if "PriceUpdated" in m.event_types:
        needs = marks_needed(new, fold.pairs)  # also the pairs named so far, for a later attempt's needs
        marks = known if known is not None else marks_at(client, store, ks, needs)
    own = own_append_keys(m, ks, ref)
    fold.events.extend(new)
    fold.marks.update(marks)
    for chunk, at in segments(new, marks):
        if at is not None:
            fold.states[MARKS] = Marks(at)  # the marks as a full replay has them at this event
        result = fold_batch(m, ks, fold.states, chunk)
        fold.states.update(result.changed)
        fold.appends.extend(a for a in result.appends if a.key in own)  # not the shared rebalance-marks index
    fold.count += len(new)


Need = tuple[int, frozenset[str]]  # the marks of these pairs just before this commit position


def marks_needed(events: Sequence[DomainEvent], pairs: set[str]) -> list[Need]:
    """Where one user's portfolio fold needs the true marks: before each event whose marks outlive the
    next event (a rebalance: of its pairs) and before the last one (of every pair the user has named so
    far, ``pairs``, updated); see ``portfolio.marks_outlive``. Anywhere else, any marks give the same
    final state."""
    needs: list[Need] = []
    for i, event in enumerate(events):
        pairs.update(pairs_of(event))
        if marks_outlive(event):
            needs.append((event.envelope.position, frozenset(pairs_of(event))))
        elif i == len(events) - 1:
            needs.append((event.envelope.position, frozenset(pairs)))
    return needs


def segments(events: Sequence[DomainEvent], marks: dict[int, dict[str, float]]
             ) -> Iterator[tuple[list[DomainEvent], dict[str, float] | None]]:
    """``events`` cut into folds: each event with marks in ``marks`` alone, with them, the others in
    runs of at most ``CHUNK``."""
    chunk: list[DomainEvent] = []
    for event in events:
        at = marks.get(event.envelope.position)
        if chunk and (at is not None or len(chunk) >= CHUNK):
            yield chunk, None
            chunk = []
        if at is not None:
            yield [event], at
        else:
            chunk.append(event)
    if chunk:
        yield chunk, None


def marks_at(client: redis.Redis, store: EventStore, ks: KeySpace, needs: Sequence[Need]) -> dict[int, dict[str, float]]:
    """The marks of each need. A rebalance's come from the ``rebalance-marks`` index (one pipelined read
    for all of them); the rest (the last event, a rebalance older than the index keeps) are read
    backwards from the store (:func:`latest_prices`)."""
    pipe = client.pipeline(transaction=False)
    for position, _ in needs:
        pipe.zrangebyscore(ks.rebalance_marks(), position, position)
    found: dict[int, dict[str, float]] = {}
    for (position, pairs), members in zip(needs, pipe.execute()):
        if members:
            found[position] = parse_rebalance_marks(text(members[0]))[1]
        else:
            found[position] = {p.pair: p.price for p in latest_prices(store, position, set(pairs))}
    return found


def latest_prices(store: EventStore, before: int, pairs: set[str]) -> list[PriceUpdated]:
    """The last ``PriceUpdated`` of each of ``pairs`` before commit position ``before``, oldest first
    (a pair never priced reads back to the start of ``$all``; bad events are skipped, as a replay
    skips them)."""
    found: dict[str, PriceUpdated] = {}
    for price in _decoded(store.read_types_before(["PriceUpdated"], before)):
        if isinstance(price, PriceUpdated) and price.pair in pairs and price.pair not in found:
            found[price.pair] = price
            if len(found) == len(pairs):
                break
    return sorted(found.values(), key=lambda p: p.envelope.position)


def user_events(store: EventStore, user_id: str) -> list[DomainEvent]:
    """The user's decodable events from their streams, in ``$all`` order (bad ones are parked
    by the live projector and skipped here, as a replay skips them)."""
    found: list[DomainEvent] = []
    for stream in user_streams(user_id):
        found.extend(_decoded(store.read_stream(stream)))
    return sorted(found, key=lambda e: e.envelope.position)


def _decoded(items: Iterable[Recorded]) -> Iterator[DomainEvent]:
    for item in items:
        try:
            event = decode(item)
        except BadEvent:
            continue
        if not isinstance(event, (Ignored, CanaryAppended)):  # no canary is in a user's stream; skipped all the same
            yield event


def live_keyspace(client: redis.Redis, projection: str) -> KeySpace:
    return KeySpace(projection, live_generation(client, projection))


def snapshots(client: redis.Redis, entities: Sequence[tuple[KeySpace, str]]) -> list[tuple[int, str]]:
    """Each projection's checkpoint and its entity's lastPosition, all read in one MULTI/EXEC."""
    pipe = client.pipeline(transaction=True)
    for ks, main in entities:
        pipe.get(ks.checkpoint)
        pipe.hget(main, "lastPosition")
    replies = pipe.execute()
    return [(int(text(replies[2 * i]) or 0), text(replies[2 * i + 1])) for i in range(len(entities))]


def own_append_keys(m: ReadModel, ks: KeySpace, ref: Ref) -> set[str]:
    """The append-only keys that are the entity's own (the portfolio's position history)."""
    return {ks.portfolio_history(ref[1])} if m.name == "portfolio" else set()


def _history(appends: list[Append]) -> dict[str, dict[str, float]]:
    """Each append-only key's entries as a full replay leaves them: the newest ``cap`` by score."""
    out: dict[str, dict[str, float]] = {}
    caps: dict[str, int] = {}
    for entry in appends:
        out.setdefault(entry.key, {})[entry.member] = entry.score
        caps[entry.key] = entry.cap
    return {key: dict(sorted(members.items(), key=lambda kv: kv[1])[-caps[key]:]) for key, members in out.items()}


def _with_history(image: Rendered, history: dict[str, dict[str, float]]) -> Rendered:
    return Rendered(owned=image.owned, zsets={**image.zsets, **history}, hfields=image.hfields)


def observe(client: redis.Redis, m: ReadModel, ks: KeySpace, ref: Ref, image: Rendered, strays: Strays | None = None
            ) -> Rendered:
    """What Redis holds for the entity, read in one MULTI/EXEC: over the keys of the replayed
    ``image``, of the image its current hash describes, and the stray places (``strays``, or found by
    scanning; see the module doc); the entity's own append-only keys whole."""
    history = {key: members for key, members in image.zsets.items() if key in own_append_keys(m, ks, ref)}
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
    whole = set(history) | own_append_keys(m, ks, ref)
    pipe = client.pipeline(transaction=True)
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
    """The places a user may have been left in that no image names: for a trader, every day's volume
    leaderboard; for a user's risk, the alerts whose details name the user. Found by scanning once, then
    used for any number of users (a stray created afterwards is found by the next scan)."""

    days: tuple[str, ...] = ()  # every daily volume leaderboard
    alerts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # user -> alert ids naming them
    alert_details: str = ""
    alerts_ranking: str = ""

    def add(self, user: str, zsets: dict[str, set[str]], hfields: dict[str, set[str]]) -> None:
        for key in self.days:
            zsets.setdefault(key, set()).add(user)
        if self.alert_details:
            for alert in self.alerts.get(user, ()):
                hfields.setdefault(self.alert_details, set()).add(alert)
                zsets.setdefault(self.alerts_ranking, set()).add(alert)


def stray_places(client: redis.Redis, m: ReadModel, ks: KeySpace) -> Strays:
    """Scan for the stray places of ``m``'s users (see :class:`Strays`)."""
    if m.name == "leaderboards":
        return Strays(days=tuple(sorted(text(k) for k in client.scan_iter(match=ks.daily_volume_leaders("*"), count=1000))))
    if m.name == "risk":
        found: dict[str, list[str]] = {}
        for alert, value in client.hscan_iter(ks.risk_alert_details(), count=1000):
            try:
                user = json.loads(text(value)).get("userId")
            except (ValueError, AttributeError):  # not the projector's: the comparison shows it
                continue
            if isinstance(user, str):
                found.setdefault(user, []).append(text(alert))
        return Strays(alerts={u: tuple(a) for u, a in found.items()}, alert_details=ks.risk_alert_details(),
                      alerts_ranking=ks.risk_alerts())
    return Strays()
