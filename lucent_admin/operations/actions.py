"""The one path for operator actions: permission check, audit entry, one call into ``projections``.

Every action is a ``do_*`` function that views, management commands and Celery
tasks all call; they differ only in how they parse input and report the
:class:`Result`. Nothing else writes an audit entry for an action. Each attempt
is audited with its target — allowed, denied (a missing permission or a
non-staff account) and failed (bad input, a refusal such as "not parked", or
any error on the way: the event store, Redis) — and none raises: a failure is a
Result whose message names the thing and the fix.

The command line acts as ``cli:<os user>``: whoever can run ``manage.py`` on the
machine holds its settings and secrets, so no permission is checked there.
"""
from __future__ import annotations

import getpass
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import redis
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from lucent_admin import bootstrap
from lucent_admin.operations.models import AuditEntry
from projections import actions
from projections.errors import ProjectionError
from projections.events import is_identifier
from projections.maintenance.plan import second_generation
from projections.readmodels import PROJECTIONS

log = logging.getLogger(__name__)
Outcome = AuditEntry.Outcome


@dataclass(frozen=True)
class Actor:
    """Who acts: a signed-in account, or the command line (``user`` None)."""

    name: str
    user: AbstractBaseUser | AnonymousUser | None = None
    automatic: bool = False  # the system acting on a rule (recovery): exempt from two-person approval

    @classmethod
    def of(cls, user: AbstractBaseUser | AnonymousUser) -> Actor:
        return cls(user.get_username() if user.is_authenticated else "anonymous", user)

    @classmethod
    def cli(cls) -> Actor:
        return cls(f"cli:{getpass.getuser()}")

    @classmethod
    def cli_as(cls, username: str) -> Actor:
        """The command line acting with the permissions of account ``username`` (``--as``)."""
        from django.contrib.auth import get_user_model

        account = get_user_model().objects.filter(username=username).first()
        if account is None:
            raise LookupError(f"--as: there is no account {username!r}; create it (manage.py ensure_operator) or "
                              "name another with --as")
        if not account.is_active:
            raise LookupError(f"--as: the account {username!r} is inactive; name an active account with --as")
        return cls(f"cli:{getpass.getuser()} as {username}", account)

    @property
    def account(self) -> str:
        """The account acting ('' for the bare command line): what two-person approval compares."""
        return self.user.get_username() if self.user is not None and self.user.is_authenticated else ""

    def refusal(self, permission: str) -> str:
        """Why this actor may not act with ``permission``; empty if it may."""
        user = self.user
        if user is None:
            return ""
        if not user.is_authenticated:
            return "you are not signed in"
        if not user.has_perm(permission):
            return f"you need the permission {permission!r} (a role that has it: Operators{_risk_team(permission)})"
        return ""


def _risk_team(permission: str) -> str:
    return " or Risk team" if permission == "operations.acknowledge_alert" else ""


@dataclass(frozen=True)
class Action:
    """An operator action: its audit name and the permission it needs."""

    name: str
    permission: str


ACKNOWLEDGE_ALERT = Action("risk.acknowledge", "operations.acknowledge_alert")
RETRY_PARKED = Action("parked.retry", "operations.retry_parked_event")
PARK_BAD_EVENT = Action("parked.decide", "operations.park_bad_event")
RESYNC = Action("projection.resync", "operations.resync_projection")
REBUILD_USERS = Action("rebuild.users", "operations.run_rebuild")
REBUILD = Action("rebuild.projection", "operations.run_rebuild")
ROLLBACK = Action("rebuild.rollback", "operations.run_rebuild")
DROP_GENERATION = Action("rebuild.drop", "operations.run_rebuild")
CANCEL_JOB = Action("job.cancel", "operations.run_rebuild")
APPROVE_JOB = Action("job.approve", "operations.approve_job")
CHECK_CONSISTENCY = Action("consistency.check", "operations.run_consistency_check")
REPAIR = Action("consistency.repair", "operations.run_rebuild")
SIGN_IN = Action("auth.login", "")
LOCKOUT = Action("auth.lockout", "")
SIGN_OUT = Action("auth.logout", "")


@dataclass(frozen=True)
class Result:
    """What became of an attempt: its outcome, a message for the operator and the call's value."""

    outcome: str
    message: str
    value: Any = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == Outcome.OK

    @property
    def denied(self) -> bool:
        return self.outcome == Outcome.DENIED


