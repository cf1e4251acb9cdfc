"""The action layer as a service: every ``do_*`` called as the console, the command line and recovery call it, with
jobs run in this process (``jobs.run``): no worker, no market, a real Redis and an empty embedded event store.

What an operator notices of it: bad input refused with the field named and nothing queued, a missing permission
refused before anything else, every attempt in the audit log with its outcome, asking twice answering with the
same job, two-person approval, and a queued job that runs, or is cancelled, as its page says.
"""
from __future__ import annotations

from collections.abc import Callable

import pytest

from lucent_admin.operations import actions, jobs
from lucent_admin.operations.audit import CHECK_CONSISTENCY, Actor, Result, refuse_input
from lucent_admin.operations.models import AuditEntry, Job
from lucent_admin.operations.roles import OPERATORS
from tests.accounts import account

pytestmark = pytest.mark.django_db

EVENT_ID = "0b6f6a2e-3f4e-4d0b-9d55-6c3a0c1f2a11"


@pytest.fixture
def store(settings, eventstore_uri: str, redis_client) -> str:
    """The session's embedded event store (no market in it is needed) and an empty Redis."""
    settings.EVENTSTORE_URI = eventstore_uri
    return eventstore_uri


@pytest.fixture
def operator():
    return account("olga", "pw-olga-123", role=OPERATORS)


REFUSED: list[tuple[str, Callable[[Actor], Result], str]] = [
    ("acknowledge", lambda a: actions.do_acknowledge_alert(a, "u1", "bad id!"), "alert_id: Alert id must be 1–64"),
    ("acknowledge note", lambda a: actions.do_acknowledge_alert(a, "u1", "a1", "n" * 5000), "note: Note must be at most"),
    ("retry", lambda a: actions.do_retry_parked(a, "risk", "nope"), "event_id: Event must be an event id"),
    ("park", lambda a: actions.do_park_bad_event(a, "nope", EVENT_ID), "projection: Projection must be one of"),
    ("resync", lambda a: actions.do_resync(a, "portfolios"), "projection: Projection must be one of portfolio, risk"),
    ("rebuild users", lambda a: actions.do_rebuild_users(a, ["ok", "not ok"]), "users: 'not ok' is not a user id"),
    ("rebuild users none", lambda a: actions.do_rebuild_users(a, []), "users: give at least one user id"),
    ("rebuild", lambda a: actions.do_rebuild(a, "risk", "risks"), "confirm: type the projection's name"),
    ("drop", lambda a: actions.do_drop_generation(a, "risk", 0), "generation: a generation number (1 or more)"),
    ("check scope", lambda a: actions.do_check_consistency(a), "scope: give users, a sample size or everything"),
    ("check sample", lambda a: actions.do_check_consistency(a, sample=20_000), "sample: between 1 and 10,000"),
    ("check projection", lambda a: actions.do_check_consistency(a, "market", sample=5), "projection: Projection must be one"),
    ("thresholds", lambda a: actions.do_change_thresholds(a, {"health_stall_s": 0.0}), "health_stall_s: must be between 1"),
    ("repair", lambda a: actions.do_repair(a, 999), "job: there is no consistency check 999"),
    ("approve", lambda a: actions.do_approve_job(a, 999), "job: there is no job 999"),
]


@pytest.mark.parametrize(("name", "act", "said"), REFUSED, ids=[r[0] for r in REFUSED])
def test_bad_input_is_refused_naming_the_field_audited_and_nothing_is_queued(store, operator, name, act, said) -> None:
    result = act(Actor.of(operator))
    assert not result.ok and not result.denied and result.message.startswith(said), result.message
    entry = AuditEntry.objects.get()
    assert (entry.actor_name, entry.outcome, entry.detail) == ("olga", "failed", result.message)
    assert not Job.objects.exists()


def test_the_command_line_gets_the_same_checks_as_the_console(store) -> None:
    result = actions.do_retry_parked(Actor.cli(), "risk", "nope")
    assert result.message.startswith("event_id: Event must be an event id")
    assert AuditEntry.objects.get().actor_name.startswith("cli:")


