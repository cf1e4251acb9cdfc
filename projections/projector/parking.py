"""Parked events: bad events recorded with the reason, never lost, retryable by id.

A parked event (one that failed to decode or validate, or whose fold raised)
is recorded in the projection's ``parked`` hash (event id -> JSON: id, stream,
position, type, field, reason, recorded time, retried) and indexed by commit
position in ``parked:index``; both are written in the same commit as the
batch that moved the checkpoint past the event. Nothing here uses the wall
clock, so a replay parks the same records.

Retry: an operator adds the id to ``parked:retry``
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
from projections.errors import BadEvent
from projections.events import envelope_of
from projections.eventstore import EventStore
from projections.writer import Write, parked_writes, text, unpark_writes


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
        commands = parked_writes(self.projection, env.event_id, env.position, json.dumps(record, sort_keys=True))
        if decided:
            commands.append(("SREM", keys.park_requests(self.projection), env.event_id))
        return commands

    def park_decided(self, event_id: str) -> bool:
        """True if an operator decided to park ``event_id`` (:func:`projections.actions.park_bad_event`)."""
        return bool(self.client.sismember(keys.park_requests(self.projection), event_id))

    def unpark_writes(self, event_id: str) -> list[Write]:
        return unpark_writes(self.projection, event_id)

    def count(self) -> int:
        return int(cast(int, self.client.hlen(keys.parked(self.projection))))

    def due(self, store: EventStore) -> Iterator[tuple[str, Any]]:
        """Parked events whose retry was requested, re-read from the store (requests are consumed)."""
        requested = self.client.spop(keys.retry_requests(self.projection), 100)
        for raw_id in requested or ():
            event_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            record = self.client.hget(keys.parked(self.projection), event_id)
            if record is None:
                continue
            position = int(json.loads(text(record))["position"])
            for event in store.read_all(after=position - 1, limit=1):
                if str(event.id) == event_id:
                    yield event_id, event

