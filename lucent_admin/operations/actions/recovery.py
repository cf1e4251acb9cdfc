"""Actions on automatic recovery: a resync as a job, dismiss a recovery alert, change the health and recovery
thresholds (the Settings page)."""
from __future__ import annotations

from typing import Any

from django.db import transaction

from lucent_admin.operations import fields, thresholds
from lucent_admin.operations.audit import CHANGE_THRESHOLDS, DISMISS, RESYNC_JOB, Actor, Queued, Result, perform
from lucent_admin.operations.models import Job, RecoveryState, ThresholdValue
from lucent_admin.operations.queue import single_job
from projections.errors import ProjectionError
from projections.readmodels import PROJECTIONS


def do_resync_job(actor: Actor, projection: str) -> Result:
    """Queue a resync as a job (what automatic recovery does: the job says when the projector resubscribed)."""
    invalid = fields.problems(projection=fields.one_of("Projection", projection, PROJECTIONS))

    def call() -> Queued:
        job, again = single_job(Job.Kind.RESYNC, projection, {"projection": projection}, actor.name, 1)
        return Queued(job.pk, again)

    result = perform(actor, RESYNC_JOB, projection, call, "", invalid)
    if result.ok:
        return Result(result.outcome, f"Resync of {projection} queued as job {result.job}.", result.value,
                      result.params)
    return result


def do_dismiss(actor: Actor, projection: str) -> Result:
    """Dismiss the alert automatic recovery raised for ``projection``; its rules may act again."""
    def call() -> None:
        updated = RecoveryState.objects.filter(projection=projection).exclude(escalated="").update(
            escalated="", escalated_at=None, attempts=[])
        if not updated:
            raise ProjectionError(f"{projection} has no recovery alert to dismiss")

    return perform(actor, DISMISS, projection, call, f"Recovery alert of {projection} dismissed; its rules act "
                           "again.")


def do_change_thresholds(actor: Actor, values: dict[str, float]) -> Result:
    """Set the health and recovery thresholds (the Settings page); audited with each change, old → new.
    Setting the values already in force changes nothing and says so."""
    invalid = "; ".join(e for e in (thresholds.invalid(k, v) for k, v in values.items()) if e)
    before = thresholds.current(fresh=True)
    changes = {k: [before[k], v] for k, v in values.items() if k in before and before[k] != v}

    def call() -> dict[str, Any]:
        with transaction.atomic():
            for name, (_, new) in changes.items():
                ThresholdValue.objects.update_or_create(name=name, defaults={"value": new, "updated_by": actor.name})
        thresholds.forget()
        return {"changes": changes}

    result = perform(actor, CHANGE_THRESHOLDS, ",".join(sorted(changes)) or "thresholds", call, "", invalid)
    if result.ok:
        said = ", ".join(f"{k} {old:g} → {new:g}" for k, (old, new) in sorted(changes.items())) or "nothing changed"
        return Result(result.outcome, f"Thresholds saved: {said}. They take effect within a few seconds.",
                      result.value, result.params)
    return result