def _audit(actor: Actor, action: Action, target: str, outcome: str, detail: str, params: dict[str, Any]) -> None:
    user = actor.user if actor.user is not None and actor.user.is_authenticated else None
    AuditEntry.objects.create(actor=user, actor_name=actor.name, action=action.name, target=target[:200],
                              params=params, outcome=outcome, detail=detail)


def perform(
    actor: Actor, action: Action, target: str, call: Callable[[], Any], done: str,
    invalid: str = "", **params: Any,
) -> Result:
    """Check ``actor`` may do ``action``, refuse ``invalid`` input, run ``call``; audit the outcome.

    ``done`` is the message on success; ``invalid`` (the input's errors, naming the fields) makes
    the attempt fail before ``call`` runs.
    """
    refusal = actor.refusal(action.permission)
    if refusal:
        _audit(actor, action, target, Outcome.DENIED, refusal, params)
        return Result(Outcome.DENIED, f"Not allowed: {refusal}.")
    if invalid:
        _audit(actor, action, target, Outcome.FAILED, invalid, params)
        return Result(Outcome.FAILED, invalid)
    try:
        value = call()
    except ProjectionError as exc:  # a refusal that names its reason
        _audit(actor, action, target, Outcome.FAILED, str(exc), params)
        return Result(Outcome.FAILED, str(exc))
    except Exception as exc:  # noqa: BLE001 - an outage on the way is audited and reported, not a 500
        log.exception("%s on %s by %s failed", action.name, target, actor.name)
        detail = f"{type(exc).__name__}: {exc}"
        _audit(actor, action, target, Outcome.FAILED, detail, params)
        return Result(Outcome.FAILED, f"{detail} (nothing was changed; try again once the service is back)")
    if isinstance(value, dict):
        params = {**params, **value}
    _audit(actor, action, target, Outcome.OK, "", params)
    return Result(Outcome.OK, done, value, params)


def do_acknowledge_alert(actor: Actor, user_id: str, alert_id: str, note: str = "", invalid: str = "") -> Result:
    """Append RiskAlertAcknowledged for the alert (idempotent: its event id derives from the alert)."""

    def call() -> dict[str, Any]:
        return {"position": actions.acknowledge_alert(bootstrap.event_store(), user_id, alert_id, actor.name, note)}

    return perform(actor, ACKNOWLEDGE_ALERT, f"{user_id}/{alert_id}" if user_id or alert_id else "", call,
                   f"Alert {alert_id} of {user_id} acknowledged.", invalid, note=note)


def do_retry_parked(actor: Actor, projection: str, event_id: str, invalid: str = "") -> Result:
    """Ask the running projector to re-read, re-decode and fold a parked event."""
    return perform(actor, RETRY_PARKED, f"{projection}/{event_id}",
                   lambda: actions.retry_parked(bootstrap.redis_client(), projection, event_id),
                   f"Retry of parked event {event_id} requested; the {projection} projector applies it next.", invalid)


def do_park_bad_event(actor: Actor, projection: str, event_id: str, invalid: str = "") -> Result:
    """Park the bad event a ``stop``-policy projection stopped on, so it resumes past it."""
    return perform(actor, PARK_BAD_EVENT, f"{projection}/{event_id}",
                   lambda: actions.park_bad_event(bootstrap.redis_client(), projection, event_id),
                   f"Event {event_id} will be parked; the {projection} projector resumes past it.", invalid)


def do_resync(actor: Actor, projection: str, invalid: str = "") -> Result:
    """Make the running projector of ``projection`` drop its in-memory state and resubscribe."""
    return perform(actor, RESYNC, projection, lambda: actions.request_resync(bootstrap.redis_client(), projection),
                   f"Resync of {projection} requested; its projector resubscribes from its checkpoint within a second.",
                   invalid)


MAX_USERS_PER_JOB = 10_000


