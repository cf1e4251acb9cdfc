"""Running jobs, the runner above the engines: claim, progress, cancel and outcome (DESIGN invariant 10).

A job is a database row (:class:`~lucent_admin.operations.models.Job`) and a Celery task
that calls :func:`run` with its id; the work itself, an engine per kind of job
(:mod:`lucent_admin.operations.engines`), is one function of ``projections/`` given a
:class:`JobControl`.

* **Claim.** A Redis lease per job (``keys.job_lease``), renewed by a thread while the
  engine runs. A task delivered again while the job runs elsewhere finds the lease taken
  and returns; one delivered again after its worker died takes the lease once it expired
  and resumes from the job's own progress (``done``): the same job never has two writers.
  The row is claimed by a compare-and-set on ``attempts`` (the run's fencing token), and
  every later write of the run is conditional on it.
* **Lost lease.** A renew refused (the lease expired or another run took it), or none that
  succeeded for the lease's length (Redis away longer than the lease), and the run has lost
  the job: :class:`JobControl` raises ``JobLeaseLost`` at the engine's next safe point (the
  renewer looks every ``RENEW_S``: the run stops within a second), its cleanup deletes
  nothing, and it writes no state to the row, which belongs to the run that holds the lease
  now (or, if nobody does, to the one the orphan sweep queues); a history line says so.
* **Progress.** The engine's reports go to the row at most every ``REPORT_EVERY`` seconds,
  with the rate over the last ``RATE_WINDOW`` seconds and the ETA, and each write sends a
  change notice to the console's ``jobs`` group, so its pages redraw the progress bar.
* **Cancel.** Asking sets ``cancel_requested`` (a job not started yet is cancelled at
  once); the engine reads it at its safe points, at most every ``CANCEL_POLL`` seconds, so a
  cancel is honoured within a second, and raises ``JobCancelled``.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from django.db import transaction
from django.utils import timezone

from lucent_admin import bootstrap
from lucent_admin.operations.engines import ENGINES
from lucent_admin.operations.models import Job, JobEvent
from lucent_admin.operations.queue import notify, save
from projections import keys
from projections.errors import Fenced, JobCancelled, JobLeaseLost, ProjectionError
from projections.maintenance.control import Control, Fence
from projections.projector.lease import Lease, new_token

log = logging.getLogger(__name__)

REPORT_EVERY = 0.5
CANCEL_POLL = 0.3
RATE_WINDOW = 10.0
LEASE_MS = 15_000
RENEW_S = 0.3  # how often the renewer renews the job's lease (and so how soon a lost one is noticed)
State = Job.State


class JobControl(Control):
    """The engine's handle on its job row: throttled progress writes, cancel checks, and the end of a run that
    lost its job (``JobLeaseLost`` from ``cancelled`` and ``report``; see the module doc)."""

    def __init__(self, job: Job, renewer: _Renewer | None = None) -> None:
        self.job = job
        self.renewer = renewer
        self._written = 0.0
        self._polled = 0.0
        self._cancel = job.cancel_requested
        self._samples: deque[tuple[float, int]] = deque()

    def report(self, done: int, total: int | None, phase: str = "") -> None:
        self.own()
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
        save(self.job, done=done, total=total, rate=rate, eta_seconds=eta, phase=phase[:200], updated_at=timezone.now())
        self.job.done, self.job.total, self.job.rate, self.job.eta_seconds, self.job.phase = done, total, rate, eta, phase
        notify(self.job)

    def cancelled(self) -> bool:
        self.own()
        now = time.monotonic()
        if now - self._polled >= CANCEL_POLL:
            self._polled = now
            row = Job.objects.filter(pk=self.job.pk).values_list("cancel_requested", "attempts").first()
            if row is None or row[1] != self.job.attempts:
                raise JobLeaseLost(f"job {self.job.pk}: attempt {self.job.attempts} lost its lease; another run "
                                   "claimed the job")
            self._cancel = self._cancel or row[0]
        return self._cancel

    def fence(self) -> Fence | None:
        """The job's lease key and this run's token: the flip's script checks them (a lease lost between two
        looks at it never flips)."""
        return (self.renewer.lease.key, self.renewer.lease.token) if self.renewer is not None else None

    def own(self) -> None:
        """Raise JobLeaseLost once the renewer says the lease is lost (looked at in the engine's own thread too:
        a process paused past the lease learns it before its renewer thread runs again)."""
        if self.renewer is not None and not self.renewer.holds():
            raise JobLeaseLost(f"job {self.job.pk}: attempt {self.job.attempts} lost its lease ({self.renewer.why})")


class _Renewer(threading.Thread):
    """Keeps the job's lease while the engine runs, renewing it every RENEW_S. The lease is lost for good once a
    renew says it is not ours (expired, taken, deleted) or none succeeded for the lease's length minus a second
    (Redis away: it may have expired there and been taken)."""

    def __init__(self, lease: Lease) -> None:
        super().__init__(daemon=True, name=f"lease-{lease.key}")
        self.lease = lease
        self.halt = threading.Event()
        self.renewed = time.monotonic()  # when the last renew that succeeded was sent (the lease was just taken)
        self.why = ""

    def holds(self) -> bool:
        """False once the lease is lost (never True again)."""
        if not self.why and time.monotonic() - self.renewed > LEASE_MS / 1000 - 1:
            self.why = f"not renewed for {LEASE_MS / 1000:g} s"
        return not self.why

    def run(self) -> None:
        while not self.halt.wait(RENEW_S) and self.holds():
            sent = time.monotonic()
            try:
                if self.lease.renew():
                    self.renewed = sent
                else:
                    self.why = f"the lease {self.lease.key} is no longer this run's (holder: {self.lease.holder()})"
            except Exception as exc:  # noqa: BLE001 - Redis away for a moment: try again next tick (holds() decides)
                log.warning("job lease %s not renewed: %s", self.lease.key, exc)
        if self.why:
            log.error("job lease %s lost: %s; the job stops at its next safe point", self.lease.key, self.why)


def run(job_id: int) -> str:
    """Run job ``job_id`` unless it runs elsewhere or is finished; what happened, in words."""
    token = new_token()
    lease = Lease(bootstrap.redis_client(), f"job {job_id}", token, LEASE_MS, key=keys.job_lease(job_id))
    try:
        lease.acquire(0, threading.Event())
    except Fenced:
        return f"job {job_id} is running on {lease.holder()}; not started twice"
    renewer = _Renewer(lease)
    renewer.start()
    try:
        return _run_claimed(job_id, token, renewer)
    finally:
        renewer.halt.set()
        try:
            lease.release()  # only if still ours
        except Exception as exc:  # noqa: BLE001 - Redis away: the lease expires by itself
            log.warning("job lease %s not released: %s", lease.key, exc)


def _claim(job: Job, worker: str) -> bool:
    """Mark ``job`` running as this run's attempt, if no other run claimed it (or it ended) since it was read:
    a compare-and-set on ``attempts``, the token every later write of this run is conditional on."""
    resumed = f", resuming at {job.done:,} {job.unit}" if job.done else ""
    fields = {"state": State.RUNNING, "worker": worker, "attempts": job.attempts + 1,
              "started_at": job.started_at or timezone.now()}
    with transaction.atomic():
        if not Job.objects.filter(pk=job.pk, attempts=job.attempts, state__in=(State.QUEUED, State.RUNNING)).update(**fields):
            return False
        JobEvent.objects.create(job_id=job.pk, state=State.RUNNING,
                                message=f"started on {worker} (attempt {job.attempts + 1}){resumed}")
    for name, value in fields.items():
        setattr(job, name, value)
    transaction.on_commit(lambda: notify(job))
    return True


def _settle(control: JobControl, state: str, message: str, **fields: Any) -> None:
    """This run's outcome for its job: written only while it holds the lease and the row names its attempt."""
    job = control.job
    control.own()
    with transaction.atomic():
        save(job, state=state, **fields)
        JobEvent.objects.create(job_id=job.pk, state=state, message=message)
    job.state = state
    transaction.on_commit(lambda: notify(job))


