"""Job rows, above the audit layer: create (enqueued on the workers after commit, by task name), single-flight,
approve, cancel, the run's fenced row writes, and the change notice the console's pages redraw on.

A job is a database row (:class:`~lucent_admin.operations.models.Job`) and a Celery task, ``lucent.run_job``,
that runs it (:mod:`lucent_admin.operations.jobs`). This module only writes rows and sends tasks by name: it
imports nothing above it.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from lucent_admin.celery import app as celery_app
from lucent_admin.operations.models import Job, JobEvent
from projections.errors import JobLeaseLost, ProjectionError
from projections.projector.notices import group_name

log = logging.getLogger(__name__)

JOBS_GROUP = group_name("jobs")
RUN_JOB = "lucent.run_job"  # the task that runs a job by id (lucent_admin.operations.tasks)
State = Job.State
Kind = Job.Kind


@dataclass(frozen=True)
class KindRule:
    """What the queue knows of a kind of job (what each kind *does* is its engine: ``engines.ENGINES``)."""

    unit: str  # what its progress counts
    guarded: bool  # waits for a second operator's approval when two-person approval is on (unless automatic)
    generations: bool  # writes or flips a projection's generations: one such job at a time per projection


KINDS: dict[str, KindRule] = {  # the one registry of job kinds; every Job.Kind has a rule and an engine (tested)
    Kind.REBUILD_USERS: KindRule("users", guarded=False, generations=False),
    Kind.REBUILD: KindRule("events", guarded=True, generations=True),
    Kind.ROLLBACK: KindRule("events", guarded=True, generations=True),
    Kind.DROP_GENERATION: KindRule("keys", guarded=False, generations=True),
    Kind.CONSISTENCY_CHECK: KindRule("users", guarded=False, generations=False),  # a full check counts events
    Kind.RESYNC: KindRule("steps", guarded=False, generations=False),
    Kind.FOLD: KindRule("events", guarded=False, generations=False),  # queued by a rebuild, never by an operator
}
GENERATION_KINDS = tuple(kind for kind, rule in KINDS.items() if rule.generations)
AWAITING_DECISION = "waiting for an operator"  # how a rebuild's phase starts while it waits for flip anyway / cancel


NOTICE_USERS = 50  # users named in a job's change notice (more: the notice says "truncated")


def notify(job: Job) -> None:
    """Tell the console a job changed (after its row was written), naming the users it rebuilds so
    their pages redraw; never fails the job."""
    layer = get_channel_layer()
    if layer is None:
        return
    users = list(job.params.get("users", ()))
    notice: dict[str, Any] = {"projection": "jobs", "checkpoint": time.time_ns() // 1_000_000, "jobs": [str(job.pk)],
                              "users": users[:NOTICE_USERS]}
    if len(users) > NOTICE_USERS:
        notice["truncated"] = True
    try:
        async_to_sync(layer.group_send)(JOBS_GROUP, {"type": "change.notice", "notice": notice})
    except Exception as exc:  # noqa: BLE001 - a console that misses a notice catches up on the next one
        log.warning("job %s: change notice not sent: %s", job.pk, exc)


def record(job: Job, state: str, message: str, **fields: Any) -> None:
    """Move ``job`` to ``state`` (with ``fields``), add the history line, notify after commit."""
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(state=state, **fields)
        JobEvent.objects.create(job_id=job.pk, state=state, message=message)
    for name, value in {"state": state, **fields}.items():
        setattr(job, name, value)
    transaction.on_commit(lambda: notify(job))


def create(kind: str, target: str, params: dict[str, Any], requested_by: str, total: int | None, unit: str,
           approval: bool = False, note: str = "") -> Job:
    """A new job, enqueued on the workers once the transaction commits — or, with ``approval``, waiting
    for a second operator's (:func:`approve`). ``note`` is added to its first history line."""
    state = State.PENDING_APPROVAL if approval else State.QUEUED
    job = Job.objects.create(kind=kind, target=target[:200], params=params, requested_by=requested_by, total=total,
                             unit=unit, state=state)
    waits = "; it waits for a second operator's approval" if approval else (f" ({note})" if note else "")
    JobEvent.objects.create(job=job, state=state, message=f"requested by {requested_by}{waits}")
    if not approval:
        enqueue(job.pk)
    transaction.on_commit(lambda: notify(job))
    return job


def enqueue(job_id: int) -> None:
    """Send job ``job_id`` to the workers (``lucent.run_job``, routed to the jobs' queue) once the transaction
    commits."""
    transaction.on_commit(lambda: celery_app.send_task(RUN_JOB, args=[job_id]))


def approve(job: Job, by: str) -> str:
    """Let a job waiting for approval start; what happened, in words."""
    record(job, State.QUEUED, f"approved by {by}", approved_by=by)
    enqueue(job.pk)
    return f"job {job.pk} approved; it starts on a worker"


def request_cancel(job: Job, by: str) -> str:
    """Ask ``job`` to stop; one not started yet is cancelled at once. Returns what happened, in words."""
    if job.finished:
        return f"job {job.pk} already {job.state}; nothing to cancel"
    if job.state in (State.QUEUED, State.PENDING_APPROVAL):
        record(job, State.CANCELLED, f"cancelled by {by} before it started", cancel_requested=True,
               finished_at=timezone.now())
        return f"job {job.pk} cancelled before it started"
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    JobEvent.objects.create(job_id=job.pk, state=job.state, message=f"cancel asked by {by}")
    transaction.on_commit(lambda: notify(job))
    return f"job {job.pk} asked to stop; it stops within a second"


def save(job: Job, **fields: Any) -> None:
    """Write ``fields`` to the row of ``job``, claimed by this run: only while the row still names this run's
    attempt; if another run claimed it since, nothing is written and JobLeaseLost is raised."""
    if not Job.objects.filter(pk=job.pk, attempts=job.attempts).update(**fields):
        raise JobLeaseLost(f"job {job.pk}: attempt {job.attempts} lost its lease; another run claimed the job")


def single_job(kind: str, target: str, params: dict[str, Any], actor: str, total: int | None, unit: str | None = None,
               whole: str | None = None) -> tuple[Any, bool]:
    """The job of ``kind`` on the same whole target queued or running already (True), else a new one (False).

    ``target`` is what the job list shows (cut to 200 characters); ``whole`` (default: ``target``) is the whole
    target — a long user list — compared through its SHA-256 digest, kept in the job's params as ``identity``;
    ``unit`` (default: the kind's) is what its progress counts.
    """
    identity = hashlib.sha256(f"{kind}\n{target if whole is None else whole}".encode()).hexdigest()
    running = Job.objects.filter(kind=kind, target=target[:200], params__identity=identity,
                                 state__in=[Job.State.QUEUED, Job.State.RUNNING]).first()
    if running is not None:
        return running, True
    return create(kind, target, {**params, "identity": identity}, actor, total, unit or KINDS[kind].unit), False


def running_generation_job(projection: str) -> Job | None:
    """The job that writes or flips ``projection``'s generations now (queued, running or waiting for approval)."""
    return Job.objects.filter(kind__in=GENERATION_KINDS, target=projection,
                              state__in=[Job.State.QUEUED, Job.State.RUNNING, Job.State.PENDING_APPROVAL]).first()


class Busy(ProjectionError):
    """Another job already writes this projection's generations."""
