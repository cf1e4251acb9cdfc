"""The engines of the jobs: what each kind of job does, one function of ``projections/`` each, given the job
and its control (progress, cancel: the runner's :class:`~lucent_admin.operations.jobs.JobControl`, which
runs them); the result it returns is the job's, its ``summary`` the last line of the job's history. Above the
action layer (a check may queue its repair), below the runner."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from lucent_admin.bootstrap import Services
from lucent_admin.operations import thresholds
from lucent_admin.operations.actions import do_rebuild_users
from lucent_admin.operations.audit import Actor
from lucent_admin.operations.models import Job, JobEvent
from lucent_admin.operations.queue import AWAITING_DECISION, KINDS, create, notify, save
from projections import layout
from projections.errors import JobCancelled, JobLeaseLost, ProjectionError
from projections.maintenance.consistency import check_sample, check_users
from projections.maintenance.control import Control, Fence
from projections.maintenance.folds import GRACE_S
from projections.maintenance.full_check import check_everything
from projections.maintenance.generations import GenerationTaken, abandon, fold_part, switch_to
from projections.maintenance.recovery import resync
from projections.maintenance.report import Report
from projections.maintenance.retention import (
    drop_generation,
    drop_refusal,
    flipped_earlier,
    next_generation,
    settle_flip,
)
from projections.maintenance.sample import Sample
from projections.maintenance.user_rebuild import rebuild_user
from projections.maintenance.verify import Verification, verify_generation
from projections.readmodels import model


def _rebuild_users(job: Job, control: Control, services: Services) -> dict[str, Any]:
    """Per-user rebuild of ``params["users"]``, one after the other, resuming after ``done``."""
    users: list[str] = list(job.params["users"])
    results: dict[str, Any] = dict(job.result.get("users", {}))
    for i in range(job.done, len(users)):
        control.report(i, len(users), f"rebuilding {users[i]}")
        rebuilt = rebuild_user(services.redis, services.store, users[i],
                               control=_PhaseOnly(control, i, len(users)))
        results[users[i]] = {p.projection: {"events": p.events, "writes": p.writes, "checkpoint": p.checkpoint}
                             for p in rebuilt.projections}
        save(job, result={"users": results})  # what is done survives a redelivery
        control.report(i + 1, len(users), f"rebuilt {users[i]}")
    writes = sum(w["writes"] for r in results.values() for w in r.values())
    repaired = sum(1 for r in results.values() if any(w["writes"] for w in r.values()))
    return {"users": results, "summary": f"rebuilt {len(users):,} users: {repaired:,} needed {writes:,} writes, "
                                         f"{len(users) - repaired:,} already equal to a full replay"}


def _rebuild(job: Job, control: Control, services: Services) -> dict[str, Any]:
    """Full rebuild into a new generation, verified and flipped; a cancel or a failure drops it."""
    projection = job.params["projection"]
    client = services.redis
    generation = job.params.get("generation")
    if generation is None:  # the first delivery picks it; a redelivery resumes filling the same one
        generation = next_generation(client, projection)
        job.params = {**job.params, "generation": generation}
        save(job, params=job.params)
        JobEvent.objects.create(job_id=job.pk, state=job.state, message=f"folding the history into generation {generation}")
    else:
        left = flipped_earlier(client, projection, generation)
        if left is not None:
            return _settled_earlier(job, control, services, projection, generation, left)
    try:
        done = switch_to(client, services.runner_config(projection), generation, control,
                         budget=services.diff_budget, flip_anyway=bool(job.params.get("flip_anyway")),
                         max_lag_s=services.max_lag_s,
                         partitions=layout.next_count(client, projection, job.params.get("partitions"), services.partitions),
                         decide=lambda sample: _await_decision(job, control, sample), resumed=job.done,
                         workers=services.rebuild_workers, ask_helpers=_helpers(job, generation))
    except (JobLeaseLost, GenerationTaken):
        raise  # another run holds the job, or writes its generation: nothing of it is this run's to delete
    except BaseException:
        abandon(client, projection, generation, control)  # the job's generation, under its lease, never live
        raise
    dropped = settle_flip(client, projection, done.from_generation, _Phase(job, control, cancellable=False))
    return {**asdict(done), "dropped": dropped,
            "summary": f"generation {generation} is live (was {done.from_generation}) after "
                       f"{done.applied:,} events in {done.seconds:,.1f} s; {done.difference_count} "
                       f"differences on {done.compared} entities compared; the live projector paused "
                       f"{done.pause_ms:,.1f} ms for the flip; generation {done.from_generation} is kept "
                       f"for a rollback{_dropped(dropped)}"}


def _settled_earlier(job: Job, control: Control, services: Services, projection: str, generation: int,
                     left: int) -> dict[str, Any]:
    """An earlier attempt of this job flipped ``generation`` live and stopped before recording it (its worker
    died, or its lease went, right after the flip): what is left is the flip's bookkeeping."""
    dropped = settle_flip(services.redis, projection, left, _Phase(job, control, cancellable=False))
    return {"from_generation": left, "to_generation": generation, "dropped": dropped,
            "summary": f"generation {generation} is live (was {left}): an earlier attempt of this job flipped it and "
                       f"stopped before recording it; generation {left} is kept for a rollback{_dropped(dropped)}"}


