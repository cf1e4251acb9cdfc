"""A job whose worker dies (kill -9) or loses its lease: the job is queued again, resumes, and ends as if nothing
happened; the run that lost its lease stops within a second and deletes nothing."""
from __future__ import annotations

import io
import signal
import threading
import time
from dataclasses import replace

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connections
from django.test import override_settings
from django.utils import timezone

from lucent_admin import bootstrap
from lucent_admin.operations import actions, jobs, queue, schedules
from lucent_admin.operations.audit import Actor
from lucent_admin.operations.models import Job, JobEvent
from projections import keys
from projections.maintenance.generations import live_generation
from projections.projector.runner import Runner
from projections.queries import Queries
from tests.fixtures.jobs import finished
from tests.integration.projections.helpers import generation_content, run_to_end
from tests.waiting import wait_until


def hold_rebuilds(client: redis.Redis, projection: str, held: bool) -> None:
    """Hold (or release) a rebuild of ``projection`` after its first batch: its status says the live projector lags
    a minute behind, and a rebuild waits while it lags (throttled). No live projector runs here to say otherwise."""
    client.hset(keys.status(projection), "lagSeconds", "60" if held else "0")


def held_midway(job_id: int) -> bool:
    job = Job.objects.get(pk=job_id)
    return job.done > 0 and job.phase.startswith("throttled")


def test_a_rebuild_survives_its_worker_killed_with_minus_9(live_stack) -> None:
    with override_settings(EVENTSTORE_URI=live_stack.env["EVENTSTORE_URI"]):
        call_command("simulate", events=8000, seed=41, users=30, stderr=io.StringIO(), stdout=io.StringIO())
        call_command("run_projector", "--projection", "risk", exit_when_caught_up=True, stderr=io.StringIO())
    client = redis.Redis.from_url(settings.REDIS_URL)
    live_stack.env["LUCENT_BATCH_SIZE"] = "10"  # small batches: the rebuild is held after its first few events
    hold_rebuilds(client, "risk", True)
    first = live_stack.start_worker()
    chief = get_user_model().objects.create_superuser("chief", password="pw-chief-123")
    job_id = actions.do_rebuild(Actor.of(chief), "risk", "risk").job
    wait_until(lambda: held_midway(job_id), 60, what="the rebuild to be midway (folded some events, held)")

    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = Job.objects.get(pk=job_id).done
    hold_rebuilds(client, "risk", False)
    live_stack.start_worker()
    wait_until(lambda: schedules.requeue_orphans() == [job_id], 40, what="the orphaned job to be queued again")

    job = wait_until(lambda: finished(job_id), 120, what="the resumed rebuild to finish")
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.attempts == 2 and 0 < killed_at < job.done
    messages = list(job.events.values_list("message", flat=True))
    assert any("is gone; queued again" in m for m in messages)
    assert live_generation(client, "risk") == 2
    fresh_url = settings.REDIS_URL.rsplit("/", 1)[0] + "/15"
    fresh = redis.Redis.from_url(fresh_url)
    fresh.flushdb()
    run_to_end(fresh_url, live_stack.env["EVENTSTORE_URI"], projections=("risk",))
    assert generation_content(client, 2, "risk") == generation_content(fresh, 1, "risk")  # one writer, nothing lost
    fresh.flushdb()


def _fresh_projection(client: redis.Redis, uri: str, projection: str, generation: int) -> None:
    fresh_url = settings.REDIS_URL.rsplit("/", 1)[0] + "/15"
    fresh = redis.Redis.from_url(fresh_url)
    fresh.flushdb()
    run_to_end(fresh_url, uri, projections=(projection,))
    assert generation_content(client, generation, projection) == generation_content(fresh, 1, projection)
    fresh.flushdb()


