"""Full rebuild and rollback as jobs on a real Celery worker: dry run, typed confirmation, single-flight, flip, rollback."""
from __future__ import annotations

import io

import pytest
import redis
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.test import Client

from lucent_admin.operations import actions, queue, schedules
from lucent_admin.operations.audit import Actor
from lucent_admin.operations.models import AuditEntry, Job
from projections import keys, layout
from projections.keys import KeySpace
from projections.maintenance.generations import live_generation
from projections.maintenance.retention import kept_generation
from projections.queries import Queries
from tests.accounts import account
from tests.fixtures.jobs import finished
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_dry_run_then_a_rebuild_from_the_projections_page_flips_and_rolls_back(
        client: Client, projected: Queries, worker, ops, redis_client: redis.Redis) -> None:
    client.force_login(ops)
    before = projected.top_portfolios(5)
    plan = client.get("/projections/portfolio/rebuild/").content.decode()
    assert "generation 2, beside the live generation 1" in plan and 'data-field="plan-memory"' in plan
    wrong = client.post("/projections/portfolio/rebuild/", {"confirm": "portfolios"}).content.decode()
    assert "type the projection&#x27;s name" in wrong and not Job.objects.exists()

    response = client.post("/projections/portfolio/rebuild/", {"confirm": "portfolio"}, follow=True)

    job_id = Job.objects.get().pk
    assert response.redirect_chain[-1][0] == f"/jobs/{job_id}/"
    again = actions.do_rebuild(Actor.of(ops), "portfolio", "portfolio")
    assert not again.ok and f"job {job_id}" in again.message  # single-flight
    job = wait_until(lambda: finished(job_id), 60, what="the rebuild to finish")
    assert job.state == Job.State.SUCCEEDED, job.error
    assert live_generation(redis_client, "portfolio") == 2 and projected.top_portfolios(5) == before
    assert job.result["to_generation"] == 2 and job.result["difference_count"] == 0
    kept = kept_generation(redis_client, "portfolio")
    assert kept is not None and kept.generation == 1
    page = client.get("/projections/").content.decode()
    assert "Roll back to generation 1" in page and 'data-field="live-generation">2<' in page

    response = client.post("/projections/portfolio/rollback/", follow=True)  # one click

    rollback_id = Job.objects.filter(kind=Job.Kind.ROLLBACK).get().pk
    job = wait_until(lambda: finished(rollback_id), 60, what="the rollback to finish")
    assert job.state == Job.State.SUCCEEDED, job.error
    assert live_generation(redis_client, "portfolio") == 1 and projected.top_portfolios(5) == before
    audited = list(AuditEntry.objects.filter(action__startswith="rebuild.").values_list("action", "outcome"))
    assert ("rebuild.projection", "ok") in audited and ("rebuild.rollback", "ok") in audited
    assert ("rebuild.projection", "failed") in audited  # the wrong name, and the second request


def test_kept_generations_are_dropped_after_the_retention_and_nothing_else(
        projected: Queries, worker, ops, redis_client: redis.Redis, settings) -> None:
    job_id = actions.do_rebuild(Actor.of(ops), "risk", "risk").job
    assert wait_until(lambda: finished(job_id), 60, what="the rebuild").state == Job.State.SUCCEEDED
    live_keys = {k for k in redis_client.scan_iter(match=keys.generation_pattern("risk", 2))}
    settings.LUCENT_GENERATION_RETENTION_HOURS = 0

    (drop_id,) = schedules.drop_expired_generations()

    job = wait_until(lambda: finished(drop_id), 30, what="the drop")
    assert job.state == Job.State.SUCCEEDED and job.requested_by == "system: retention"
    assert not list(redis_client.scan_iter(match=keys.generation_pattern("risk", 1)))
    assert {k for k in redis_client.scan_iter(match=keys.generation_pattern("risk", 2))} == live_keys
    assert redis_client.exists(KeySpace("portfolio", 1).checkpoint)  # other projections untouched
    assert kept_generation(redis_client, "risk") is None and schedules.drop_expired_generations() == []