def do_rebuild_users(actor: Actor, users: list[str], invalid: str = "") -> Result:
    """Queue a per-user rebuild of ``users`` (a job). Asking again while the same one is queued or
    running answers with that job instead of a second one."""
    from lucent_admin.operations.models import Job

    wanted = list(dict.fromkeys(users))  # keep the order, drop repeats
    invalid = invalid or users_invalid(wanted)
    target = ",".join(wanted)[:200]

    def call() -> dict[str, Any]:
        job, again = single_job(Job.Kind.REBUILD_USERS, target, {"users": wanted}, actor, len(wanted),
                                whole=",".join(wanted))
        return {"job": job.pk, "again": again}

    result = perform(actor, REBUILD_USERS, target, call, "", invalid, users=len(wanted))
    if result.ok:
        job_id, again = result.value["job"], result.value["again"]
        names = wanted[0] if len(wanted) == 1 else f"{len(wanted):,} users"
        message = (f"The rebuild of {names} is already job {job_id}." if again
                   else f"Rebuild of {names} queued as job {job_id}.")
        return Result(result.outcome, message, result.value, result.params)
    return result


def users_invalid(users: list[str]) -> str:
    """What is wrong with a list of user ids, naming the field; empty when nothing is."""
    if not users:
        return "users: give at least one user id"
    if len(users) > MAX_USERS_PER_JOB:
        return f"users: at most {MAX_USERS_PER_JOB:,} users per job, got {len(users):,}; split the list"
    bad = [u for u in users if not is_identifier(u)]
    if bad:
        return f"users: {bad[0]!r} is not a user id (1-64 characters of letters, digits, '_', '.', '-')"
    return ""


def single_job(kind: str, target: str, params: dict[str, Any], actor: Actor, total: int | None, unit: str = "users",
               whole: str | None = None) -> tuple[Any, bool]:
    """The job of ``kind`` on the same whole target queued or running already (True), else a new one (False).

    ``target`` is what the job list shows (cut to 200 characters); ``whole`` (default: ``target``) is the whole
    target — a long user list — compared through its SHA-256 digest, kept in the job's params as ``identity``.
    """
    from lucent_admin.operations import jobs
    from lucent_admin.operations.models import Job

    identity = hashlib.sha256(f"{kind}\n{target if whole is None else whole}".encode()).hexdigest()
    running = Job.objects.filter(kind=kind, target=target[:200], params__identity=identity,
                                 state__in=[Job.State.QUEUED, Job.State.RUNNING]).first()
    if running is not None:
        return running, True
    return jobs.create(kind, target, {**params, "identity": identity}, actor.name, total, unit), False


GENERATION_KINDS = ("rebuild", "rollback", "drop-generation")


def running_generation_job(projection: str) -> Any:
    from lucent_admin.operations.models import Job

    return Job.objects.filter(kind__in=GENERATION_KINDS, target=projection,
                              state__in=[Job.State.QUEUED, Job.State.RUNNING, Job.State.PENDING_APPROVAL]).first()


def _generation_job(actor: Actor, action: Action, kind: str, projection: str, confirm: str | None, params: dict[str, Any],
                    done: str, invalid: str = "") -> Result:
    """Queue a job that writes or flips a projection's generations: one at a time per projection. With two-person
    approval on, a rebuild or rollback waits for a second operator's approval unless the system asks (automatic)."""
    from django.conf import settings

    from lucent_admin.operations import jobs
    from projections.readmodels import PROJECTIONS

    if not invalid and projection not in PROJECTIONS:
        invalid = f"projection: must be one of {', '.join(PROJECTIONS)}"
    if not invalid and confirm is not None and confirm != projection:
        invalid = f"confirm: type the projection's name ({projection!r}) to confirm"
    guarded = bool(settings.LUCENT_REBUILD_APPROVAL) and kind in ("rebuild", "rollback")
    approval = guarded and not actor.automatic
    if guarded and actor.automatic:
        params = {**params, "approval": "exempt (automatic)"}

    def call() -> dict[str, Any]:
        running = running_generation_job(projection)
        if running is not None:
            raise Busy(f"{projection} already has {running.get_kind_display().lower()} job {running.pk} ({running.state}); "
                       "wait for it or cancel it")
        job = jobs.create(kind, projection, {"projection": projection, **params, "account": actor.account}, actor.name,
                          None, "keys" if kind == "drop-generation" else "events", approval=approval,
                          note="automatic, exempt from two-person approval" if guarded and actor.automatic else "")
        return {"job": job.pk, "pending": approval}

    result = perform(actor, action, projection, call, "", invalid, **params)
    if result.ok:
        message = done.format(job=result.value["job"])
        if result.value["pending"]:
            message += " It starts once a second operator approves it."
        return Result(result.outcome, message, result.value, result.params)
    return result


