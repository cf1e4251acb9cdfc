"""Why a user's read model differs from a replay: the event behind each difference and its likely cause.

The event is the last of the user's events whose fold changed what the replay shows at that place (found by
reading the user's events again and folding them one at a time, only for an inconsistent user, with the marks
the replay used). The cause: keys missing while the
checkpoint is intact (eviction, a flush, a failover), an event the checkpoint passed that Redis does not show
(lost writes), a value no event of the user explains (an outside writer); a parked event of the user after the
event behind it is named too. In a generation split into partitions the checkpoint is the user's partition's
(lost writes are judged against what that partition applied) and the user's events are folded as it folds them.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import redis

from projections import keys
from projections.codec import text
from projections.events import Envelope, user_streams
from projections.eventstore import EventStore
from projections.maintenance.report import EXTRA_KEY, MEMBER_EXTRA, MISSING_KEY, Difference, EventRef, Found
from projections.maintenance.user_fold import Fold, history, own_append_keys, with_marks
from projections.partitions import Partition
from projections.projector.fold import fold_batch
from projections.readmodels.base import Ref, Rendered
from projections.readmodels.portfolio import MARKS, Marks

EXPLAIN_MAX_EVENTS = 50_000  # a user with more events gets its differences without the events behind them

Place = tuple[str, str]  # (key, hash field or sorted-set member; '' for the key as a whole)


def explained(client: redis.Redis, store: EventStore, fold: Fold, found: list[Found], checkpoint: int, last: str
              ) -> list[Difference]:
    """Each difference of ``fold``'s entity with the event behind it and its likely cause."""
    m, ks, ref = fold.m, fold.ks, fold.ref
    places = {(key, name) for key, name, *_ in found}
    setters = _last_setters(store, fold, places) if fold.count <= EXPLAIN_MAX_EVENTS else {}
    parked = _parked_of(client, _parking_tags(fold), ref[1])
    at = int(last) if last.isdigit() else 0
    out = []
    for key, name, kind, expected, actual in found:
        event = setters.get((key, name))
        later = _parked_after(parked, event)
        out.append(Difference(m.name, ref[1], ks.name_of(key), name, kind, expected[:500], actual[:500],
                              _cause(kind, event, at, checkpoint, later, last), _ref(event),
                              _parked_name(later[0]) if later else ""))
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
        cause += (f"; note: event {_parked_name(first)} of this user ({first.get('type', '?')} at "
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


def _last_setters(store: EventStore, fold: Fold, places: set[Place]) -> dict[Place, Envelope]:
    """For each place, the last of the user's events (up to where ``fold`` stands) whose fold changed what the
    replay shows there."""
    m, ks, ref = fold.m, fold.ks, fold.ref
    states: dict[Ref, Any] = {}
    appended = own_append_keys(m, ks, ref)
    previous = _values(Rendered(), places)
    setters: dict[Place, Envelope] = {}
    own = (event for _, _, _, event in history(store, ref[1], upto=fold.events_upto)
           if event is not None and event.envelope.type in m.event_types and ref in m.touches(event))
    for event, marks in with_marks(own, fold.marks_of):
        if marks is not None:
            states[MARKS] = Marks(marks)
        result = fold_batch(m, ks, states, [event], partition=fold.partition)
        states.update(result.changed)
        for entry in result.appends:
            if entry.key in appended and (entry.key, entry.member) in places:
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


def _parked_name(record: dict[str, Any]) -> str:
    """How an operator names a parked event to retry it: ``stream/id`` (event ids are unique only within a stream)."""
    return keys.parked_member(str(record.get("stream", "?")), str(record.get("eventId", "?")))


def _parking_tags(fold: Fold) -> list[str]:
    """Where the user's parked events are: the user's partition (an event that failed its fold there) and
    partition 0 (an event that does not decode, which no partition can route); the projection's own tag when it
    is one partition."""
    part = fold.partition
    if part is None or part.count == 1:
        return [fold.m.name]
    return sorted({part.tag, Partition(part.projection, 0, part.count).tag})


def _parked_of(client: redis.Redis, tags: Iterable[str], user_id: str) -> list[dict[str, Any]]:
    """The parked events in the user's streams recorded under each of ``tags``, oldest first."""
    streams = set(user_streams(user_id))
    found = []
    for tag in tags:
        for raw in client.hvals(keys.parked(tag)):  # type: ignore[union-attr]  # sync client
            record = json.loads(text(raw))
            if record.get("stream") in streams:
                found.append(record)
    return sorted(found, key=lambda r: int(r.get("position") or 0))
