"""The operator commands the console, the command line and tasks call (framework-free).

Each is one function: it validates its input, then appends a catalog event through
the event store port (the projector folds it like any other event) or records a
request the running projector consumes. They are idempotent: acknowledging an
alert twice appends once (the event id derives from the alert), a repeated retry
or park request is one member of a set. Permission checks and the audit log are
the Django side's (``lucent_admin/operations/actions/``), which calls these.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import redis

from projections import keys
from projections.errors import BadEvent, NotRunning, NotStoppedOn
from projections.events import NOTE_MAX, is_identifier, risk_stream
from projections.eventstore import EventStore, ProposedEvent
from projections.queries import Queries, check_projection

_NAMESPACE = uuid.UUID("6f1c1d52-9a51-4f57-8c1e-4c7d2f0a9b31")


def acknowledge_alert(
    store: EventStore, user_id: str, alert_id: str, acknowledged_by: str, note: str = "",
    at: datetime | None = None,
) -> int:
    """Append RiskAlertAcknowledged for ``alert_id`` of ``user_id``; return its commit position.

    Acknowledging the same alert again is idempotent: the event id is derived from the alert.
    """
    for field, value in (("userId", user_id), ("alertId", alert_id), ("acknowledgedBy", acknowledged_by)):
        if not is_identifier(value):
            raise BadEvent(field, "must be 1-64 characters of letters, digits, '_', '.', '-'")
    if len(note) > NOTE_MAX:
        raise BadEvent("note", f"longer than {NOTE_MAX} characters")
    when = (at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    event = ProposedEvent(
        type="RiskAlertAcknowledged",
        data={
            "userId": user_id, "alertId": alert_id, "acknowledgedBy": acknowledged_by, "note": note,
            "at": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        },
        metadata={"source": "lucent-admin", "correlationId": alert_id, "causationId": alert_id},
        id=uuid.uuid5(_NAMESPACE, f"ack:{user_id}:{alert_id}"),
    )
    return store.append(risk_stream(user_id), [event])


def retry_parked(client: redis.Redis, projection: str, event: str) -> None:
    """Ask the running projector of ``projection`` to retry the parked event named ``event``: ``stream/id``, its
    commit position, or its id alone when no other parked event has it (event ids are unique only within a stream).

    Raises NotParked unless the projection has parked that event, AmbiguousEvent if the id names several.
    """
    tag, member = Queries(client).parked_place(check_projection(projection), event)
    client.sadd(keys.retry_requests(tag), member)  # the partition that parked it retries it


RESYNC_TTL_S = 60  # a request no projector picks up within this long is dropped


def request_resync(client: redis.Redis, projection: str) -> None:
    """Ask the running projector of ``projection`` to drop its in-memory state and resubscribe from its
    checkpoint (for a projector alive but stuck). Raises NotRunning if none beats for it."""
    (status,) = Queries(client).projection_status(check_projection(projection))
    if not status.alive:
        raise NotRunning(f"no projector is running {projection!r} ({status.effective_state}); start one with "
                         "manage.py run_projector, which subscribes afresh anyway")
    for tag in Queries(client).spread(projection).tags:  # every partition resubscribes
        client.set(keys.resync_request(tag), "1", ex=RESYNC_TTL_S)


def park_bad_event(client: redis.Redis, projection: str, event: str) -> None:
    """Decide to park the bad event a ``stop``-policy projection stopped on; the projector resumes past it.

    ``event`` names it by its id, ``stream/id`` or commit position (it is stopped on one event, so its id alone is
    never ambiguous). Raises NotStoppedOn unless the projection's status says it is stopped on that event.
    """
    (status,) = Queries(client).projection_status(check_projection(projection))
    on = status.stopped_on
    if on is None or event not in (on.event_id, keys.parked_member(on.stream, on.event_id), str(on.position)):
        now = f"it is stopped on {on.event_id} in {on.stream}" if on else f"it is {status.effective_state}"
        raise NotStoppedOn(f"projection {projection!r} is not stopped on event {event!r} ({now}); nothing to park")
    # partition 0 is the one that stops on a bad event (one that does not decode is no other partition's)
    client.sadd(keys.park_requests(Queries(client).spread(projection).tags[0]), keys.parked_member(on.stream, on.event_id))
