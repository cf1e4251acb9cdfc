"""Running jobs: claim, progress, cancel and outcome (DESIGN invariant 10).

A job is a database row (:class:`~lucent_admin.operations.models.Job`) and a Celery task
that calls :func:`run` with its id; the work itself, an engine per kind of job
(:mod:`lucent_admin.operations.engines`), is one function of ``projections/`` given a
:class:`JobControl`.

* **Claim.** A Redis lease per job (``keys.job_lease``), renewed by a thread while the
  engine runs. A task delivered again while the job runs elsewhere finds the lease taken
  and returns; one delivered again after its worker died takes the lease once it expired
  and resumes from the job's own progress (``done``): the same job never has two writers.
* **Progress.** The engine's reports go to the row at most every ``REPORT_EVERY`` seconds,
  with the rate over the last ``RATE_WINDOW`` seconds and the ETA, and each write sends a
  change notice to the console's ``jobs`` group, so its pages redraw the progress bar.
* **Cancel.** Asking sets ``cancel_requested`` (a job not started yet is cancelled at
  once); the engine reads it at its safe points, at most every ``CANCEL_POLL`` seconds, so a
  cancel is honoured within a second, and raises ``JobCancelled``.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from lucent_admin import bootstrap
from lucent_admin.operations.models import Job, JobEvent
from projections import keys
from projections.errors import Fenced, JobCancelled, ProjectionError
from projections.maintenance.control import Control
from projections.maintenance.generations import (
    kept_generation,
)
from projections.projector.lease import Lease
from projections.projector.notices import group_name

log = logging.getLogger(__name__)

REPORT_EVERY = 0.5
CANCEL_POLL = 0.3
RATE_WINDOW = 10.0
LEASE_MS = 15_000
JOBS_GROUP = group_name("jobs")
State = Job.State


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
           approval: bool = False) -> Job:
    """A new job, enqueued on the workers once the transaction commits — or, with ``approval``, waiting
    for a second operator's (:func:`approve`)."""
    state = State.PENDING_APPROVAL if approval else State.QUEUED
    job = Job.objects.create(kind=kind, target=target[:200], params=params, requested_by=requested_by, total=total,
                             unit=unit, state=state)
    waits = "; it waits for a second operator's approval" if approval else ""
    JobEvent.objects.create(job=job, state=state, message=f"requested by {requested_by}{waits}")
    if not approval:
        _enqueue(job)
    transaction.on_commit(lambda: notify(job))
    return job


def _enqueue(job: Job) -> None:
    from lucent_admin.operations.tasks import run_job

    transaction.on_commit(lambda: run_job.delay(job.pk))


def approve(job: Job, by: str) -> str:
    """Let a job waiting for approval start; what happened, in words."""
    record(job, State.QUEUED, f"approved by {by}", approved_by=by)
    _enqueue(job)
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


class JobControl(Control):
    """The engine's handle on its job row: throttled progress writes and cancel checks."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._written = 0.0
        self._polled = 0.0
        self._cancel = job.cancel_requested
        self._samples: deque[tuple[float, int]] = deque()

    def report(self, done: int, total: int | None, phase: str = "") -> None:
        now = time.monotonic()
        self._samples.append((now, done))
        while self._samples and now - self._samples[0][0] > RATE_WINDOW:
            self._samples.popleft()
        if now - self._written < REPORT_EVERY and done != total:
            return
        self._written = now
        then, done_then = self._samples[0]
        rate = (done - done_then) / (now - then) if now > then else self.job.rate
        eta = (total - done) / rate if total is not None and rate > 0 else None
        Job.objects.filter(pk=self.job.pk).update(done=done, total=total, rate=rate, eta_seconds=eta,
                                                  phase=phase[:200], updated_at=timezone.now())
        self.job.done, self.job.total, self.job.rate, self.job.eta_seconds, self.job.phase = done, total, rate, eta, phase
        notify(self.job)

    def cancelled(self) -> bool:
        now = time.monotonic()
        if not self._cancel and now - self._polled >= CANCEL_POLL:
            self._polled = now
            self._cancel = Job.objects.filter(pk=self.job.pk, cancel_requested=True).exists()
        return self._cancel


class _Renewer(threading.Thread):
    """Keeps the job's lease while the engine runs; stops renewing if the lease was lost."""

    def __init__(self, lease: Lease) -> None:
        super().__init__(daemon=True, name=f"lease-{lease.key}")
        self.lease = lease
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(LEASE_MS / 3000):
            try:
                if not self.lease.renew():
                    log.error("job lease %s lost; the job's writes stay fenced per entity", self.lease.key)
                    return
            except Exception as exc:  # noqa: BLE001 - Redis away for a moment: try again next tick
                log.warning("job lease %s not renewed: %s", self.lease.key, exc)


