"""Consistency checks as jobs: the action layer, a real Celery worker, the command line, the pages, repair."""
from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client

from lucent_admin.operations import actions, schedules, thresholds
from lucent_admin.operations.audit import Actor
from lucent_admin.operations.models import AuditEntry, Job, ThresholdValue
from projections.keys import KeySpace
from projections.queries import Queries
from tests.fixtures.jobs import finished
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)  # the worker thread must see the committed job rows


@pytest.fixture
def checker(ops):
    ops.user_permissions.add(*Permission.objects.filter(codename="run_consistency_check"))
    return get_user_model().objects.get(pk=ops.pk)  # permissions are cached per object


def run_check(actor: Actor, **scope) -> Job:
    result = actions.do_check_consistency(actor, **scope)
    assert result.ok, result.message
    return wait_until(lambda: finished(result.job), 60, what="the check to finish on the worker")


def test_a_check_finds_a_corrupted_user_and_its_repair_makes_the_next_check_clean(
        projected: Queries, worker, checker, redis_client) -> None:
    users = [r.user_id for r in projected.top_portfolios(5)]
    clean = run_check(Actor.of(checker), users=users)
    assert clean.state == Job.State.SUCCEEDED and clean.result["score"] == 1.0 and clean.result["differences"] == []
    damaged = users[1]
    redis_client.hset(KeySpace("portfolio").portfolio(damaged), "tradeCount", "4242")

    report = run_check(Actor.of(checker), users=users)

    assert report.result["users_to_repair"] == [damaged] and report.result["score"] < 1.0
    (difference,) = report.result["differences"]
    assert (difference["key"], difference["field"], difference["kind"], difference["actual"]) == (
        f"portfolio:{damaged}", "tradeCount", "value differs", "4242")
    assert difference["event"]["stream"] == f"trades-{damaged}" and "outside writer" in difference["cause"]
    assert "1 users to repair" in report.events.last().message
    repair = actions.do_repair(Actor.of(checker), report.pk)
    assert repair.ok and "a per-user rebuild" in repair.message
    rebuilt = wait_until(lambda: finished(repair.job), 60, what="the repair to finish")
    assert rebuilt.kind == Job.Kind.REBUILD_USERS and rebuilt.params["users"] == [damaged]
    assert run_check(Actor.of(checker), users=users).result["differences"] == []
    outcomes = set(AuditEntry.objects.filter(action__startswith="consistency.").values_list("action", "outcome"))
    assert outcomes == {("consistency.check", "ok"), ("consistency.repair", "ok")}


def test_bad_scopes_are_refused_naming_the_field(checker) -> None:
    assert "scope: give users, a sample size or everything" in actions.do_check_consistency(Actor.of(checker)).message
    assert "sample: between 1 and 10,000" in actions.do_check_consistency(Actor.of(checker), sample=20_000).message
    assert "projection: Projection must be one of" in actions.do_check_consistency(Actor.of(checker), projection="market",
                                                                        sample=5).message
    assert "not a user id" in actions.do_check_consistency(Actor.of(checker), users=["bad user"]).message
    assert not Job.objects.exists()
    assert AuditEntry.objects.filter(action="consistency.check", outcome="failed").count() == 4
    assert "there is no consistency check 999" in actions.do_repair(Actor.of(checker), 999).message


def test_without_the_permission_a_check_is_denied_and_audited(client: Client, ops) -> None:
    client.force_login(ops)  # may rebuild, may not check
    response = client.post("/consistency/check/", {"scope": "sample", "sample": "5"})
    assert response.status_code == 403 and not Job.objects.exists()
    assert AuditEntry.objects.get(action="consistency.check").outcome == "denied"


def test_the_command_line_checks_with_a_progress_bar_and_says_so_in_its_exit_status(
        projected: Queries, worker, redis_client) -> None:
    get_user_model().objects.create_superuser("operator", password="pw-op-123")
    out, err = io.StringIO(), io.StringIO()
    call_command("consistency", "--sample", "4", stdout=out, stderr=err)  # consistent: returns (exit status 0)
    assert "consistency 100.00%" in out.getvalue() and "0 differences" in out.getvalue()
    assert "queued as job" in err.getvalue() and " users" in err.getvalue()  # the bar's summary line off a terminal
    user = projected.top_portfolios(1)[0].user_id
    redis_client.zadd(KeySpace("portfolio").portfolio_values(), {user: 1.0})
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("consistency", "--user", user, "--projection", "portfolio", "--json", stdout=out, stderr=io.StringIO())
    assert exited.value.code == 1
    report = json.loads(out.getvalue())
    assert report["users_to_repair"] == [user] and report["differences"][0]["kind"] == "score differs"
    out = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("consistency", "--user", user, "--repair", stdout=out, stderr=io.StringIO())
    assert "repair queued as job" in out.getvalue()


