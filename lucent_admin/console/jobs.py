"""What the job and consistency widgets show: jobs with their progress, a job's page, the latest
consistency score per projection, its trend, the reports.

A consistency report is the result of a consistency-check job
(``projections.maintenance.consistency.Report`` as JSON); scores come from the finished checks,
newest first.
"""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.utils import timezone

from lucent_admin.operations.models import Job
from lucent_admin.operations.queue import AWAITING_DECISION
from projections.readmodels import PROJECTIONS

Params = Any
TREND_DAYS = 7
TREND_POINTS = 500  # checks drawn at most (the newest)
USER_JOB_KINDS = (Job.Kind.REBUILD_USERS, Job.Kind.CONSISTENCY_CHECK)
RECENT_USER_JOBS = 200  # the newest per-user jobs looked through for a user's page


def job_row(job: Job) -> dict[str, Any]:
    return {"job": job, "percent": None if job.fraction is None else job.fraction * 100}


def jobs(params: Params) -> dict[str, Any]:
    return {"rows": [job_row(j) for j in Job.objects.all()[:50]]}


def user_jobs(params: Params) -> dict[str, Any]:
    """The per-user rebuilds and the consistency checks that named the user or found it inconsistent."""
    user = params["user"]
    mine = [j for j in Job.objects.filter(kind__in=USER_JOB_KINDS)[:RECENT_USER_JOBS]
            if user in j.params.get("users", ()) or user in j.result.get("users_to_repair", ())]
    checks = [j for j in mine if j.kind == Job.Kind.CONSISTENCY_CHECK and j.state == Job.State.SUCCEEDED]
    last = checks[0] if checks else None
    differences = [d for d in last.result.get("differences", []) if d.get("user") == user] if last else []
    return {"user": user, "rows": [job_row(j) for j in mine[:5]], "last_check_job": last, "differences": differences}


def job_detail(params: Params) -> dict[str, Any]:
    ident = str(params["job"])
    job = Job.objects.filter(pk=int(ident)).first() if ident.isdigit() else None
    if job is None:
        return {"found": False, "job_id": params["job"]}
    awaiting = job.state == Job.State.RUNNING and job.phase.startswith(AWAITING_DECISION)
    return {"found": True, "job": job, "row": job_row(job), "events": list(job.events.all()), "awaiting_decision": awaiting,
            "users": job.result.get("users", {}), "report": report_of(job)}


def _finished_checks(since_days: int = TREND_DAYS, limit: int = TREND_POINTS) -> list[Job]:
    since = timezone.now() - timedelta(days=since_days)
    return list(Job.objects.filter(kind=Job.Kind.CONSISTENCY_CHECK, state=Job.State.SUCCEEDED, finished_at__gte=since)
                .order_by("-finished_at")[:limit])


def latest_scores() -> dict[str, dict[str, Any]]:
    """Per projection, the newest finished check that covered it: its score, when, the job."""
    out: dict[str, dict[str, Any]] = {}
    for job in _finished_checks():
        for projection, score in job.result.get("scores", {}).items():
            if projection not in out:
                counts = job.result.get("per_projection", {}).get(projection, {})
                out[projection] = {"score": score, "at": job.finished_at, "job": job, "checked": counts.get("checked", 0),
                                   "consistent": counts.get("consistent", 0)}
    return out


def trend() -> dict[str, Any]:
    """The score of every projection at each finished check of the last days, oldest first: what the chart draws
    (x: seconds since the epoch; a projection a check did not cover is null there)."""
    checks = sorted((j.finished_at, j) for j in _finished_checks() if j.finished_at is not None)
    names = list(PROJECTIONS)  # market too: a check of everything covers it
    now = timezone.now()
    return {"from": int((now - timedelta(days=TREND_DAYS)).timestamp()), "to": int(now.timestamp()),
            "x": [int(at.timestamp()) for at, _ in checks],
            "series": {name: [j.result.get("scores", {}).get(name) for _, j in checks] for name in names}}


def consistency_scores(params: Params) -> dict[str, Any]:
    latest = latest_scores()
    series = trend()
    return {"rows": [{"name": name, **latest.get(name, {})} for name in PROJECTIONS],
            "trend_json": json.dumps(series), "has_trend": bool(series["x"]), "days": TREND_DAYS}


def consistency_reports(params: Params) -> dict[str, Any]:
    jobs = Job.objects.filter(kind=Job.Kind.CONSISTENCY_CHECK)[:30]
    return {"rows": [{**job_row(j), "result": j.result} for j in jobs]}


def report_of(job: Job) -> dict[str, Any]:
    """A finished check's report for its job page ({} for other jobs)."""
    if job.kind != Job.Kind.CONSISTENCY_CHECK or not job.result.get("projections"):
        return {}
    report = dict(job.result)
    report["shown"] = len(report.get("differences", []))
    report["rebuild"] = sorted({d["projection"] for d in report.get("differences", []) if not d.get("user")})
    return report
