"""Per-user rebuild jobs: queued through the action layer, run by a real Celery worker, progress, cancel, resume."""
from __future__ import annotations

import getpass
import io
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from lucent_admin.operations import actions, jobs
from lucent_admin.operations.audit import Actor
from lucent_admin.operations.models import AuditEntry, Job
from projections import keys
from projections.keys import KeySpace
from projections.queries import Queries
from tests.accounts import account
from tests.fixtures.jobs import finished
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)  # the worker thread must see the committed job rows


def test_a_rebuild_job_restores_a_users_deleted_read_models(projected: Queries, worker, ops, redis_client) -> None:
    user = projected.top_portfolios(1)[0].user_id
    before = projected.portfolio_summary(user)
    redis_client.delete(KeySpace("portfolio").portfolio(user), KeySpace("risk").user_risk(user))
    assert projected.portfolio_summary(user) is None

    result = actions.do_rebuild_users(Actor.of(ops), [user])

    assert result.ok and "queued as job" in result.message
    job = wait_until(lambda: finished(result.job), 30, what="the job to finish on the worker")
    assert job.state == Job.State.SUCCEEDED and (job.done, job.total) == (1, 1)
    assert projected.portfolio_summary(user) == before
    assert projected.risk_profile(user) is not None
    assert job.result["users"][user]["portfolio"]["writes"] > 0
    states = list(job.events.values_list("state", flat=True))
    assert states == ["queued", "running", "succeeded"]
    entry = AuditEntry.objects.get(action="rebuild.users")
    assert (entry.actor_name, entry.target, entry.outcome) == ("ops", user, "ok")


def test_asking_twice_while_queued_gives_the_same_job(ops) -> None:
    first = actions.do_rebuild_users(Actor.of(ops), ["alice", "bob"])
    again = actions.do_rebuild_users(Actor.of(ops), ["alice", "bob", "alice"])
    assert first.job == again.job and "already job" in again.message
    assert Job.objects.count() == 1


def test_a_longer_user_list_sharing_the_first_200_characters_is_another_job(ops) -> None:
    users = [f"user-{n:04d}" for n in range(40)]  # 399 characters joined
    first = actions.do_rebuild_users(Actor.of(ops), users)
    longer = actions.do_rebuild_users(Actor.of(ops), [*users, "user-extra"])
    assert longer.ok and "queued as job" in longer.message and longer.job != first.job
    again = actions.do_rebuild_users(Actor.of(ops), [*users, "user-extra"])
    assert again.job == longer.job and "already job" in again.message  # the whole list, the same job


def test_a_job_is_never_run_twice_at_once(ops, redis_client) -> None:
    job_id = actions.do_rebuild_users(Actor.of(ops), ["alice"]).job
    redis_client.set(keys.job_lease(job_id), "another-worker", px=5000)  # a worker is running it
    assert "running on another-worker" in jobs.run(job_id)
    assert Job.objects.get(pk=job_id).state == Job.State.QUEUED


def test_a_redelivered_job_resumes_from_its_own_progress(projected: Queries, ops) -> None:
    users = [r.user_id for r in projected.top_portfolios(3)]
    job_id = actions.do_rebuild_users(Actor.of(ops), users).job
    done_before = {users[0]: {"portfolio": {"events": 1, "writes": 0, "checkpoint": 1}}}
    # the first delivery rebuilt one user, then its worker was killed: the row says so
    Job.objects.filter(pk=job_id).update(state=Job.State.RUNNING, done=1, attempts=1, result={"users": done_before})

    jobs.run(job_id)  # the redelivered task

    job = Job.objects.get(pk=job_id)
    assert job.state == Job.State.SUCCEEDED and job.attempts == 2 and job.done == 3
    assert job.result["users"][users[0]] == done_before[users[0]]  # not rebuilt again
    assert set(job.result["users"]) == set(users)
    assert any("resuming at 1 users" in m for m in job.events.values_list("message", flat=True))