def test_a_rebuild_that_loses_its_lease_stops_and_its_requeued_run_finishes_it(live_stack) -> None:
    """The job's lease deleted under a running rebuild (a Redis failover longer than the lease): the sweep queues
    it again at once; the first run stops within a second without writing the row's state or deleting anything,
    the second takes the generation over from its progress, flips, and the generation equals a fresh projection."""
    with override_settings(EVENTSTORE_URI=live_stack.env["EVENTSTORE_URI"]):
        call_command("simulate", events=8000, seed=43, users=30, stderr=io.StringIO(), stdout=io.StringIO())
        call_command("run_projector", "--projection", "risk", exit_when_caught_up=True, stderr=io.StringIO())
    client = redis.Redis.from_url(settings.REDIS_URL)
    live_stack.env["LUCENT_BATCH_SIZE"] = "10"  # small batches: the rebuild is held after its first few events
    hold_rebuilds(client, "risk", True)
    live_stack.start_worker()
    live_stack.start_worker()  # the requeued task runs on the other one, while the first run may still be going
    chief = get_user_model().objects.create_superuser("chief", password="pw-chief-123")
    job_id = actions.do_rebuild(Actor.of(chief), "risk", "risk").job
    wait_until(lambda: held_midway(job_id), 60, what="the rebuild to be midway (folded some events, held)")

    lost_at = timezone.now()
    client.delete(keys.job_lease(job_id))
    assert schedules.requeue_orphans() == [job_id]

    stopped = wait_until(lambda: JobEvent.objects.filter(job_id=job_id, message__contains="lost its lease").first(), 10,
                         what="the first run to stop")
    assert (stopped.at - lost_at).total_seconds() < 1.0, stopped.at - lost_at
    hold_rebuilds(client, "risk", False)
    job = wait_until(lambda: finished(job_id), 120, what="the requeued rebuild to finish")
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.attempts == 2 and live_generation(client, "risk") == 2
    states = list(job.events.values_list("state", flat=True))
    assert Job.State.FAILED not in states and Job.State.CANCELLED not in states
    _fresh_projection(client, live_stack.env["EVENTSTORE_URI"], "risk", 2)  # one writer at a time, nothing lost


def test_a_rebuild_whose_worker_is_paused_past_its_lease_is_finished_by_another_and_the_paused_run_writes_nothing(
        live_stack) -> None:
    """A worker paused (SIGSTOP) longer than the job's lease: the sweep queues the job again and another worker
    resumes it; the paused one, continued while the other writes, stops at once: no state on the row, no write
    to the generation, nothing deleted."""
    with override_settings(EVENTSTORE_URI=live_stack.env["EVENTSTORE_URI"]):
        call_command("simulate", events=8000, seed=47, users=30, stderr=io.StringIO(), stdout=io.StringIO())
        call_command("run_projector", "--projection", "risk", exit_when_caught_up=True, stderr=io.StringIO())
    client = redis.Redis.from_url(settings.REDIS_URL)
    live_stack.env["LUCENT_BATCH_SIZE"] = "10"
    hold_rebuilds(client, "risk", True)
    workers = [live_stack.start_worker(), live_stack.start_worker()]
    chief = get_user_model().objects.create_superuser("chief", password="pw-chief-123")
    job_id = actions.do_rebuild(Actor.of(chief), "risk", "risk").job
    wait_until(lambda: held_midway(job_id), 60, what="the rebuild to be midway (folded some events, held)")
    job = Job.objects.get(pk=job_id)
    paused = next(w for w in workers if w.pid == int(job.worker.split(":")[1]))  # the worker token names its pid

    paused.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: not client.exists(keys.job_lease(job_id)), 30, what="the paused run's lease to expire")
        assert schedules.requeue_orphans() == [job_id]
        hold_rebuilds(client, "risk", False)
        wait_until(lambda: (j := Job.objects.get(pk=job_id)).attempts == 2 and j.done > job.done, 60,
                   what="the other worker to go on with the rebuild")
    finally:
        paused.send_signal(signal.SIGCONT)

    wait_until(lambda: JobEvent.objects.filter(job_id=job_id, message__contains="lost its lease").exists(), 10,
               what="the paused run to stop once continued")
    job = wait_until(lambda: finished(job_id), 120, what="the requeued rebuild to finish")
    assert job.state == Job.State.SUCCEEDED and job.attempts == 2, job.error
    states = list(job.events.values_list("state", flat=True))
    assert Job.State.FAILED not in states and Job.State.CANCELLED not in states
    assert live_generation(client, "risk") == 2
    _fresh_projection(client, live_stack.env["EVENTSTORE_URI"], "risk", 2)


