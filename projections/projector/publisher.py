"""The live projector's outbox: published domain events appended to the store after their commit.

Contract (DESIGN invariant 11):

* a batch's events to publish (:mod:`projections.published`) are written to the projection's
  outbox hash (``keys.outbox``) in the batch's own commit script, atomically with its
  checkpoint: a crash anywhere, kill -9 included, leaves them there or the batch unapplied;
* :meth:`Publisher.flush` appends every outbox entry to its stream, oldest cause first, one
  append each, then removes it from the outbox; the runner calls it after a commit that
  added entries and at the start of every session (start-up, after a reconnect), so what a
  crash left behind goes first;
* an entry appended but not yet removed (a crash between the two) is appended again: the
  store keeps the first (same event id in the same stream), so each event is published once;
* never from a replay: a session that starts with no checkpoint (a first start, Redis emptied)
  folds history up to the head of that moment, and publishes nothing for it; that horizon is
  kept (``keys.outbox_horizon``, set once) so a restart in the middle of that catch-up does not
  publish the rest of history either. A projection that had a checkpoint before publishing was
  deployed publishes from that checkpoint on;
* a stream deleted for good (tombstoned) cannot take the event: it is dropped and logged.
  The store being down raises :class:`~projections.errors.EventStoreUnavailable` and the
  entries stay for the next flush.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from projections import keys
from projections.codec import text
from projections.errors import StreamDeleted
from projections.events import DomainEvent
from projections.eventstore import EventStore, ProposedEvent
from projections.published import Builder, Outgoing
from projections.readmodels.base import Ref

log = logging.getLogger(__name__)


class Publisher:
    """Flushes one projection's outbox (see module doc)."""

    def __init__(self, client: redis.Redis, projection: str, build: Builder) -> None:
        self.client = client
        self.projection = projection
        self.key = keys.outbox(projection)
        self.build = build
        self.after = 0  # the horizon: events at or before this commit position are history, never published

    def begin(self, checkpoint: int, head: int) -> None:
        """At a session's start: fix the horizon once (the head if nothing was applied yet, else the
        checkpoint) and read it."""
        key = keys.outbox_horizon(self.projection)
        self.client.set(key, str(checkpoint or head), nx=True)
        self.after = int(text(self.client.get(key)) or 0)

    def events_of(self, event: DomainEvent, before: Mapping[Ref, Any], after: Mapping[Ref, Any]) -> Sequence[Outgoing]:
        """The builder the fold calls: the events ``event`` causes, none for history (see module doc)."""
        return () if event.envelope.position <= self.after else self.build(event, before, after)

    def pending(self) -> list[Outgoing]:
        """The outbox, oldest cause first."""
        stored: dict[bytes, bytes] = self.client.hgetall(self.key)  # type: ignore[assignment]
        entries = [Outgoing.from_json(text(v)) for v in stored.values()]
        return sorted(entries, key=lambda o: (o.cause_position, o.event_id))

    def flush(self, store: EventStore) -> int:
        """Append every outbox entry and remove it; the number appended."""
        done = 0
        for item in self.pending():
            correlation = store.metadata_at(item.cause_position).get("correlationId")
            metadata = item.metadata(correlation if isinstance(correlation, str) else None)
            event = ProposedEvent(item.type, item.data, metadata, id=uuid.UUID(item.event_id))
            try:
                store.append(item.stream, [event])
            except StreamDeleted as exc:
                log.error("projection %s: published event %s dropped: %s", self.projection, item.event_id, exc)
            else:
                done += 1
            self.client.hdel(self.key, item.event_id)
        return done