class Busy(ProjectionError):
    """Another job already writes this projection's generations."""


def do_rebuild(actor: Actor, projection: str, confirm: str | None, flip_anyway: bool = False) -> Result:
    """Queue a full rebuild of ``projection`` (``confirm``: its name typed; None from the CLI's --yes). Refused,
    for every caller (the console, a direct POST, the command line, automatic recovery), when the dry run says a
    second generation would not fit in Redis's memory."""
    return _generation_job(actor, REBUILD, "rebuild", projection, confirm, {"flip_anyway": flip_anyway},
                           f"Full rebuild of {projection} queued as job {{job}}; the live read models stay in use until "
                           "the flip.", _memory_refusal(projection))


def _memory_refusal(projection: str) -> str:
    """Why a rebuild of ``projection`` would not fit in Redis ('' if it fits, or the projection is unknown)."""
    if projection not in PROJECTIONS:
        return ""
    try:
        refusal = second_generation(bootstrap.redis_client(), projection).refusal
    except redis.RedisError:
        return ""  # Redis away: the action fails on its own, with that message
    return f"memory: {refusal}" if refusal else ""


def do_rollback(actor: Actor, projection: str, confirm: str | None) -> Result:
    """Queue a rollback of ``projection`` to the generation its last flip left behind."""
    from lucent_admin import bootstrap
    from projections.maintenance.generations import kept_generation

    kept = kept_generation(bootstrap.redis_client(), projection) if projection else None
    invalid = "" if kept is not None else f"projection: {projection} has no kept generation to roll back to"
    return _generation_job(actor, ROLLBACK, "rollback", projection, confirm,
                           {"generation": kept.generation if kept else 0},
                           f"Rollback of {projection} queued as job {{job}}.", invalid)


def do_drop_generation(actor: Actor, projection: str, generation: int) -> Result:
    """Queue the drop of a generation that is neither live nor being written (a job: UNLINK in chunks); a rollback
    to it is then impossible. Asking again while that drop is queued or running answers with its job; a generation
    no longer there answers so, with no job."""
    from lucent_admin.operations import jobs
    from lucent_admin.operations.models import Job
    from projections import inventory
    from projections.maintenance.generations import drop_refusal
    from projections.readmodels import PROJECTIONS

    invalid = (f"projection: must be one of {', '.join(PROJECTIONS)}" if projection not in PROJECTIONS else
               f"generation: a generation number (1 or more), got {generation}" if generation < 1 else "")

    def call() -> dict[str, Any]:
        running = running_generation_job(projection)
        if running is not None and int(running.params.get("generation") or 0) == generation:
            if running.kind == Job.Kind.DROP_GENERATION:
                return {"job": running.pk, "again": True}
            raise Busy(f"generation {generation} of {projection} is being written by job {running.pk} "
                       f"({running.get_kind_display().lower()}, {running.state}); cancel it first")
        client = bootstrap.redis_client()
        refusal = drop_refusal(client, projection, generation)
        if refusal:
            raise ProjectionError(refusal)
        if running is not None:
            raise Busy(f"{projection} already has {running.get_kind_display().lower()} job {running.pk} ({running.state}); "
                       "wait for it or cancel it")
        if generation not in {g.generation for g in inventory.generations(client, projection, sample=0)}:
            return {"job": None, "again": False}
        job = jobs.create(Job.Kind.DROP_GENERATION, projection, {"projection": projection, "generation": generation,
                                                                 "account": actor.account}, actor.name, None, "keys")
        return {"job": job.pk, "again": False}

    result = perform(actor, DROP_GENERATION, f"{projection}/g{generation}", call, "", invalid, generation=generation)
    if not result.ok:
        return result
    job_id = result.value["job"]
    message = (f"Generation {generation} of {projection} is not there (already dropped); nothing to drop." if job_id is None
               else f"The drop of generation {generation} of {projection} is already job {job_id}." if result.value["again"]
               else f"Drop of generation {generation} of {projection} queued as job {job_id}.")
    return Result(result.outcome, message, result.value, result.params)


FLIP_ANYWAY = Action("rebuild.flip_anyway", "operations.run_rebuild")


