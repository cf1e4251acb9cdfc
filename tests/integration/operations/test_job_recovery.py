"""A worker killed with -9 in the middle of a rebuild: the job is queued again, resumes, and ends as if nothing happened."""
from __future__ import annotations

import io
import signal

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings

from lucent_admin.operations import actions, jobs
from lucent_admin.operations.actions import Actor
from lucent_admin.operations.models import Job
from projections.maintenance.generations import live_generation
from tests.fixtures.jobs import finished
from tests.integration.projections.helpers import generation_content, run_to_end
from tests.waiting import wait_until


def test_a_rebuild_survives_its_worker_killed_with_minus_9(live_stack) -> None:
    with override_settings(EVENTSTORE_URI=live_stack.env["EVENTSTORE_URI"]):
        call_command("simulate", events=8000, seed=41, users=30, stderr=io.StringIO(), stdout=io.StringIO())
        call_command("run_projector", "--projection", "risk", exit_when_caught_up=True, stderr=io.StringIO())
    client = redis.Redis.from_url(settings.REDIS_URL)
    live_stack.env["LUCENT_BATCH_SIZE"] = "10"  # small batches: the rebuild takes long enough to be killed midway
    first = live_stack.start_worker()
    chief = get_user_model().objects.create_superuser("chief", password="pw-chief-123")
    job_id = actions.do_rebuild(Actor.of(chief), "risk", "risk").value["job"]
    wait_until(lambda: Job.objects.get(pk=job_id).done > 0, 60, what="the rebuild to make progress")

    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = Job.objects.get(pk=job_id).done
    live_stack.start_worker()
    wait_until(lambda: jobs.requeue_orphans() == [job_id], 40, what="the orphaned job to be queued again")

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


pytestmark = pytest.mark.django_db(transaction=True)