def test_the_command_line_dry_run_and_refusals(projected: Queries) -> None:
    get_user_model().objects.create_superuser("operator", password="pw-op-123")
    out = io.StringIO()
    call_command("rebuild", "market", "--dry-run", stdout=out)
    assert "into generation 2 (1 partition, as the live one) beside generation 1" in out.getvalue()
    assert not Job.objects.exists()
    with pytest.raises(CommandError, match="--partitions: Partitions must be 1 for market: it is keyed by pair"):
        call_command("rebuild", "market", "--partitions", "4", "--yes")
    with pytest.raises(CommandError, match="--partitions: Partitions must be a power of two .* got 3"):
        call_command("rebuild", "portfolio", "--partitions", "3", "--dry-run")
    out = io.StringIO()
    call_command("rebuild", "portfolio", "--partitions", "8", "--dry-run", stdout=out)
    assert "(8 partitions; the live one has 1: the members move to the new ones at the flip)" in out.getvalue()
    with pytest.raises(CommandError, match="has no kept generation"):
        call_command("rollback", "market", "--yes")
    out = io.StringIO()
    call_command("rebuild", "market", "--yes", stdout=out)
    assert "queued as job" in out.getvalue()
    entry = AuditEntry.objects.get(action="rebuild.projection")
    assert entry.actor_name.endswith(" as operator") and entry.target == "market"


def test_a_rebuild_from_the_console_into_four_partitions_and_the_rollback_to_one(
        client: Client, projected: Queries, worker, ops, redis_client: redis.Redis, settings) -> None:
    settings.LUCENT_REBUILD_WORKERS = 2  # a fold job is queued for half the partitions; this one worker is busy
    client.force_login(ops)
    before = (projected.top_portfolios(10), projected.user_rank(projected.top_portfolios(1)[0].user_id))
    plan = client.get("/projections/portfolio/rebuild/").content.decode()
    assert 'data-field="plan-partitions">1 partition, as the live one<' in plan
    assert '<option value="1" selected>1 partition (as the live one)</option>' in plan and '<option value="16">' in plan
    bad = client.post("/projections/portfolio/rebuild/", {"confirm": "portfolio", "partitions": "3"}).content.decode()
    assert "partitions: Partitions must be a power of two from 1 to 1,024" in bad and not Job.objects.exists()

    client.post("/projections/portfolio/rebuild/", {"confirm": "portfolio", "partitions": "4"})

    job = wait_until(lambda: finished(Job.objects.get(kind=Job.Kind.REBUILD).pk), 60, what="the rebuild to finish")
    assert job.state == Job.State.SUCCEEDED and job.params["partitions"] == 4, job.error
    assert job.result["groups"] == 2  # what no worker took, the rebuild folded itself
    fold = wait_until(lambda: finished(Job.objects.get(kind=Job.Kind.FOLD).pk), 30, what="the fold job to end")
    assert (fold.state, fold.requested_by, fold.target) == (Job.State.SUCCEEDED, f"job {job.pk}", "portfolio")
    assert fold.events.last().message == f"nothing left to fold for job {job.pk}"
    assert job.events.filter(message__startswith=f"2 fold groups: this job folds one, fold job {fold.pk} the others").exists()
    assert job.result["difference_count"] == 0 and job.result["compared"] > 0  # users compared across the split
    assert live_generation(redis_client, "portfolio") == 2 and layout.recorded(redis_client, "portfolio", 2) == 4
    assert projected.spread("portfolio").count == 4
    assert (projected.top_portfolios(10), projected.user_rank(before[0][0].user_id)) == before
    assert AuditEntry.objects.get(action="rebuild.projection", outcome="ok").params["partitions"] == 4

    client.post("/projections/portfolio/rollback/")

    job = wait_until(lambda: finished(Job.objects.get(kind=Job.Kind.ROLLBACK).pk), 60, what="the rollback to finish")
    assert job.state == Job.State.SUCCEEDED, job.error
    assert live_generation(redis_client, "portfolio") == 1 and projected.spread("portfolio").count == 1
    assert (projected.top_portfolios(10), projected.user_rank(before[0][0].user_id)) == before


def test_without_the_permission_the_rebuild_page_offers_nothing_and_a_post_is_denied(client: Client, projected: Queries) -> None:
    viewer = account("viewer", "pw-view-123")
    viewer.user_permissions.add(*Permission.objects.filter(codename="acknowledge_alert"))
    client.force_login(viewer)
    plan = client.get("/projections/portfolio/rebuild/").content.decode()
    assert "You need the permission" in plan and "Start the rebuild" not in plan
    assert client.post("/projections/portfolio/rebuild/", {"confirm": "portfolio"}).status_code == 403
    assert AuditEntry.objects.get(action="rebuild.projection").outcome == "denied"