def run_and_close(job_id: int, said: dict[str, str], name: str) -> None:
    """``jobs.run`` in a thread of this process, as a worker's thread would, closing the thread's database
    connection after (PostgreSQL cannot drop the test database while a connection is open)."""
    try:
        said[name] = jobs.run(job_id)
    finally:
        connections.close_all()


def test_a_job_that_loses_its_lease_stops_within_a_second_and_leaves_the_row_to_the_new_run(projected: Queries, ops,
                                                                                            redis_client) -> None:
    many = [f"nobody-{i}" for i in range(400)]  # unknown users: each is cheap, the job takes a few seconds
    job_id = actions.do_rebuild_users(Actor.of(ops), many).job
    said: dict[str, str] = {}
    first = threading.Thread(target=run_and_close, args=(job_id, said, "first"), daemon=True)
    first.start()
    wait_until(lambda: Job.objects.get(pk=job_id).done > 0, 30, what="the job to make progress")

    lost = time.monotonic()
    redis_client.delete(keys.job_lease(job_id))
    second = threading.Thread(target=run_and_close, args=(job_id, said, "second"), daemon=True)
    second.start()

    first.join(5)
    assert not first.is_alive() and time.monotonic() - lost < 2.0  # a second, plus slack for a loaded machine
    assert "lost its lease" in said["first"]
    second.join(90)
    job = Job.objects.get(pk=job_id)
    assert job.state == Job.State.SUCCEEDED and job.attempts == 2 and job.done == len(many), said
    states = list(job.events.values_list("state", flat=True))
    assert states.count(Job.State.SUCCEEDED) == 1 and states[-1] == Job.State.SUCCEEDED  # only the second run's
    assert Job.State.FAILED not in states and Job.State.CANCELLED not in states


def test_a_run_that_cannot_take_the_generation_lease_deletes_nothing(projected: Queries, worker, redis_client) -> None:
    """A rebuild's run finds its generation still written by an earlier run (its lease held): it stops with that
    reason, and its cleanup leaves the generation alone."""
    Runner(replace(bootstrap.runner_config("risk", exit_when_caught_up=True), generation=2, publish_status=False)).run()
    before = generation_content(redis_client, 2, "risk")
    assert before
    redis_client.set(keys.generation_lease("risk", 2), "an-earlier-run", px=60_000)
    job = queue.create(Job.Kind.REBUILD, "risk", {"projection": "risk", "generation": 2}, "test", None, "events")

    job = wait_until(lambda: finished(job.pk), 60, what="the run to give up")

    assert job.state == Job.State.FAILED and "an-earlier-run" in job.error, job.error
    assert generation_content(redis_client, 2, "risk") == before
    assert redis_client.get(keys.generation_lease("risk", 2)) == b"an-earlier-run"


pytestmark = pytest.mark.django_db(transaction=True)


def test_a_rebuild_redelivered_after_its_flip_settles_it_instead_of_failing(projected: Queries, ops, redis_client) -> None:
    """A worker killed between the flip and the job's row saying so: the redelivered run finds its generation
    live, flipped by its own earlier attempt, and finishes the bookkeeping (the job succeeds) instead of failing
    with "already live" and leaving an operator a failed rebuild that in fact went live."""
    job_id = actions.do_rebuild(Actor.of(ops), "risk", "risk").job
    assert "succeeded" in jobs.run(job_id)
    assert live_generation(redis_client, "risk") == 2
    # as the row stands when the worker dies right after the flip: running, the attempt's progress on it
    Job.objects.filter(pk=job_id).update(state=Job.State.RUNNING, finished_at=None, result={})
    redis_client.delete(keys.kept("risk"))

    said = jobs.run(job_id)
    job = Job.objects.get(pk=job_id)
    assert job.state == Job.State.SUCCEEDED and job.attempts == 2, said
    assert "an earlier attempt of this job flipped it" in job.events.last().message
    assert live_generation(redis_client, "risk") == 2 and redis_client.hget(keys.kept("risk"), "generation") == b"1"
