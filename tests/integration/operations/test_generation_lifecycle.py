"""At most the live and one kept generation per projection; rollback verifies the kept generation against a replay.

Jobs on a real Celery worker, a real Redis and the embedded store (issue 21, items 4 and 5).
"""
from __future__ import annotations

import io
import re

import pytest
import redis
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from lucent_admin.operations import actions, schedules
from lucent_admin.operations.audit import Actor
from lucent_admin.operations.models import Job
from projections import keys
from projections.keys import KeySpace
from projections.maintenance.generations import live_generation
from projections.maintenance.retention import kept_generation
from projections.queries import Queries
from tests.fixtures.jobs import finished
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

GENERATION = re.compile(r"^lucent:\{[^}]+\}:g(\d+)(?::|-lease$)")


def present(client: redis.Redis, projection: str) -> set[int]:
    """Every generation of ``projection`` that has any key in Redis."""
    found = set()
    for key in client.scan_iter(match=keys.projection_pattern(projection), count=1000):
        match = GENERATION.match(key.decode())
        if match:
            found.add(int(match.group(1)))
    return found


def run(job_id: int, timeout: float = 90) -> Job:
    return wait_until(lambda: finished(job_id), timeout, what=f"job {job_id} to finish")


def rebuilt(ops, projection: str) -> Job:
    job = run(actions.do_rebuild(Actor.of(ops), projection, projection).job)
    assert job.state == Job.State.SUCCEEDED, job.error
    return job


def test_two_rebuilds_leave_the_live_generation_and_one_kept(projected: Queries, worker, ops,
                                                             redis_client: redis.Redis) -> None:
    rebuilt(ops, "risk")
    assert present(redis_client, "risk") == {1, 2}

    second = rebuilt(ops, "risk")

    assert live_generation(redis_client, "risk") == 3
    assert present(redis_client, "risk") == {2, 3}  # generation 1, kept before, is dropped by the flip
    kept = kept_generation(redis_client, "risk")
    assert kept is not None and kept.generation == 2
    assert "generation 1" in second.events.last().message  # the job says what it dropped


def test_an_aborted_flip_keeps_the_generation_kept_before_for_a_rollback(projected: Queries, worker, ops,
                                                                         redis_client: redis.Redis) -> None:
    rebuilt(ops, "risk")
    redis_client.set(keys.heartbeat("risk"), "1", px=120_000)  # a live projector "beats" but never pauses for the flip
    job_id = actions.do_rebuild(Actor.of(ops), "risk", "risk").job
    wait_until(lambda: Job.objects.get(pk=job_id).phase == "flipping", 60, what="the rebuild to try its flip")

    assert actions.do_cancel_job(Actor.of(ops), job_id).ok  # the operator gives up waiting: the flip is aborted

    aborted = run(job_id)
    redis_client.delete(keys.heartbeat("risk"))
    assert aborted.state == Job.State.CANCELLED
    assert live_generation(redis_client, "risk") == 2 and present(redis_client, "risk") == {1, 2}
    kept = kept_generation(redis_client, "risk")
    assert kept is not None and kept.generation == 1  # still the rollback target
    rollback = run(actions.do_rollback(Actor.of(ops), "risk", "risk").job)
    assert rollback.state == Job.State.SUCCEEDED, rollback.error
    assert live_generation(redis_client, "risk") == 1


def test_the_retention_drops_a_generation_nothing_uses_and_keeps_the_rollback_target(
        projected: Queries, worker, ops, redis_client: redis.Redis, settings) -> None:
    rebuilt(ops, "risk")
    orphan = KeySpace("risk", 7)  # left behind by a crash: neither live, kept nor being written
    redis_client.set(orphan.checkpoint, "12")
    redis_client.hset(orphan.user_risk("nobody"), mapping={"lastPosition": "12"})
    settings.LUCENT_GENERATION_RETENTION_HOURS = 24  # generation 1 is kept well within it

    (drop_id,) = schedules.drop_expired_generations()

    job = run(drop_id)
    assert job.state == Job.State.SUCCEEDED and job.requested_by == "system: retention"
    assert present(redis_client, "risk") == {1, 2}
    kept = kept_generation(redis_client, "risk")
    assert kept is not None and kept.generation == 1
    assert schedules.drop_expired_generations() == []


def test_a_rollback_to_a_damaged_kept_generation_is_refused_with_the_differences(
        client: Client, projected: Queries, worker, ops, redis_client: redis.Redis) -> None:
    get_user_model().objects.create_superuser("operator", password="pw-op-123")
    user = projected.top_portfolios(1)[0].user_id
    rebuilt(ops, "portfolio")
    kept = KeySpace("portfolio", 1)
    lost = [k for k in redis_client.scan_iter(match=kept.key("portfolio", user) + "*")]
    lost += [k for k in redis_client.scan_iter(match=kept.portfolio_history(user))]
    assert lost
    redis_client.delete(*lost)  # the idle kept generation lost a user's keys (an LRU eviction)
    redis_client.zrem(kept.portfolio_values(), user)
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError, match="replay"):
        call_command("rollback", "portfolio", "--yes", "--wait", stdout=out, stderr=err)

    job = Job.objects.get(kind=Job.Kind.ROLLBACK)
    assert job.state == Job.State.FAILED
    assert live_generation(redis_client, "portfolio") == 2  # not flipped
    assert job.result["difference_count"] >= 1 and any(user in d["key"] for d in job.result["differences"])
    assert f"portfolio:{user}" in out.getvalue()  # the differences, on the command line
    assert "manage.py rebuild portfolio" in str(job.error)  # what to do instead
    client.force_login(ops)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f"portfolio:{user}" in page and 'data-board="rollback-differences"' in page
    assert 'href="/projections/portfolio/rebuild/"' in page and 'data-action="check-everything"' in page


def test_a_rollback_verifies_against_a_replay_not_against_the_live_generation(
        projected: Queries, worker, ops, redis_client: redis.Redis) -> None:
    user = projected.top_portfolios(1)[0].user_id
    rebuilt(ops, "portfolio")
    redis_client.hset(KeySpace("portfolio", 2).portfolio(user), "tradeCount", "424242")  # the live one is damaged

    job = run(actions.do_rollback(Actor.of(ops), "portfolio", "portfolio").job)

    assert job.state == Job.State.SUCCEEDED, job.error
    assert live_generation(redis_client, "portfolio") == 1
    assert job.result["verified"] >= 1 and job.result["difference_count"] == 0
    assert projected.portfolio_summary(user).trade_count != 424242


def test_the_verification_finds_no_difference_in_an_intact_generation_of_any_projection_and_a_lost_market_key(
        projected: Queries, redis_client: redis.Redis) -> None:
    from lucent_admin import bootstrap
    from projections.maintenance.control import Unattended
    from projections.maintenance.verify import verify_generation
    from projections.readmodels import PROJECTIONS

    for projection in PROJECTIONS:  # no projector runs: generation 1 stands still, as a kept generation does
        found = verify_generation(redis_client, bootstrap.event_store(), projection, 1, Unattended())
        assert found.checked > 0 and found.count == 0, (projection, found.kept)
    pair = next(k for k in redis_client.scan_iter(match=KeySpace("market", 1).market_pair("*"), _type="hash"))
    redis_client.delete(pair)

    found = verify_generation(redis_client, bootstrap.event_store(), "market", 1, Unattended())

    assert found.count >= 1 and any(d["kind"] == "missing key" for d in found.kept)