def test_cancel_stops_a_running_job_within_a_second(projected: Queries, worker, ops) -> None:
    many = [f"nobody-{i}" for i in range(3000)]  # unknown users: each is cheap, the job is long
    job_id = actions.do_rebuild_users(Actor.of(ops), many).job
    wait_until(lambda: Job.objects.get(pk=job_id).done > 0, 30, what="the job to make progress")

    asked = time.monotonic()
    result = actions.do_cancel_job(Actor.of(ops), job_id)

    assert result.ok and "stops within a second" in result.message
    job = wait_until(lambda: finished(job_id), 5, what="the job to stop")
    assert time.monotonic() - asked < 2.0  # a second, plus slack for a loaded 2-core CI machine
    assert job.state == Job.State.CANCELLED and 0 < job.done < len(many)
    assert AuditEntry.objects.get(action="job.cancel").outcome == "ok"


def test_a_queued_job_is_cancelled_at_once(ops) -> None:
    job_id = actions.do_rebuild_users(Actor.of(ops), ["carol"]).job
    assert actions.do_cancel_job(Actor.of(ops), job_id).ok
    assert Job.objects.get(pk=job_id).state == Job.State.CANCELLED
    assert "nothing to run" in jobs.run(job_id)  # its task, delivered later, does nothing


def test_without_the_permission_a_rebuild_is_denied_and_audited(client: Client, projected: Queries) -> None:
    client.force_login(account("viewer", "pw-view-123"))
    response = client.post("/user/rebuild/", {"user_id": "user-0001"})
    assert response.status_code == 403 and not Job.objects.exists()
    entry = AuditEntry.objects.get(action="rebuild.users")
    assert (entry.target, entry.outcome) == ("user-0001", "denied")


def test_the_user_page_rebuilds_the_user_and_the_jobs_pages_show_it(client: Client, projected: Queries, worker,
                                                                      ops) -> None:
    user = projected.top_portfolios(1)[0].user_id
    client.force_login(ops)
    page = client.get("/user/", {"user": user}).content.decode()
    assert "Rebuild this user" in page and "This user has not been rebuilt or checked." in page
    response = client.post("/user/rebuild/", {"user_id": user}, follow=True)
    assert f"Rebuild of {user} queued as job".encode() in response.content
    job_id = Job.objects.get().pk
    wait_until(lambda: finished(job_id), 30, what="the job to finish")
    listing = client.get("/jobs/").content.decode()
    assert f'data-job="{job_id}"' in listing and "succeeded" in listing
    detail = client.get(f"/jobs/{job_id}/").content.decode()
    assert "History" in detail and "requested by ops" in detail and f"?user={user}" in detail
    assert client.get("/jobs/99999/").status_code == 200 and "There is no job 99999" in client.get("/jobs/99999/").content.decode()


def test_the_command_line_rebuilds_and_waits_with_a_progress_bar(projected: Queries, worker) -> None:
    get_user_model().objects.create_superuser("operator", password="pw-op-123")
    user = projected.top_portfolios(1)[0].user_id
    out, err = io.StringIO(), io.StringIO()
    call_command("rebuild-user", user, "--wait", stdout=out, stderr=err)
    assert "queued as job" in out.getvalue() and "succeeded: rebuilt 1 users" in out.getvalue()
    assert err.getvalue().startswith("job ") and "1/1" in err.getvalue()  # the bar's one summary line off a terminal
    entry = AuditEntry.objects.get(action="rebuild.users")
    assert entry.actor_name == f"cli:{getpass.getuser()} as operator"
    listing = io.StringIO()
    call_command("jobs", stdout=listing)
    assert "rebuild-users" in listing.getvalue() and "succeeded" in listing.getvalue()
    with pytest.raises(CommandError, match="there is no account 'nobody'"):
        call_command("rebuild-user", user, "--as", "nobody")
    with pytest.raises(CommandError, match="there is no job 424242"):
        call_command("job-cancel", "424242")
