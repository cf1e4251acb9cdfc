"""Celery tasks: thin wrappers that look things up and call one function."""
from __future__ import annotations

import socket
import time

from celery import shared_task

from lucent_admin.bootstrap import event_store, redis_client
from lucent_admin.operations import jobs, recovery, schedules
from lucent_admin.operations.observability import sample_infrastructure as record_infrastructure
from projections.projector.canary import append_canary as append_one_canary
from projections.projector.lag import record_samples
from projections.readmodels import PROJECTIONS


@shared_task(name="lucent.ping")
def ping() -> dict[str, str]:
    """Prove a worker is consuming: answers with the worker's host name."""
    return {"pong": socket.gethostname()}


@shared_task(name="lucent.run_job", ignore_result=True)
def run_job(job_id: int) -> str:
    """Run a job by id (a redelivered task resumes it; one running elsewhere is not run twice)."""
    return jobs.run(job_id)


@shared_task(name="lucent.requeue_orphaned_jobs", ignore_result=True)
def requeue_orphaned_jobs() -> list[int]:
    """Queue again the running jobs whose worker died (scheduled by beat)."""
    return schedules.requeue_orphans()


@shared_task(name="lucent.drop_kept_generations", ignore_result=True)
def drop_kept_generations() -> list[int]:
    """Queue the drop of every generation kept past the retention period (scheduled by beat)."""
    return schedules.drop_expired_generations()


@shared_task(name="lucent.scheduled_consistency_check", ignore_result=True)
def scheduled_consistency_check() -> int | None:
    """Queue the check of the next rolling sample of users (scheduled by beat); the job's id."""
    return schedules.schedule_consistency_check()


@shared_task(name="lucent.sample_lag", ignore_result=True)
def sample_lag() -> None:
    """Record each projection's lag for the overview's lag chart (scheduled by beat)."""
    record_samples(redis_client(), PROJECTIONS, int(time.time() * 1000))


@shared_task(name="lucent.sample_infrastructure", ignore_result=True)
def sample_infrastructure() -> None:
    """Record the Infrastructure page's figures and tell its open pages (scheduled by beat)."""
    record_infrastructure()


@shared_task(name="lucent.append_canary", ignore_result=True)
def append_canary() -> str:
    """Append one freshness canary every projection records on arrival (scheduled by beat); its id."""
    return append_one_canary(event_store(), redis_client())


@shared_task(name="lucent.recovery_tick", ignore_result=True)
def recovery_tick() -> list[str]:
    """Look at every projection's health and let the recovery rules act (scheduled by beat)."""
    return recovery.tick()