def run(job_id: int) -> str:
    """Run job ``job_id`` unless it runs elsewhere or is finished; what happened, in words."""
    token = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    lease = Lease(bootstrap.redis_client(), f"job {job_id}", token, LEASE_MS, key=keys.job_lease(job_id))
    try:
        lease.acquire(0, threading.Event())
    except Fenced:
        return f"job {job_id} is running on {lease.holder()}; not started twice"
    renewer = _Renewer(lease)
    renewer.start()
    try:
        return _run_claimed(job_id, token)
    finally:
        renewer.halt.set()
        lease.release()


def _run_claimed(job_id: int, worker: str) -> str:
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        return f"job {job_id} does not exist"
    if job.finished or job.state == State.PENDING_APPROVAL:
        return f"job {job_id} is {job.state}; nothing to run"
    resumed = f", resuming at {job.done:,} {job.unit}" if job.done else ""
    record(job, State.RUNNING, f"started on {worker} (attempt {job.attempts + 1}){resumed}", worker=worker,
           attempts=job.attempts + 1, started_at=job.started_at or timezone.now())
    control = JobControl(job)
    try:
        if control.cancelled():
            raise JobCancelled("cancelled before it started")
        from lucent_admin.operations.engines import ENGINES

        result = ENGINES[job.kind](job, control)
    except JobCancelled as exc:
        record(job, State.CANCELLED, str(exc), finished_at=timezone.now())
    except ProjectionError as exc:
        record(job, State.FAILED, str(exc), error=str(exc), finished_at=timezone.now())
    except Exception as exc:  # noqa: BLE001 - a job fails with its reason, the worker goes on
        log.exception("job %s failed", job_id)
        record(job, State.FAILED, f"{type(exc).__name__}: {exc}", error=f"{type(exc).__name__}: {exc}",
               finished_at=timezone.now())
    else:
        record(job, State.SUCCEEDED, result.pop("summary", "done"), result=result, finished_at=timezone.now())
    return f"job {job_id} {job.state}"


def requeue_orphans() -> list[int]:
    """Queue again every job the database says is running but no worker holds (its worker died, e.g. killed
    with -9): the task resumes it from its own progress. The broker would redeliver it too, but only after
    its visibility timeout (hours, for long rebuilds); a job queued twice still runs once at a time."""
    from lucent_admin.operations.tasks import run_job

    client = bootstrap.redis_client()
    requeued = []
    for job in Job.objects.filter(state=State.RUNNING):
        if client.exists(keys.job_lease(job.pk)):
            continue
        JobEvent.objects.create(job_id=job.pk, state=job.state, message=f"its worker {job.worker} is gone; queued again")
        run_job.delay(job.pk)
        requeued.append(job.pk)
    return requeued


def drop_expired_generations(now_ms: int | None = None) -> list[int]:
    """Drop jobs for the generations kept longer than LUCENT_GENERATION_RETENTION_HOURS (as the system)."""
    from lucent_admin.operations.actions import Actor, do_drop_generation
    from projections.readmodels import PROJECTIONS

    now = int(time.time() * 1000) if now_ms is None else now_ms
    retention_ms = int(settings.LUCENT_GENERATION_RETENTION_HOURS) * 3_600_000
    queued = []
    for projection in PROJECTIONS:
        kept = kept_generation(bootstrap.redis_client(), projection)
        if kept is not None and kept.flipped_at_ms + retention_ms <= now:
            result = do_drop_generation(Actor("system: retention"), projection, kept.generation)
            if result.ok:
                queued.append(result.value["job"])
    return queued


def schedule_consistency_check() -> int | None:
    """Queue the scheduled check of the next rolling sample (as the system); its job id."""
    from lucent_admin.operations.actions import Actor
    from lucent_admin.operations.consistency_actions import do_check_consistency

    if not settings.LUCENT_CONSISTENCY_SAMPLE:
        return None
    queued = do_check_consistency(Actor("system: schedule"), sample=int(settings.LUCENT_CONSISTENCY_SAMPLE), scheduled=True)
    return int(queued.value["job"]) if queued.ok else None