def _run_claimed(job_id: int, worker: str, renewer: _Renewer | None = None) -> str:
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        return f"job {job_id} does not exist"
    if job.finished or job.state == State.PENDING_APPROVAL or not _claim(job, worker):
        return f"job {job_id} is {Job.objects.get(pk=job_id).state}; nothing to run"
    control = JobControl(job, renewer)
    try:
        try:
            if control.cancelled():
                raise JobCancelled("cancelled before it started")
            result = ENGINES[job.kind](job, control, bootstrap.services())
        except JobLeaseLost:
            raise
        except JobCancelled as exc:
            _settle(control, State.CANCELLED, str(exc), finished_at=timezone.now())
        except ProjectionError as exc:
            _settle(control, State.FAILED, str(exc), error=str(exc), finished_at=timezone.now())
        except Exception as exc:  # noqa: BLE001 - a job fails with its reason, the worker goes on
            log.exception("job %s failed", job_id)
            _settle(control, State.FAILED, f"{type(exc).__name__}: {exc}", error=f"{type(exc).__name__}: {exc}",
                    finished_at=timezone.now())
        else:
            _settle(control, State.SUCCEEDED, result.pop("summary", "done"), result=result, finished_at=timezone.now())
    except JobLeaseLost as exc:  # the row is the new holder's: one history line, no state
        said = f"{worker} stopped: {exc}; the job is left to the run that holds its lease"
        log.warning("job %s: %s", job_id, said)
        JobEvent.objects.create(job_id=job_id, state=State.RUNNING, message=said)
        notify(job)
        return f"job {job_id}: this run lost its lease and stopped"
    return f"job {job_id} {job.state}"