def test_with_two_person_approval_a_second_operator_starts_the_rebuild(client: Client, projected: Queries, worker, ops,
                                                                       redis_client: redis.Redis, settings) -> None:
    settings.LUCENT_REBUILD_APPROVAL = True
    asked = actions.do_rebuild(Actor.of(ops), "leaderboards", "leaderboards")
    job = Job.objects.get(pk=asked.job)
    assert asked.ok and "second operator approves" in asked.message and job.state == Job.State.PENDING_APPROVAL
    ops.user_permissions.add(*Permission.objects.filter(codename="approve_job"))
    ops = get_user_model().objects.get(pk=ops.pk)  # permissions are cached per instance
    mine = actions.do_approve_job(Actor.of(ops), job.pk)
    assert not mine.ok and "a second operator must approve it" in mine.message  # not the one who asked
    other = account("ops2", "pw-ops2-123")
    assert actions.do_approve_job(Actor.of(other), job.pk).denied  # without the approve permission
    other.user_permissions.add(*Permission.objects.filter(codename="approve_job"))
    other = get_user_model().objects.get(pk=other.pk)  # permissions are cached per instance
    client.force_login(other)
    assert "Waits for a second operator" in client.get(f"/jobs/{job.pk}/").content.decode()

    response = client.post(f"/jobs/{job.pk}/approve/", follow=True)

    assert b"approved; it starts on a worker" in response.content
    job = wait_until(lambda: finished(job.pk), 60, what="the approved rebuild to finish")
    assert job.state == Job.State.SUCCEEDED and job.approved_by == "ops2"
    assert live_generation(redis_client, "leaderboards") == 2
    outcomes = list(AuditEntry.objects.filter(action="job.approve").order_by("id").values_list("actor_name", "outcome"))
    assert outcomes == [("ops", "failed"), ("ops2", "denied"), ("ops2", "ok")]


def test_differences_above_the_budget_wait_for_an_operator_who_flips_anyway(client: Client, projected: Queries, worker,
                                                                             ops, redis_client: redis.Redis) -> None:
    from lucent_admin.operations.queue import AWAITING_DECISION

    user = projected.top_portfolios(1)[0].user_id
    redis_client.hset(KeySpace("portfolio").portfolio(user), "tradeCount", "424242")  # the live generation is damaged
    job_id = actions.do_rebuild(Actor.of(ops), "portfolio", "portfolio").job
    wait_until(lambda: Job.objects.get(pk=job_id).phase.startswith(AWAITING_DECISION), 60,
               what="the rebuild to stop at the differences")
    assert live_generation(redis_client, "portfolio") == 1  # nothing flipped yet
    client.force_login(ops)
    page = client.get(f"/jobs/{job_id}/").content.decode()
    assert "Flip anyway" in page and "tradeCount" in page and "424242" in page

    response = client.post(f"/jobs/{job_id}/flip-anyway/", follow=True)

    assert b"flips anyway" in response.content
    job = wait_until(lambda: finished(job_id), 60, what="the rebuild to flip")
    assert job.state == Job.State.SUCCEEDED and job.result["difference_count"] >= 1
    assert live_generation(redis_client, "portfolio") == 2
    assert projected.portfolio_summary(user).trade_count != 424242  # the rebuilt, right value is live
    assert AuditEntry.objects.get(action="rebuild.flip_anyway").outcome == "ok"


def test_job_approve_on_the_command_line_needs_a_named_active_approver_who_did_not_ask(redis_client: redis.Redis) -> None:
    import getpass

    def approver(name: str, **fields: object):
        user = account(name, "pw-appr-123", **fields)
        user.user_permissions.add(*Permission.objects.filter(codename="approve_job"))
        return user

    def approve(job: Job, *args: str) -> str:
        try:
            call_command("job-approve", str(job.pk), *args, stdout=io.StringIO(), stderr=io.StringIO())
        except CommandError as exc:
            return str(exc)
        return "approved"

    approver("operator"), approver("alice"), approver("gone", is_active=False), account("nobody", "pw-nobody-123")
    job = queue.create("rebuild", "portfolio", {"projection": "portfolio", "account": "alice"}, "alice", None, "events",
                      approval=True)
    assert "--as" in approve(job)  # no default account: the approver must be named
    assert "no account 'ghost'" in approve(job, "--as", "ghost")
    assert "inactive" in approve(job, "--as", "gone")
    assert "a second operator must approve it" in approve(job, "--as", "alice")  # the requester
    assert "you need the permission 'operations.approve_job'" in approve(job, "--as", "nobody")
    by_cli = queue.create("rebuild", "risk", {"projection": "risk", "account": "alice"},
                         f"cli:{getpass.getuser()} as alice", None, "events", approval=True)
    assert "a second operator must approve it" in approve(by_cli, "--as", "operator")  # one OS user, two accounts
    assert approve(job, "--as", "operator") == "approved"
    approved = AuditEntry.objects.filter(action="job.approve", outcome="ok").get()
    assert approved.actor_name == f"cli:{getpass.getuser()} as operator" and Job.objects.get(pk=job.pk).state == "queued"