def _on_job(actor: Actor, action: Action, job_id: int, refuse: Callable[[Any], str], do: Callable[[Any], str]) -> Result:
    """An action on job ``job_id``: ``refuse(job)`` says why not (the input's error) or "", ``do(job)`` acts
    and says what happened."""
    from lucent_admin.operations.models import Job

    job = Job.objects.filter(pk=job_id).first()
    invalid = f"job: there is no job {job_id}" if job is None else refuse(job)
    said: list[str] = []
    result = perform(actor, action, f"job {job_id}", lambda: said.append(do(job)), "", invalid)
    return Result(result.outcome, said[0], result.value, result.params) if result.ok else result


def do_cancel_job(actor: Actor, job_id: int) -> Result:
    """Ask job ``job_id`` to stop (within a second); one not started yet is cancelled at once."""
    from lucent_admin.operations import jobs

    return _on_job(actor, CANCEL_JOB, job_id, lambda _: "", lambda job: jobs.request_cancel(job, actor.name))


def do_flip_anyway(actor: Actor, job_id: int) -> Result:
    """Decide that a rebuild waiting on differences above the budget flips anyway."""
    from lucent_admin.operations.engines import AWAITING_DECISION
    from lucent_admin.operations.models import Job

    def refuse(job: Any) -> str:
        waiting = job.state == Job.State.RUNNING and job.phase.startswith(AWAITING_DECISION)
        return "" if waiting else f"job: job {job_id} is not a rebuild waiting for a decision"

    def flip(job: Any) -> str:
        Job.objects.filter(pk=job_id).update(params={**job.params, "decision": "flip"})
        return f"Job {job_id} flips anyway; it goes on within a second."

    return _on_job(actor, FLIP_ANYWAY, job_id, refuse, flip)


def do_approve_job(actor: Actor, job_id: int) -> Result:
    """Approve a job another operator asked for (two-person approval); it then starts."""
    from lucent_admin.operations import jobs
    from lucent_admin.operations.models import Job

    def refuse(job: Any) -> str:
        if job.state != Job.State.PENDING_APPROVAL:
            return f"job: job {job_id} is {job.state}, not waiting for an approval"
        if job.params.get("account", "") in ("", actor.account) or _same_cli_user(job.requested_by, actor.name):
            return f"job: job {job_id} was asked for by {job.requested_by}; a second operator must approve it"
        return ""

    return _on_job(actor, APPROVE_JOB, job_id, refuse, lambda job: jobs.approve(job, actor.name))


def _same_cli_user(requested_by: str, approver: str) -> bool:
    """Whether both names are the command line's (``cli:OS-USER [as ACCOUNT]``) with the same OS user: one person
    naming two accounts with --as is not two people (the command line cannot check a password)."""
    def os_user(name: str) -> str:
        return name.split(" ", 1)[0] if name.startswith("cli:") else ""

    return bool(os_user(approver)) and os_user(approver) == os_user(requested_by)


def audit_sign_in(name: str, user: AbstractBaseUser | None, outcome: str = Outcome.OK, detail: str = "",
                  address: str = "", once_per: timedelta | None = None) -> bool:
    """A sign-in (or a refused one: ``outcome`` denied) is in the audit log too, with the client's ``address``.

    With ``once_per``, the entry is written only if ``address`` has no entry of the same outcome and
    detail within that window (refusals of unknown accounts: one entry per address per lockout window,
    however many names it tries). Returns whether an entry was written.
    """
    params = {"address": address}
    if once_per is not None and AuditEntry.objects.filter(
        action=SIGN_IN.name, outcome=outcome, detail=detail, params__address=address, at__gte=timezone.now() - once_per,
    ).exists():
        return False
    _audit(Actor(name or "anonymous", user), SIGN_IN, name, outcome, detail, params)
    return True


def audit_lockout(name: str, address: str, failures: int, cool_off: timedelta) -> None:
    """The failure that locked ``name`` or ``address`` out (axes' limit reached): one entry per lockout."""
    detail = (f"{failures} failed sign-ins (account {name!r}, address {address}): sign-ins refused for "
              f"{int(cool_off.total_seconds())} s after the last failure")
    _audit(Actor(name or "anonymous"), LOCKOUT, name, Outcome.DENIED, detail, {"address": address, "failures": failures})


def audit_sign_out(user: AbstractBaseUser, address: str = "") -> None:
    _audit(Actor.of(user), SIGN_OUT, user.get_username(), Outcome.OK, "", {"address": address})
