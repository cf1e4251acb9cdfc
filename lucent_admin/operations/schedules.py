"""What beat schedules besides recovery: queue again the jobs whose worker died, drop the generations no rollback
will use (retention, orphans), and the scheduled consistency check of a rolling sample. Each acts through the
action layer as the system."""
from __future__ import annotations

import time

from django.conf import settings

from lucent_admin import bootstrap
from lucent_admin.operations.actions import do_check_consistency, do_drop_generation
from lucent_admin.operations.audit import Actor
from lucent_admin.operations.models import Job, JobEvent
from lucent_admin.operations.queue import enqueue, running_generation_job
from projections import inventory, keys
from projections.maintenance.retention import kept_generation
from projections.readmodels import PROJECTIONS

State = Job.State


def requeue_orphans() -> list[int]:
    """Queue again every job the database says is running but no worker holds (its worker died, e.g. killed
    with -9): the task resumes it from its own progress. The broker would redeliver it too, but only after
    its visibility timeout (hours, for long rebuilds); a job queued twice still runs once at a time."""
    client = bootstrap.redis_client()
    requeued = []
    for job in Job.objects.filter(state=State.RUNNING):
        if client.exists(keys.job_lease(job.pk)):
            continue
        JobEvent.objects.create(job_id=job.pk, state=job.state, message=f"its worker {job.worker} is gone; queued again")
        enqueue(job.pk)
        requeued.append(job.pk)
    return requeued


def drop_expired_generations(now_ms: int | None = None) -> list[int]:
    """Queue drops (as the system) of what no rollback will use: the kept generation once kept longer than
    LUCENT_GENERATION_RETENTION_HOURS, and at once any orphan (neither live, kept nor being written: left by a
    crash between a flip and its bookkeeping, or by a cleanup cut short). A projection with a generation job
    queued or running is left for the next run; one drop per projection per run (one generation job at a time)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    retention_ms = int(settings.LUCENT_GENERATION_RETENTION_HOURS) * 3_600_000
    client = bootstrap.redis_client()
    queued = []
    for projection in PROJECTIONS:
        if running_generation_job(projection) is not None:
            continue
        kept = kept_generation(client, projection)
        due = [kept.generation] if kept is not None and kept.flipped_at_ms + retention_ms <= now else []
        due += [g.generation for g in inventory.generations(client, projection, sample=0) if g.role is inventory.Role.ORPHAN]
        for generation in due[:1]:
            result = do_drop_generation(Actor("system: retention"), projection, generation)
            if result.ok and result.job:
                queued.append(result.job)
    return queued


def schedule_consistency_check() -> int | None:
    """Queue the scheduled check of the next rolling sample (as the system); its job id."""
    if not settings.LUCENT_CONSISTENCY_SAMPLE:
        return None
    queued = do_check_consistency(Actor("system: schedule"), sample=int(settings.LUCENT_CONSISTENCY_SAMPLE), scheduled=True)
    return queued.job