def _dropped(generations: list[int]) -> str:
    return f"; generation {', '.join(map(str, generations))}, kept before, dropped" if generations else ""


DECISION_POLL_S = 0.3
def _await_decision(job: Job, control: Control, sample: Sample) -> bool:
    """Above the budget: show the differences and wait for an operator's "flip anyway" (True) or a
    cancel (JobCancelled); the new generation keeps following the head meanwhile."""
    found = {"differences": sample.kept, "difference_count": sample.count, "compared": sample.compared}
    save(job, result=found, phase=f"{AWAITING_DECISION}: {sample.count} differences on {sample.compared} entities "
                                  "(flip anyway, or cancel)")
    JobEvent.objects.create(job_id=job.pk, state=job.state, message=f"{sample.count} differences on a sample of "
                            f"{sample.compared} entities, above the budget: waiting for an operator to flip anyway or cancel")
    notify(job)
    while True:
        if control.cancelled():
            raise JobCancelled("cancelled by an operator after the verification; nothing was flipped")
        if (Job.objects.filter(pk=job.pk).values_list("params", flat=True).first() or {}).get("decision") == "flip":
            JobEvent.objects.create(job_id=job.pk, state=job.state, message="an operator decided to flip anyway")
            return True
        time.sleep(DECISION_POLL_S)


def _rollback(job: Job, control: Control, services: Services) -> dict[str, Any]:
    """Back to the kept generation: verified against a replay at its checkpoint (refused above the budget, with
    the differences in the job's result), caught up from its own checkpoint, then flipped."""
    projection, generation = job.params["projection"], int(job.params["generation"])
    client = services.redis
    left = flipped_earlier(client, projection, generation) if job.attempts > 1 else None
    if left is not None:
        return _settled_earlier(job, control, services, projection, generation, left)
    found = verify_generation(client, services.store, projection, generation, _Phase(job, control))
    verified = {"verified": found.checked, "verified_at": found.checkpoint, "difference_count": found.count,
                "differences": found.kept, "users_to_repair": found.users}
    budget = services.diff_budget
    if found.count > budget:
        save(job, result=verified)  # the differences, for the job page and the command line
        raise GenerationDiffers(_refusal(found, budget))
    done = switch_to(client, services.runner_config(projection), generation, control, verify=False,
                     max_lag_s=services.max_lag_s, resumed=job.done, workers=services.rebuild_workers,
                     ask_helpers=_helpers(job, generation))
    dropped = settle_flip(client, projection, done.from_generation, _Phase(job, control, cancellable=False))
    return {**asdict(done), **verified, "dropped": dropped,
            "summary": f"generation {generation} is live again (was {done.from_generation}), verified against a replay "
                       f"({found.checked:,} {'users' if model(projection).user_kind else 'keys'}, {found.count} differences) "
                       f"and caught up by {done.applied:,} events{_dropped(dropped)}"}


def _helpers(job: Job, generation: int) -> Callable[[int], None]:
    """How a rebuild or rollback queues ``n`` fold jobs for the fold groups of ``generation`` it does not fold."""
    def ask(n: int) -> None:
        projection = job.params["projection"]
        folds = [create(Job.Kind.FOLD, projection, {"projection": projection, "generation": generation, "rebuild": job.pk},
                        f"job {job.pk}", None, KINDS[Job.Kind.FOLD].unit).pk for _ in range(n)]
        JobEvent.objects.create(job_id=job.pk, state=job.state, message=f"{n + 1} fold groups: this job folds one, fold "
                                f"job{'s' if n > 1 else ''} {', '.join(map(str, folds))} the others (what no worker "
                                f"takes within {GRACE_S:g} s, this job folds too)")
    return ask


def _fold(job: Job, control: Control, services: Services) -> dict[str, Any]:
    """A fold group of a rebuild's (or rollback's) generation, folded until that job flips or stops."""
    projection, generation = job.params["projection"], int(job.params["generation"])
    applied = fold_part(services.redis, services.runner_config(projection), generation, control, services.max_lag_s)
    control.report(applied, applied, "done")
    said = (f"folded {applied:,} events of one fold group of {projection} generation {generation} for job "
            f"{job.params['rebuild']}") if applied else f"nothing left to fold for job {job.params['rebuild']}"
    return {"applied": applied, "summary": said}


class GenerationDiffers(ProjectionError):
    """The kept generation differs from a replay above the budget: no rollback."""


