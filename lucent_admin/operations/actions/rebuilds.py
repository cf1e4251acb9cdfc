"""Actions that queue rebuilds: of users (per-user rebuild), of a whole projection, a rollback, the drop of a
generation. One generation job at a time per projection; a rebuild that would not fit in Redis is refused here,
for every caller."""
from __future__ import annotations

from typing import Any

import redis
from django.conf import settings

from lucent_admin import bootstrap
from lucent_admin.operations import fields
from lucent_admin.operations.audit import (
    DROP_GENERATION,
    REBUILD,
    REBUILD_USERS,
    ROLLBACK,
    Action,
    Actor,
    Queued,
    Result,
    perform,
)
from lucent_admin.operations.models import Job
from lucent_admin.operations.queue import KINDS, Busy, create, running_generation_job, single_job
from projections import inventory
from projections.errors import ProjectionError
from projections.maintenance.plan import RebuildPlan, plan_rebuild, second_generation
from projections.maintenance.retention import drop_refusal, kept_generation
from projections.readmodels import PROJECTIONS


def do_rebuild_users(actor: Actor, users: list[str]) -> Result:
    """Queue a per-user rebuild of ``users`` (a job). Asking again while the same one is queued or
    running answers with that job instead of a second one."""
    wanted = list(dict.fromkeys(users))  # keep the order, drop repeats
    invalid = fields.problems(users=fields.users(wanted))
    target = ",".join(wanted)[:200]

    def call() -> Queued:
        job, again = single_job(Job.Kind.REBUILD_USERS, target, {"users": wanted}, actor.name, len(wanted),
                                whole=",".join(wanted))
        return Queued(job.pk, again)

    result = perform(actor, REBUILD_USERS, target, call, "", invalid, users=len(wanted))
    if result.ok:
        job_id, again = result.job, result.value.again
        names = wanted[0] if len(wanted) == 1 else f"{len(wanted):,} users"
        message = (f"The rebuild of {names} is already job {job_id}." if again
                   else f"Rebuild of {names} queued as job {job_id}.")
        return Result(result.outcome, message, result.value, result.params)
    return result


def _generation_job(actor: Actor, action: Action, kind: str, projection: str, confirm: str | None, params: dict[str, Any],
                    done: str, invalid: str = "") -> Result:
    """Queue a job that writes or flips a projection's generations: one at a time per projection. With two-person
    approval on, a rebuild or rollback waits for a second operator's approval unless the system asks (automatic)."""
    if not invalid and projection not in PROJECTIONS:
        invalid = fields.problems(projection=fields.one_of("Projection", projection, PROJECTIONS))
    if not invalid and confirm is not None and confirm != projection:
        invalid = f"confirm: type the projection's name ({projection!r}) to confirm"
    guarded = bool(settings.LUCENT_REBUILD_APPROVAL) and KINDS[kind].guarded
    approval = guarded and not actor.automatic
    if guarded and actor.automatic:
        params = {**params, "approval": "exempt (automatic)"}

    def call() -> Queued:
        running = running_generation_job(projection)
        if running is not None:
            raise Busy(f"{projection} already has {running.get_kind_display().lower()} job {running.pk} ({running.state}); "
                       "wait for it or cancel it")
        job = create(kind, projection, {"projection": projection, **params, "account": actor.account}, actor.name,
                     None, KINDS[kind].unit, approval=approval,
                          note="automatic, exempt from two-person approval" if guarded and actor.automatic else "")
        return Queued(job.pk, pending=approval)

    result = perform(actor, action, projection, call, "", invalid, **params)
    if result.ok:
        message = done.format(job=result.job)
        if result.value.pending:
            message += " It starts once a second operator approves it."
        return Result(result.outcome, message, result.value, result.params)
    return result


def do_rebuild(actor: Actor, projection: str, confirm: str | None, flip_anyway: bool = False,
               partitions: int | None = None) -> Result:
    """Queue a full rebuild of ``projection`` (``confirm``: its name typed; None from the CLI's --yes), its new
    generation split into ``partitions`` (None: as many as the live one). Refused, for every caller (the console, a
    direct POST, the command line, automatic recovery), when the dry run says a second generation would not fit in
    Redis's memory."""
    invalid = fields.problems(partitions=fields.partition_count(partitions, projection)) or _memory_refusal(projection)
    params: dict[str, Any] = {"flip_anyway": flip_anyway, **({"partitions": partitions} if partitions else {})}
    split = f", split into {partitions} partition{'s' if partitions != 1 else ''}," if partitions else ""
    return _generation_job(actor, REBUILD, Job.Kind.REBUILD, projection, confirm, params,
                           f"Full rebuild of {projection}{split} queued as job {{job}}; the live read models stay in use "
                           "until the flip.", invalid)


def _memory_refusal(projection: str) -> str:
    """Why a rebuild of ``projection`` would not fit in Redis ('' if it fits, or the projection is unknown)."""
    if projection not in PROJECTIONS:
        return ""
    try:
        refusal = second_generation(bootstrap.redis_client(), projection).refusal
    except redis.RedisError:
        return ""  # Redis away: the action fails on its own, with that message
    return f"memory: {refusal}" if refusal else ""


def rebuild_dry_run(projection: str, partitions: int | None = None) -> RebuildPlan:
    """What a full rebuild of ``projection`` would take (events, ETA, memory, whether it fits, the partitions of the
    new generation): the dry run the console shows before an operator confirms (a read: no audit entry, no job)."""
    return plan_rebuild(bootstrap.redis_client(), bootstrap.runner_config(projection), partitions,
                        settings.LUCENT_PARTITIONS)


def do_rollback(actor: Actor, projection: str, confirm: str | None) -> Result:
    """Queue a rollback of ``projection`` to the generation its last flip left behind."""
    kept = kept_generation(bootstrap.redis_client(), projection) if projection else None
    invalid = "" if kept is not None else f"projection: {projection} has no kept generation to roll back to"
    return _generation_job(actor, ROLLBACK, Job.Kind.ROLLBACK, projection, confirm,
                           {"generation": kept.generation if kept else 0},
                           f"Rollback of {projection} queued as job {{job}}.", invalid)


def do_drop_generation(actor: Actor, projection: str, generation: int) -> Result:
    """Queue the drop of a generation that is neither live nor being written (a job: UNLINK in chunks); a rollback
    to it is then impossible. Asking again while that drop is queued or running answers with its job; a generation
    no longer there answers so, with no job."""
    invalid = fields.problems(projection=fields.one_of("Projection", projection, PROJECTIONS),
                              generation="" if generation >= 1 else f"a generation number (1 or more), got {generation}")

    def call() -> Queued:
        running = running_generation_job(projection)
        if running is not None and int(running.params.get("generation") or 0) == generation:
            if running.kind == Job.Kind.DROP_GENERATION:
                return Queued(running.pk, again=True)
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
            return Queued(None)
        job = create(Job.Kind.DROP_GENERATION, projection, {"projection": projection, "generation": generation,
                                                                 "account": actor.account}, actor.name, None,
                     KINDS[Job.Kind.DROP_GENERATION].unit)
        return Queued(job.pk)

    result = perform(actor, DROP_GENERATION, f"{projection}/g{generation}", call, "", invalid, generation=generation)
    if not result.ok:
        return result
    job_id = result.job
    message = (f"Generation {generation} of {projection} is not there (already dropped); nothing to drop." if job_id is None
               else f"The drop of generation {generation} of {projection} is already job {job_id}." if result.value.again
               else f"Drop of generation {generation} of {projection} queued as job {job_id}.")
    return Result(result.outcome, message, result.value, result.params)
