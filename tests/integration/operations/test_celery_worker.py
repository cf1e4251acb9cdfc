"""A real Celery worker consuming from the real Redis broker."""
from __future__ import annotations

import io
import socket
import sys
import time
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings

from lucent_admin.celery import app
from lucent_admin.operations import actions
from lucent_admin.operations.actions import do_check_consistency
from lucent_admin.operations.audit import Actor
from lucent_admin.operations.models import Job
from lucent_admin.operations.tasks import ping
from tests.waiting import wait_until


@pytest.fixture
def worker(redis_client):
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        yield


def test_ping_task_runs_on_a_real_worker(worker) -> None:
    result = ping.delay()
    assert result.get(timeout=30) == {"pong": socket.gethostname()}


def test_worker_is_configured_for_long_rebuilds() -> None:
    conf = app.conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_acks_late is True
    assert conf.broker_transport_options["visibility_timeout"] >= 3600


def test_jobs_have_their_own_queue_and_worker_so_two_long_jobs_leave_the_ticks_on_time(live_stack) -> None:
    """Procfile's two workers: `worker` serves the ticks' queue only, `jobs` the jobs' queue. With a rebuild and a
    consistency check running on the jobs' worker, a tick (ping) is answered at once; the ticks' worker never takes
    a job."""
    with override_settings(EVENTSTORE_URI=live_stack.env["EVENTSTORE_URI"]):
        call_command("simulate", events=6000, seed=43, users=30, stderr=io.StringIO(), stdout=io.StringIO())
        call_command("run_projector", exit_when_caught_up=True, stderr=io.StringIO())
    celery = str(Path(sys.executable).parent / "celery")
    live_stack.env["LUCENT_BATCH_SIZE"] = "10"  # small batches: the jobs run for a while
    live_stack.spawn("ticks", celery, "-A", "lucent_admin", "worker", "-Q", "celery", "-n", "ticks@%h", "--pool=solo")
    chief = get_user_model().objects.create_superuser("chief", password="pw-chief-123")
    rebuild = actions.do_rebuild(Actor.of(chief), "portfolio", "portfolio").job
    check = do_check_consistency(Actor.of(chief), everything=True).job
    assert ping.delay().get(timeout=30)  # the ticks' worker answers (the jobs were queued before: one queue, they went first) ...
    assert set(Job.objects.filter(pk__in=[rebuild, check]).values_list("state", flat=True)) == {Job.State.QUEUED}  # ... and takes no job
    live_stack.spawn("jobs", celery, "-A", "lucent_admin", "worker", "-Q", "lucent.jobs", "-n", "jobs@%h",
                     "--concurrency=2")
    wait_until(lambda: Job.objects.filter(pk__in=[rebuild, check], state=Job.State.RUNNING).count() == 2, 60,
               what="the rebuild and the check to run together")
    delays = []
    while Job.objects.filter(pk__in=[rebuild, check], state=Job.State.RUNNING).count() == 2 and len(delays) < 10:
        sent = time.monotonic()
        ping.delay().get(timeout=30)
        delays.append(time.monotonic() - sent)
    print(f"ticks answered while a rebuild and a check ran: {len(delays)} pings, max {max(delays) * 1000:.0f} ms")
    assert delays and max(delays) < 2.0, delays
