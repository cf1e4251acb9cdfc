"""The consistency actions: check (a job) and repair (a per-user rebuild job of what a check found)."""
from __future__ import annotations

from lucent_admin.operations import fields
from lucent_admin.operations.audit import CHECK_CONSISTENCY, REPAIR, Actor, Queued, Result, perform
from lucent_admin.operations.models import Job
from lucent_admin.operations.queue import single_job
from projections.readmodels import PROJECTIONS, user_projections

MAX_SAMPLE = 10_000


def do_check_consistency(actor: Actor, projection: str = "", users: list[str] | None = None, sample: int = 0,
                         everything: bool = False, repair: bool = False, scheduled: bool = False) -> Result:
    """Queue a consistency check (a job) of ``users``, of a rolling ``sample`` of the users, or of ``everything`` (a
    replay of each projection's whole history, the shared read models included); in ``projection`` only, or in
    every projection (with user entities, for users and samples). With ``repair``, the
    inconsistent users it finds are rebuilt (a per-user rebuild job) when it ends. Asking again while the same
    check is queued or running answers with that job."""
    wanted = list(dict.fromkeys(users or []))
    allowed = PROJECTIONS if everything else user_projections()  # users and samples: projections with user entities
    invalid = fields.problems(
        projection=fields.one_of("Projection", projection, allowed, otherwise="all of them"),
        scope="" if sum((bool(wanted), bool(sample), everything)) == 1 else
        "give users, a sample size or everything (one of them)",
        users=fields.users(wanted) if wanted else "",
        sample=f"between 1 and {MAX_SAMPLE:,} users, got {sample:,}" if sample and not 0 < sample <= MAX_SAMPLE else "")
    where = f" in {projection}" if projection else ""
    scope = (wanted[0] if len(wanted) == 1 else f"{len(wanted):,} users") if wanted else (
        f"a sample of {sample:,}" if sample else "everything")
    target = f"{scope}{where}" if not wanted else ",".join(wanted)[:180] + where
    params = {"projection": projection, "users": wanted, "sample": sample, "everything": everything, "repair": repair,
              "scheduled": scheduled}

    def call() -> Queued:
        job, again = single_job(Job.Kind.CONSISTENCY_CHECK, target, params, actor.name, len(wanted) or None,
                                "events" if everything else "users",  # a full check counts the events it replays
                                whole=",".join(wanted) + where if wanted else None)
        return Queued(job.pk, again)

    result = perform(actor, CHECK_CONSISTENCY, target, call, "", invalid, scope=scope, repair=repair)
    if result.ok:
        job_id = result.job
        message = (f"The consistency check of {scope}{where} is already job {job_id}." if result.value.again
                   else f"Consistency check of {scope}{where} queued as job {job_id}.")
        return Result(result.outcome, message, result.value, result.params)
    return result


def do_repair(actor: Actor, job_id: int) -> Result:
    """Queue a per-user rebuild of the users consistency check ``job_id`` found inconsistent."""
    job = Job.objects.filter(pk=job_id, kind=Job.Kind.CONSISTENCY_CHECK).first()
    users: list[str] = list(job.result.get("users_to_repair", [])) if job is not None else []
    invalid = (f"job: there is no consistency check {job_id}" if job is None else
               f"job: consistency check {job_id} is {job.state}; repair once it has finished" if not job.finished else
               f"job: consistency check {job_id} found no user to repair" if not users else "")

    def call() -> Queued:
        repair, again = single_job(Job.Kind.REBUILD_USERS, ",".join(users)[:200], {"users": users, "repairs": job_id},
                                   actor.name, len(users), whole=",".join(users))
        return Queued(repair.pk, again)

    result = perform(actor, REPAIR, f"job {job_id}", call, "", invalid, users=len(users))
    if result.ok:
        names = users[0] if len(users) == 1 else f"{len(users):,} users"
        return Result(result.outcome, f"Repair of {names} queued as job {result.job} (a per-user rebuild).",
                      result.value, result.params)
    return result
