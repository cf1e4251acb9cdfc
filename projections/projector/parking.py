"""Parked events: bad events recorded with the reason, never lost, retryable by name.

A parked event (one that failed to decode or validate, or whose fold raised)
is recorded in the projection's ``parked`` hash (``stream/id``, see
:func:`keys.parked_member`: event ids are unique only within a stream -> JSON:
id, stream, position, type, field, reason, recorded time, retried) and indexed
by commit position in ``parked:index``; both are written in the same commit as
the batch that moved the checkpoint past the event. Nothing here uses the wall
clock, so a replay parks the same records. Records parked before issue 22 are
named by the event id alone; parking the event again (a retry, a rebuild)
moves its record to ``stream/id``.

Retry: an operator adds the parked event's name to ``parked:retry``
(:func:`projections.actions.retry_parked`); the running projector re-reads the event from the store, decodes it again and,
if it now validates, folds it at the current state and unparks it in one
commit (a rebuild would apply it at its place in ``$all``).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import redis

from projections import keys
from projections.codec import text
from projections.errors import BadEvent
from projections.events import envelope_of
from projections.eventstore import EventStore
from projections.writer import Write, parked_writes, unpark_writes


class Parking:
    def __init__(self, client: redis.Redis, projection: str) -> None:
        self.client = client
        self.projection = projection

    def park_writes(self, raw: Any, error: BadEvent, retried: bool = False, decided: bool = False) -> list[Write]:
        """Writes parking ``raw`` (a recorded event, or a decoded one whose fold failed: anything
        :func:`~projections.events.envelope_of` takes); ``decided``: an operator's decision on a
        stopped projection (consumed here)."""
        env = envelope_of(raw)
        record = {
            "eventId": env.event_id, "stream": env.stream, "position": env.position, "type": env.type,
            "field": error.field, "reason": error.reason, "recordedAt": env.recorded_at, "retried": retried,
        }
        if decided:
            record["decision"] = "parked by an operator (stop policy)"
        member = keys.parked_member(env.stream, env.event_id)
        commands = [*self._legacy_of(env.stream, env.event_id),
                    *parked_writes(self.projection, member, env.position, json.dumps(record, sort_keys=True))]
        if decided:
            commands.append(("SREM", keys.park_requests(self.projection), member))
        return commands

    def _legacy_of(self, stream: str, event_id: str) -> list[Write]:
        """Writes removing this event's record of before issue 22 (named by its id alone), if there is one: parked
        again (a retry, a rebuild), it is named ``stream/id`` and must not be listed twice."""
        old = self.client.hget(keys.parked(self.projection), event_id)
        if old is None or json.loads(text(old)).get("stream") != stream:
            return []
        return unpark_writes(self.projection, event_id)

    def park_decided(self, member: str) -> bool:
        """True if an operator decided to park the event ``member`` (``stream/id``,
        :func:`projections.actions.park_bad_event`)."""
        return bool(self.client.sismember(keys.park_requests(self.projection), member))

    def unpark_writes(self, member: str) -> list[Write]:
        return unpark_writes(self.projection, member)

    def count(self) -> int:
        return int(cast(int, self.client.hlen(keys.parked(self.projection))))

    def due(self, store: EventStore) -> Iterator[tuple[str, Any]]:
        """Parked events whose retry was requested, by the name they are parked under, re-read from the store
        (requests are consumed)."""
        requested = self.client.spop(keys.retry_requests(self.projection), 100)
        for raw in requested or ():
            member = text(raw)
            record = self.client.hget(keys.parked(self.projection), member)
            if record is None:
                continue
            parked = json.loads(text(record))
            position = int(parked["position"])
            for event in store.read_all(after=position - 1, limit=1):
                if str(event.id) == parked.get("eventId") and event.stream_name == parked.get("stream", event.stream_name):
                    yield member, event

