"""Health states and automatic recovery, the console's side (engine: ``projections/health.py`` and
``projections/maintenance/recovery.py``).

:func:`projection_health` is what every tile, page, command and metric shows. :func:`tick` (beat, every
``LUCENT_RECOVERY_EVERY_S``) looks at each projection in a database transaction holding its
:class:`RecoveryState` row, so that several processes noticing the same thing act once:

* a checkpoint below the highest one seen is a **cold start** (Redis lost the read models and the
  projector is projecting the history again by itself): recorded, audited, shown until it is back;
* the rules propose at most one action; the **guards** let it through only if no automatic job of
  the projection is still queued or running and no generation job runs, the same rule acted longer
  than the cooldown ago, and fewer than K automatic actions ran in the last hour — past that the
  projection is **escalated**: an alert for an operator on the overview, until dismissed;
* the action is queued through the action layer as the system, naming the rule
  (``system: recovery (stalled → resync)``), and audited as ``recovery.act`` with the reason.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from django.db import IntegrityError, transaction

from lucent_admin import bootstrap
from lucent_admin.operations import actions, thresholds
from lucent_admin.operations.audit import Action, Actor, Queued, Result, perform
from lucent_admin.operations.models import Job, RecoveryState
from lucent_admin.operations.observability import HEALTH, announce
from lucent_admin.operations.queue import running_generation_job
from projections.health import Health, HealthState, Observed, classify
from projections.maintenance.recovery import REBUILD, REPAIR, RESYNC, Missing, Proposal, Since, decide, missing_read_models
from projections.readmodels import PROJECTIONS
from projections.status import ProjectionState, ProjectionStatus

log = logging.getLogger(__name__)
SYSTEM = "system: recovery"
ACT = Action("recovery.act", "")
COLD_START = Action("recovery.cold-start", "")
ESCALATE = Action("recovery.escalated", "")
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class ProjectionHealth:
    status: ProjectionStatus
    health: Health
    cold_start: str  # why it is projecting its history again ("" if it is not)
    escalated: str  # the alert for an operator ("" if none)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _rebuilding(name: str, cold_start: str) -> str:
    if cold_start:
        return cold_start
    job = running_generation_job(name)
    if job is not None and job.kind == Job.Kind.REBUILD and job.state == Job.State.RUNNING:
        return f"Rebuild job {job.pk} is folding the history into a new generation; the live one keeps serving."
    return ""


def _observed(s: ProjectionStatus, rebuilding: str, canary_age_s: float | None, refusal: str = "") -> Observed:
    """What the classification needs (``refusal``: why Redis refuses writes, which stalls every projector that
    beats, whatever its status hash — which it cannot write — last said)."""
    stopped = s.stopped_on
    return Observed(
        alive=s.alive, started=s.state is not ProjectionState.NOT_STARTED,
        stopped_on=f"{stopped.event_id} ({stopped.type} at {stopped.position:,})" if stopped else "",
        stall_error=refusal or (s.last_error if s.state is ProjectionState.STALLED else ""),
        events_behind=s.events_behind, lag_seconds=s.lag_seconds, rebuilding=rebuilding, canary_age_s=canary_age_s,
        behind_bounded=s.events_behind_bounded,
    )


def canary_age_s(name: str, now_ms: int) -> float | None:
    """Seconds since ``name`` last committed a canary, while a newer one waits for it; None while canaries are
    off, beat appends none, or it never saw one (only a projection that stops seeing them is flagged)."""
    from django.conf import settings

    if not settings.LUCENT_CANARY_EVERY_S:
        return None
    queries = bootstrap.queries()
    appended, seen = queries.canary_appended(), queries.canary(name, now_ms)
    if appended is None or seen is None or appended.appended_at_ms <= seen.appended_at_ms:
        return None
    return max(0.0, (now_ms - seen.last_seen_ms) / 1000)


def projection_health(names: list[str] | None = None) -> dict[str, ProjectionHealth]:
    """Every (or the named) projection's status and health, with its cold start and alert if any."""
    queries = bootstrap.queries()
    statuses = queries.projection_status() if names is None else [queries.projection_status(n)[0] for n in names]
    now = _now_ms()
    limits = thresholds.health_thresholds()
    states = {r.projection: r for r in RecoveryState.objects.filter(projection__in=names or PROJECTIONS)}
    refusal = queries.write_refusal()
    out = {}
    for s in statuses:
        state = states.get(s.projection)
        cold = state.cold_start if state else ""
        observed = _observed(s, _rebuilding(s.projection, cold), canary_age_s(s.projection, now), refusal)
        health = classify(observed, queries.health_samples(s.projection), now, limits)
        out[s.projection] = ProjectionHealth(s, health, cold, state.escalated if state else "")
    return out


# -- the tick ---------------------------------------------------------------------------------


def tick() -> list[str]:
    """Look at every projection once (module doc); what was done, in words (for the log and tests)."""
    done: list[str] = []
    rules = thresholds.recovery_rules(thresholds.current(fresh=True))
    for name, ph in projection_health().items():
        try:
            done.extend(_look_at(name, ph, rules))
        except Exception:  # noqa: BLE001 - one projection's trouble must not stop the others' recovery
            log.exception("recovery of %s: the look failed", name)
    announce(HEALTH, _now_ms())  # health changes without a commit (a stall, a dead projector): pages redraw
    return done


def _row(name: str) -> RecoveryState:
    try:
        RecoveryState.objects.get_or_create(projection=name)
    except IntegrityError:  # another process created it first
        pass
    return RecoveryState.objects.select_for_update().get(projection=name)