def test_a_missing_permission_is_the_answer_before_the_input_is_looked_at(store) -> None:
    viewer = account("vera", "pw-vera-123")
    result = actions.do_rebuild_users(Actor.of(viewer), ["not ok"])
    assert result.denied and "operations.run_rebuild" in result.message
    assert AuditEntry.objects.get().outcome == "denied" and not Job.objects.exists()


def test_text_that_cannot_become_an_argument_is_refused_through_the_same_layer(store, operator) -> None:
    result = refuse_input(Actor.of(operator), CHECK_CONSISTENCY, "sample", "sample: Sample must be a whole number")
    assert not result.ok and result.message == "sample: Sample must be a whole number"
    assert AuditEntry.objects.get().outcome == "failed"
    viewer = account("vera", "pw-vera-123")
    assert refuse_input(Actor.of(viewer), CHECK_CONSISTENCY, "sample", "sample: whatever").denied


def test_asking_twice_answers_with_the_same_job_and_a_new_list_is_a_new_job(store, operator) -> None:
    first = actions.do_rebuild_users(Actor.of(operator), ["alice", "bob"])
    again = actions.do_rebuild_users(Actor.of(operator), ["alice", "bob", "alice"])
    other = actions.do_rebuild_users(Actor.of(operator), ["alice"])
    assert first.ok and again.ok and other.ok
    assert again.job == first.job and "already job" in again.message and other.job != first.job
    assert Job.objects.get(pk=first.job).params["users"] == ["alice", "bob"]
    assert list(AuditEntry.objects.values_list("outcome", flat=True)) == ["ok", "ok", "ok"]


def test_a_queued_job_runs_in_process_to_its_end_with_its_history(store, operator) -> None:
    job_id = actions.do_rebuild_users(Actor.of(operator), ["nobody-1", "nobody-2"]).job
    assert job_id is not None

    said = jobs.run(job_id)

    job = Job.objects.get(pk=job_id)
    assert job.state == Job.State.SUCCEEDED and (job.done, job.total) == (2, 2), said
    assert list(job.events.values_list("state", flat=True)) == ["queued", "running", "succeeded"]
    assert jobs.run(job_id) == f"job {job_id} is succeeded; nothing to run"  # a redelivery of a finished job
    assert Job.objects.get(pk=job_id).attempts == 1


def test_a_job_cancelled_before_it_starts_never_runs(store, operator) -> None:
    job_id = actions.do_rebuild_users(Actor.of(operator), ["nobody"]).job
    assert job_id is not None
    cancelled = actions.do_cancel_job(Actor.of(operator), job_id)
    assert cancelled.ok
    jobs.run(job_id)
    job = Job.objects.get(pk=job_id)
    assert job.state == Job.State.CANCELLED and job.done == 0
    again = actions.do_cancel_job(Actor.of(operator), job_id)
    assert again.ok and again.message == f"job {job_id} already cancelled; nothing to cancel"  # idempotent


def test_two_person_approval_needs_another_account_with_the_permission(store, operator, settings) -> None:
    settings.LUCENT_REBUILD_APPROVAL = True
    asked = actions.do_rebuild(Actor.of(operator), "risk", "risk")
    assert asked.ok and asked.job is not None and "second operator approves" in asked.message
    assert Job.objects.get(pk=asked.job).state == Job.State.PENDING_APPROVAL
    assert jobs.run(asked.job) and Job.objects.get(pk=asked.job).state == Job.State.PENDING_APPROVAL  # not before

    mine = actions.do_approve_job(Actor.of(operator), asked.job)
    assert not mine.ok and "a second operator must approve it" in mine.message
    viewer = account("vera", "pw-vera-123")
    assert actions.do_approve_job(Actor.of(viewer), asked.job).denied
    second = account("otto", "pw-otto-123", role=OPERATORS)
    approved = actions.do_approve_job(Actor.of(second), asked.job)
    assert approved.ok and Job.objects.get(pk=asked.job).state == Job.State.QUEUED

    automatic = actions.do_rebuild(Actor("system: recovery", automatic=True), "market", None)
    assert automatic.ok and Job.objects.get(pk=automatic.job).state == Job.State.QUEUED  # the system is exempt
    outcomes = list(AuditEntry.objects.filter(action="job.approve").order_by("id").values_list("actor_name", "outcome"))
    assert outcomes == [("olga", "failed"), ("vera", "denied"), ("otto", "ok")]