def test_scheduled_checks_sample_in_turn_and_repair_by_the_recovery_rule(projected: Queries, worker, redis_client,
                                                                        settings) -> None:
    settings.LUCENT_CONSISTENCY_SAMPLE = 50  # more than the 12 simulated users: one check covers everyone
    ThresholdValue.objects.create(name="repair", value=0, updated_by="test")  # the rule off: found, not repaired
    thresholds.forget()
    user = projected.top_portfolios(1)[0].user_id
    redis_client.delete(KeySpace("risk").user_risk(user))
    off = schedules.schedule_consistency_check()
    job = wait_until(lambda: finished(off), 60, what="the scheduled check to finish")
    assert user in job.result["users_to_repair"] and "repair_job" not in job.result

    ThresholdValue.objects.filter(name="repair").update(value=1)  # on (the default): repaired at once
    thresholds.forget()
    user = projected.top_portfolios(1)[0].user_id
    redis_client.delete(KeySpace("risk").user_risk(user))  # e.g. evicted

    job_id = schedules.schedule_consistency_check()

    assert job_id is not None
    job = wait_until(lambda: finished(job_id), 60, what="the scheduled check to finish")
    assert job.requested_by == "system: schedule" and user in job.result["users_to_repair"]
    missing = [d for d in job.result["differences"] if d["kind"] == "missing key"]
    assert missing and "checkpoint is intact" in missing[0]["cause"]
    repair = wait_until(lambda: finished(job.result["repair_job"]), 60, what="the automatic repair")
    assert repair.state == Job.State.SUCCEEDED and projected.risk_profile(user) is not None


def test_the_pages_show_scores_reports_and_the_differences_explained(client: Client, projected: Queries, worker,
                                                                     checker, redis_client) -> None:
    user = projected.top_portfolios(1)[0].user_id
    client.force_login(checker)
    page = client.get("/consistency/").content.decode()
    assert "never checked" in page and "No consistency check yet" in page and "Check a sample" in page
    redis_client.hset(KeySpace("portfolio").portfolio(user), "tradeCount", "4242")
    response = client.post("/consistency/check/", {"scope": "user", "user_id": user}, follow=True)
    assert f"Consistency check of {user} queued as job".encode() in response.content
    job = wait_until(lambda: finished(Job.objects.get(kind=Job.Kind.CONSISTENCY_CHECK).pk), 60, what="the check")
    detail = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "Consistency report" in detail and "tradeCount" in detail and "4242" in detail and "outside writer" in detail
    assert 'data-action="repair"' in detail
    scores = client.get("/consistency/").content.decode()
    assert f"job {job.pk}" in scores and "data-trend=" in scores and "66.66%" in scores  # 2 of 3 projections clean
    mine = client.get("/user/", {"user": user}).content.decode()
    assert "Check consistency" in mine and "Latest consistency check" in mine and "tradeCount" in mine
    assert "1 difference in this user" in mine
    overview = client.get("/").content.decode()
    assert 'data-field="consistency-score"' in overview
    bad = client.post("/consistency/check/", {"scope": "user"}, follow=True).content.decode()
    assert "user_id: Give the user id to check." in bad


def test_checking_everything_replays_each_projection_shared_read_models_included(
        projected: Queries, worker, checker, redis_client) -> None:
    market = run_check(Actor.of(checker), everything=True, projection="market")
    assert market.state == Job.State.SUCCEEDED and market.result["scores"] == {"market": 1.0}
    assert market.unit == "events" and market.done == market.result["events"] > 0
    assert market.result["per_projection"]["market"]["checked"] > 1
    redis_client.zadd(KeySpace("portfolio").portfolio_values(), {"ghost-user": 3.0})
    everything = run_check(Actor.of(checker), everything=True)
    assert set(everything.result["scores"]) == {"portfolio", "risk", "market", "leaderboards"}
    assert everything.done == everything.result["events"] > market.done  # counted on across the projections
    (stray,) = everything.result["differences"]
    assert (stray["key"], stray["field"], stray["kind"]) == ("portfolio-values", "ghost-user", "ranking member extra")
    assert everything.result["users_to_repair"] == [] and everything.result["scores"]["portfolio"] < 1.0
    page = Client()
    page.force_login(checker)
    detail = page.get(f"/jobs/{everything.pk}/").content.decode()
    assert "a full rebuild repairs them" in detail and "/projections/portfolio/rebuild/" in detail