def _refusal(found: Verification, budget: int) -> str:
    p, what = found.projection, "users" if model(found.projection).user_kind else "keys"
    first = "; ".join(f"{d['key']} {d['field']} ({d['kind']})".replace("  ", " ") for d in found.kept[:3])
    return (f"generation {found.generation} of {p} differs from a replay of the events: {found.count} differences on "
            f"{found.checked:,} {what} checked at its checkpoint {found.checkpoint}, above the budget of {budget}; not "
            f"rolled back. First: {first}. Instead, repair the live read models (manage.py consistency --projection {p} "
            f"--all --repair) or rebuild from the events (manage.py rebuild {p}), whose flip drops the damaged generation")


def _drop(job: Job, control: Control, services: Services) -> dict[str, Any]:
    """Drop a generation that is neither live nor being written (checked again: time passed since the action)."""
    projection, generation = job.params["projection"], int(job.params["generation"])
    refusal = drop_refusal(services.redis, projection, generation)
    if refusal:
        raise ProjectionError(refusal)
    dropped = drop_generation(services.redis, projection, generation, control)
    return {"dropped": dropped, "summary": f"dropped generation {generation} of {projection}: {dropped:,} keys"}


def _check(job: Job, control: Control, services: Services) -> dict[str, Any]:
    """A consistency check (read only: a redelivered one starts again); a repair job after it if asked."""
    params, client, store = job.params, services.redis, services.store
    names = [params["projection"]] if params.get("projection") else None
    report: Report
    urls = services.urls  # the users are read ahead by a child process
    if params.get("users"):
        report = check_users(client, store, params["users"], names, control, urls=urls)
    elif params.get("sample"):
        report = check_sample(client, store, int(params["sample"]), names, control, urls=urls)
    else:
        report = check_everything(client, store, names, control)
    result = report.as_dict()
    repair = bool(params.get("repair")) or (bool(params.get("scheduled")) and _repair_rule(report))
    repaired = ""
    if report.users_to_repair and repair:
        queued = do_rebuild_users(Actor(f"system: consistency check {job.pk}"), report.users_to_repair)
        result["repair_job"] = queued.job if queued.ok else None
        repaired = f"; repair: {queued.message}"
    score = "no entity to check" if report.score is None else f"{report.consistent:,} of {report.checked:,} consistent"
    result["summary"] = (f"{score}, {report.difference_count:,} differences; {len(report.users_to_repair):,} users to "
                         f"repair{repaired}")
    return result


def _repair_rule(report: Report) -> bool:
    """The recovery rule "inconsistent → repair" (Settings page): after a scheduled check scoring below it."""
    rules = thresholds.recovery_rules()
    return rules.repair and report.score is not None and report.score * 100 < rules.repair_below_score


class _Phase(Control):
    """An engine's phases on the job, its progress left as it stands (a verification counts users, a drop after a
    flip keys: not the job's events); with ``cancellable`` False, no cancel (the flip is done: what follows is its
    bookkeeping)."""

    def __init__(self, job: Job, control: Control, cancellable: bool = True) -> None:
        self.job, self.control, self.cancellable = job, control, cancellable

    def report(self, done: int, total: int | None, phase: str = "") -> None:
        self.control.report(self.job.done, self.job.total, phase)

    def cancelled(self) -> bool:
        return self.cancellable and self.control.cancelled()

    def fence(self) -> Fence | None:
        return self.control.fence()


class _PhaseOnly(Control):
    """Passes cancel checks and the engine's phase through (a busy user's events read so far), keeping the job's
    progress in its own units (step ``done`` of ``total``: the job resumes from its progress)."""

    def __init__(self, control: Control, done: int, total: int) -> None:
        self.control, self.done, self.total = control, done, total

    def report(self, done: int, total: int | None, phase: str = "") -> None:
        if phase:
            counted = f"{done:,} of {total:,}" if total else f"{done:,}"
            self.control.report(self.done, self.total, f"{phase} ({counted})")

    def cancelled(self) -> bool:
        return self.control.cancelled()

    def fence(self) -> Fence | None:
        return self.control.fence()


def _resync(job: Job, control: Control, services: Services) -> dict[str, Any]:
    """Make the running projector drop its state and resubscribe; done once it has."""
    projection = job.params["projection"]
    checkpoint = resync(services.redis, projection, control)
    return {"checkpoint": checkpoint, "summary": f"{projection} resubscribed from its checkpoint {checkpoint:,}"}


ENGINES: dict[str, Callable[[Job, Control, Services], dict[str, Any]]] = {
    Job.Kind.REBUILD_USERS: _rebuild_users,
    Job.Kind.REBUILD: _rebuild,
    Job.Kind.ROLLBACK: _rollback,
    Job.Kind.DROP_GENERATION: _drop,
    Job.Kind.CONSISTENCY_CHECK: _check,
    Job.Kind.RESYNC: _resync,
    Job.Kind.FOLD: _fold,
}
