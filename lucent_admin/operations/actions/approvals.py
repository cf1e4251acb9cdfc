"""Actions on a job: cancel it, let a rebuild waiting on differences flip anyway, approve one another operator
asked for (two-person approval)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lucent_admin.operations.audit import APPROVE_JOB, CANCEL_JOB, FLIP_ANYWAY, Action, Actor, Result, perform
from lucent_admin.operations.models import Job
from lucent_admin.operations.queue import AWAITING_DECISION, approve, request_cancel


def _on_job(actor: Actor, action: Action, job_id: int, refuse: Callable[[Any], str], do: Callable[[Any], str]) -> Result:
    """An action on job ``job_id``: ``refuse(job)`` says why not (the input's error) or "", ``do(job)`` acts
    and says what happened."""
    job = Job.objects.filter(pk=job_id).first()
    invalid = f"job: there is no job {job_id}" if job is None else refuse(job)
    said: list[str] = []
    result = perform(actor, action, f"job {job_id}", lambda: said.append(do(job)), "", invalid)
    return Result(result.outcome, said[0], result.value, result.params) if result.ok else result


def do_cancel_job(actor: Actor, job_id: int) -> Result:
    """Ask job ``job_id`` to stop (within a second); one not started yet is cancelled at once."""
    return _on_job(actor, CANCEL_JOB, job_id, lambda _: "", lambda job: request_cancel(job, actor.name))


def do_flip_anyway(actor: Actor, job_id: int) -> Result:
    """Decide that a rebuild waiting on differences above the budget flips anyway."""
    def refuse(job: Any) -> str:
        waiting = job.state == Job.State.RUNNING and job.phase.startswith(AWAITING_DECISION)
        return "" if waiting else f"job: job {job_id} is not a rebuild waiting for a decision"

    def flip(job: Any) -> str:
        Job.objects.filter(pk=job_id).update(params={**job.params, "decision": "flip"})
        return f"Job {job_id} flips anyway; it goes on within a second."

    return _on_job(actor, FLIP_ANYWAY, job_id, refuse, flip)


def do_approve_job(actor: Actor, job_id: int) -> Result:
    """Approve a job another operator asked for (two-person approval); it then starts."""
    def refuse(job: Any) -> str:
        if job.state != Job.State.PENDING_APPROVAL:
            return f"job: job {job_id} is {job.state}, not waiting for an approval"
        if job.params.get("account", "") in ("", actor.account) or _same_cli_user(job.requested_by, actor.name):
            return f"job: job {job_id} was asked for by {job.requested_by}; a second operator must approve it"
        return ""

    return _on_job(actor, APPROVE_JOB, job_id, refuse, lambda job: approve(job, actor.name))


def _same_cli_user(requested_by: str, approver: str) -> bool:
    """Whether both names are the command line's (``cli:OS-USER [as ACCOUNT]``) with the same OS user: one person
    naming two accounts with --as is not two people (the command line cannot check a password)."""
    def os_user(name: str) -> str:
        return name.split(" ", 1)[0] if name.startswith("cli:") else ""

    return bool(os_user(approver)) and os_user(approver) == os_user(requested_by)
