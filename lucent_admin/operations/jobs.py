"""Running jobs: claim, progress, cancel and outcome (DESIGN invariant 10).

A job is a database row (:class:`~lucent_admin.operations.models.Job`) and a Celery task
that calls :func:`run` with its id; the work itself is one function of ``projections/``
given a :class:`JobControl`.

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
from collections.abc import Callable
from dataclasses import asdict
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
from projections.maintenance.consistency import check_sample, check_users
from projections.maintenance.control import Control
from projections.maintenance.full_check import check_everything
from projections.maintenance.generations import (
    Sample,
    drop_generation,
    kept_generation,
    live_generation,
    next_generation,
    switch_to,
)
from projections.maintenance.report import Report
from projections.maintenance.user_rebuild import rebuild_user
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


def _rebuild_users(job: Job, control: JobControl) -> dict[str, Any]:
    """Per-user rebuild of ``params["users"]``, one after the other, resuming after ``done``."""
    users: list[str] = list(job.params["users"])
    results: dict[str, Any] = dict(job.result.get("users", {}))
    for i in range(job.done, len(users)):
        control.report(i, len(users), f"rebuilding {users[i]}")
        rebuilt = rebuild_user(bootstrap.redis_client(), bootstrap.event_store(), users[i], control=_CancelOnly(control))
        results[users[i]] = {p.projection: {"events": p.events, "writes": p.writes, "checkpoint": p.checkpoint}
                             for p in rebuilt.projections}
        Job.objects.filter(pk=job.pk).update(result={"users": results})  # what is done survives a redelivery
        control.report(i + 1, len(users), f"rebuilt {users[i]}")
    writes = sum(w["writes"] for r in results.values() for w in r.values())
    repaired = sum(1 for r in results.values() if any(w["writes"] for w in r.values()))
    return {"users": results, "summary": f"rebuilt {len(users):,} users: {repaired:,} needed {writes:,} writes, "
                                         f"{len(users) - repaired:,} already equal to a full replay"}


def _rebuild(job: Job, control: JobControl) -> dict[str, Any]:
    """Full rebuild into a new generation, verified and flipped; a cancel or a failure drops it."""
    projection = job.params["projection"]
    client = bootstrap.redis_client()
    generation = job.params.get("generation")
    if generation is None:  # the first delivery picks it; a redelivery resumes filling the same one
        generation = next_generation(client, projection)
        job.params = {**job.params, "generation": generation}
        Job.objects.filter(pk=job.pk).update(params=job.params)
        JobEvent.objects.create(job_id=job.pk, state=job.state, message=f"folding the history into generation {generation}")
    try:
        done = switch_to(client, bootstrap.runner_config(projection), generation, control,
                         budget=int(settings.LUCENT_REBUILD_DIFF_BUDGET), flip_anyway=bool(job.params.get("flip_anyway")),
                         max_lag_s=float(settings.LUCENT_REBUILD_MAX_LAG_S),
                         decide=lambda sample: _await_decision(job, control, sample), resumed=job.done)
    except BaseException:
        if live_generation(client, projection) != generation:  # never live: drop what the job wrote
            drop_generation(client, projection, generation, _Unstoppable())
        raise
    return {**asdict(done), "summary": f"generation {generation} is live (was {done.from_generation}) after "
                                       f"{done.applied:,} events in {done.seconds:,.1f} s; {done.difference_count} "
                                       f"differences on {done.compared} entities compared; the live projector paused "
                                       f"{done.pause_ms:,.1f} ms for the flip; generation {done.from_generation} is kept "
                                       "for a rollback"}


DECISION_POLL_S = 0.3
AWAITING_DECISION = "waiting for an operator"  # how a rebuild's phase starts while it waits for flip anyway / cancel


def _await_decision(job: Job, control: JobControl, sample: Sample) -> bool:
    """Above the budget: show the differences and wait for an operator's "flip anyway" (True) or a
    cancel (JobCancelled); the new generation keeps following the head meanwhile."""
    found = {"differences": sample.kept, "difference_count": sample.count, "compared": sample.compared}
    Job.objects.filter(pk=job.pk).update(result=found, phase=f"{AWAITING_DECISION}: {sample.count} differences "
                                                            f"on {sample.compared} entities (flip anyway, or cancel)")
    JobEvent.objects.create(job_id=job.pk, state=job.state, message=f"{sample.count} differences on a sample of "
                            f"{sample.compared} entities, above the budget: waiting for an operator to flip anyway or cancel")
    notify(job)
    while True:
        if control.cancelled():
            raise JobCancelled("cancelled by an operator after the verification; nothing was flipped")
        if Job.objects.filter(pk=job.pk).values_list("params", flat=True).first().get("decision") == "flip":
            JobEvent.objects.create(job_id=job.pk, state=job.state, message="an operator decided to flip anyway")
            return True
        time.sleep(DECISION_POLL_S)


def _rollback(job: Job, control: JobControl) -> dict[str, Any]:
    """Back to the kept generation, caught up from its own checkpoint, then flipped."""
    projection, generation = job.params["projection"], int(job.params["generation"])
    done = switch_to(bootstrap.redis_client(), bootstrap.runner_config(projection), generation, control, verify=False,
                     max_lag_s=float(settings.LUCENT_REBUILD_MAX_LAG_S), resumed=job.done)
    return {**asdict(done), "summary": f"generation {generation} is live again (was {done.from_generation}), caught up "
                                       f"by {done.applied:,} events"}


def _drop(job: Job, control: JobControl) -> dict[str, Any]:
    projection, generation = job.params["projection"], int(job.params["generation"])
    dropped = drop_generation(bootstrap.redis_client(), projection, generation, control)
    return {"dropped": dropped, "summary": f"dropped generation {generation} of {projection}: {dropped:,} keys"}


def _check(job: Job, control: JobControl) -> dict[str, Any]:
    """A consistency check (read only: a redelivered one starts again); a repair job after it if asked."""
    from lucent_admin.operations.actions import Actor, do_rebuild_users

    params, client, store = job.params, bootstrap.redis_client(), bootstrap.event_store()
    names = [params["projection"]] if params.get("projection") else None
    report: Report
    urls = (settings.REDIS_URL, settings.EVENTSTORE_URI)  # the users are read ahead by a child process
    if params.get("users"):
        report = check_users(client, store, params["users"], names, control, urls=urls)
    elif params.get("sample"):
        report = check_sample(client, store, int(params["sample"]), names, control, urls=urls)
    else:
        report = check_everything(client, store, names, control)
    result = report.as_dict()
    repair = bool(params.get("repair")) or (bool(params.get("scheduled")) and bool(settings.LUCENT_CONSISTENCY_AUTO_REPAIR))
    repaired = ""
    if report.users_to_repair and repair:
        queued = do_rebuild_users(Actor(f"system: consistency check {job.pk}"), report.users_to_repair)
        result["repair_job"] = queued.value["job"] if queued.ok else None
        repaired = f"; repair: {queued.message}"
    score = "no entity to check" if report.score is None else f"{report.consistent:,} of {report.checked:,} consistent"
    result["summary"] = (f"{score}, {report.difference_count:,} differences; {len(report.users_to_repair):,} users to "
                         f"repair{repaired}")
    return result


def schedule_consistency_check() -> int | None:
    """Queue the scheduled check of the next rolling sample (as the system); its job id."""
    from lucent_admin.operations.actions import Actor, do_check_consistency

    if not settings.LUCENT_CONSISTENCY_SAMPLE:
        return None
    queued = do_check_consistency(Actor("system: schedule"), sample=int(settings.LUCENT_CONSISTENCY_SAMPLE), scheduled=True)
    return int(queued.value["job"]) if queued.ok else None


class _Unstoppable(Control):
    def report(self, done: int, total: int | None, phase: str = "") -> None:
        return None

    def cancelled(self) -> bool:
        return False


class _CancelOnly(Control):
    """Passes cancel checks through, keeps the engine's own progress out of the job's."""

    def __init__(self, control: Control) -> None:
        self.control = control

    def report(self, done: int, total: int | None, phase: str = "") -> None:
        return None

    def cancelled(self) -> bool:
        return self.control.cancelled()


ENGINES: dict[str, Callable[[Job, JobControl], dict[str, Any]]] = {
    Job.Kind.REBUILD_USERS: _rebuild_users,
    Job.Kind.REBUILD: _rebuild,
    Job.Kind.ROLLBACK: _rollback,
    Job.Kind.DROP_GENERATION: _drop,
    Job.Kind.CONSISTENCY_CHECK: _check,
}
