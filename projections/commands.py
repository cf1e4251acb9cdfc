"""Operator commands that become events: the write side the console calls.

Each command builds a catalog event and appends it through the event store
port; the projector then folds it like any other event. Event ids are derived
from the command's identity, so a repeated command (a double click, a retried
request) appends nothing new.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from projections.errors import BadEvent
from projections.events import NOTE_MAX, is_identifier
from projections.eventstore import EventStore, ProposedEvent

_NAMESPACE = uuid.UUID("6f1c1d52-9a51-4f57-8c1e-4c7d2f0a9b31")


def risk_stream(user_id: str) -> str:
    return f"risk-{user_id}"


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