def _look_at(name: str, ph: ProjectionHealth, rules: Any) -> list[str]:
    done: list[str] = []
    missing = _missing(name, ph, rules)  # Redis only: looked up before the row is held
    now = _now_ms()
    with transaction.atomic():
        row = _row(name)
        done.extend(_cold_start(row, ph.status))
        health = ph.health
        if row.cold_start:
            missing = None  # a cold start's catch-up would be mistaken for loss
            if health.state is HealthState.OK:
                health = Health(HealthState.REBUILDING, row.cold_start)
        since, proposal = decide(health, ph.status.lag_seconds, Since(row.lag_high_since, row.stalled_since), missing,
                                 now, rules)
        row.lag_high_since, row.stalled_since = since.lag_high, since.stalled
        if proposal is not None:
            done.extend(_guarded(row, proposal, rules, now))
        row.save()
    return done


def _cold_start(row: RecoveryState, s: ProjectionStatus) -> list[str]:
    """A cold start is what the projector reported (its checkpoint went back under it), or a live projector
    below the highest checkpoint seen (it restarted after Redis lost the read models); it ends once the
    projector is back there and caught up."""
    if not s.alive:
        return []
    said = []
    reported = s.cold_start_at > row.cold_start_seen
    if reported or (row.high_checkpoint and s.checkpoint < row.high_checkpoint and not row.cold_start):
        had = max(row.high_checkpoint, s.cold_start_from)
        row.cold_start_seen = max(row.cold_start_seen, s.cold_start_at)
        row.cold_start = (f"Redis lost the read models of {row.projection} (its checkpoint was at {had:,}): the "
                          "projector is projecting the history again by itself.")
        at = s.cold_start_at / 1000 if reported else time.time()
        row.cold_start_at, row.healed_at = datetime.fromtimestamp(at, timezone.utc), None
        row.high_checkpoint = had
        perform(Actor(f"{SYSTEM} (cold start)"), COLD_START, row.projection, lambda: None, "",
                        checkpoint=s.checkpoint, was=had)
        said.append(f"{row.projection}: cold start")
    if row.cold_start and s.checkpoint >= row.high_checkpoint and s.events_behind == 0 \
            and s.state is ProjectionState.LIVE:
        row.cold_start, row.healed_at = "", datetime.now(timezone.utc)
        said.append(f"{row.projection}: healed")
    row.high_checkpoint = max(row.high_checkpoint, s.checkpoint)
    return said


def _missing(name: str, ph: ProjectionHealth, rules: Any) -> Missing | None:
    """Read models missing, looked for only while the projection is healthy and no job writes it
    (a cold start's catch-up, a rebuild or a stall would be mistaken for loss)."""
    if not rules.missing_rebuild or ph.health.state not in (HealthState.OK, HealthState.WARN) or ph.cold_start:
        return None
    if running_generation_job(name) is not None:
        return None
    return missing_read_models(bootstrap.redis_client(), name, rules.missing_sample)


def _guarded(row: RecoveryState, proposal: Proposal, rules: Any, now: int) -> list[str]:
    row.attempts = [a for a in row.attempts if now - int(a[0]) < HOUR_MS]
    # Busy while one of this projection's automatic jobs is still queued or running (by id: a repair's target
    # names its users, not the projection), or a generation job writes it.
    ours = [int(a[2]) for a in row.attempts if a[2]]
    busy = Job.objects.filter(pk__in=ours, state__in=[Job.State.QUEUED, Job.State.RUNNING]).exists()
    if busy or running_generation_job(row.projection) is not None:
        return []
    last = max((int(a[0]) for a in row.attempts if a[1] == proposal.rule), default=None)
    if last is not None and now - last < rules.cooldown_s * 1000:
        return []
    if len(row.attempts) >= rules.max_attempts_per_hour:
        if not row.escalated:
            row.escalated = (f"Automatic recovery of {row.projection} stopped after {len(row.attempts)} actions in an "
                             f"hour; the last rule to fire was {proposal.rule!r} ({proposal.reason}). An operator must "
                             "look at it; dismiss this alert to let the rules act again.")
            row.escalated_at = datetime.now(timezone.utc)
            perform(Actor(SYSTEM), ESCALATE, row.projection, lambda: None, "", rule=proposal.rule,
                            reason=proposal.reason)
            return [f"{row.projection}: escalated"]
        return []
    if row.escalated:
        return []
    result = _act(row.projection, proposal)
    job = result.job if result.ok else None
    row.attempts = [*row.attempts, [now, proposal.rule, job]]
    return [f"{row.projection}: {proposal.rule} → {result.outcome} ({result.message})"]


def _act(projection: str, proposal: Proposal) -> Result:
    """Queue the proposal's job as the system naming the rule, audited as recovery.act with the reason."""
    actor = Actor(f"{SYSTEM} ({proposal.rule})", automatic=True)
    queued: list[Result] = []

    def call() -> Queued | None:
        if proposal.action == RESYNC:
            queued.append(actions.do_resync_job(actor, projection))
        elif proposal.action == REPAIR:
            queued.append(actions.do_rebuild_users(actor, list(proposal.users)))
        elif proposal.action == REBUILD:
            queued.append(actions.do_rebuild(actor, projection, None))
        if not queued[-1].ok:
            raise RuntimeError(queued[-1].message)
        return queued[-1].value if isinstance(queued[-1].value, Queued) else None

    result = perform(actor, ACT, projection, call, "", rule=proposal.rule, reason=proposal.reason)
    return Result(result.outcome, queued[-1].message if queued else result.message, result.value, result.params)
