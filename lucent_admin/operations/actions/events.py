"""Actions on events and the running projector: acknowledge a risk alert, retry or park a bad event, resync."""
from __future__ import annotations

from typing import Any

from lucent_admin import bootstrap
from lucent_admin.operations import fields
from lucent_admin.operations.audit import ACKNOWLEDGE_ALERT, PARK_BAD_EVENT, RESYNC, RETRY_PARKED, Actor, Result, perform
from projections import actions
from projections.readmodels import PROJECTIONS


def do_acknowledge_alert(actor: Actor, user_id: str, alert_id: str, note: str = "") -> Result:
    """Append RiskAlertAcknowledged for the alert (idempotent: its event id derives from the alert)."""
    invalid = fields.problems(user_id=fields.identifier("User id", user_id), alert_id=fields.identifier("Alert id", alert_id),
                              note=fields.note(note))

    def call() -> dict[str, Any]:
        return {"position": actions.acknowledge_alert(bootstrap.event_store(), user_id, alert_id, actor.name, note)}

    return perform(actor, ACKNOWLEDGE_ALERT, f"{user_id}/{alert_id}" if user_id or alert_id else "", call,
                   f"Alert {alert_id} of {user_id} acknowledged.", invalid, note=note)


def _event_problems(projection: str, event_id: str) -> str:
    return fields.problems(projection=fields.one_of("Projection", projection, PROJECTIONS),
                           event_id=fields.event_name(event_id))


def do_retry_parked(actor: Actor, projection: str, event_id: str) -> Result:
    """Ask the running projector to re-read, re-decode and fold a parked event."""
    invalid = _event_problems(projection, event_id)
    return perform(actor, RETRY_PARKED, f"{projection}/{event_id}",
                   lambda: actions.retry_parked(bootstrap.redis_client(), projection, event_id),
                   f"Retry of parked event {event_id} requested; the {projection} projector applies it next.", invalid)


def do_park_bad_event(actor: Actor, projection: str, event_id: str) -> Result:
    """Park the bad event a ``stop``-policy projection stopped on, so it resumes past it."""
    invalid = _event_problems(projection, event_id)
    return perform(actor, PARK_BAD_EVENT, f"{projection}/{event_id}",
                   lambda: actions.park_bad_event(bootstrap.redis_client(), projection, event_id),
                   f"Event {event_id} will be parked; the {projection} projector resumes past it.", invalid)


def do_resync(actor: Actor, projection: str) -> Result:
    """Make the running projector of ``projection`` drop its in-memory state and resubscribe."""
    invalid = fields.problems(projection=fields.one_of("Projection", projection, PROJECTIONS))
    return perform(actor, RESYNC, projection, lambda: actions.request_resync(bootstrap.redis_client(), projection),
                   f"Resync of {projection} requested; its projector resubscribes from its checkpoint within a second.",
                   invalid)
