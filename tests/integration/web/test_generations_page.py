"""The Projections page lists every generation present with its role, keys and memory; an operator drops one
that is neither live nor being written (permission-checked and audited, as a job)."""
from __future__ import annotations

import io
import json
import re

import pytest
import redis
from django.core.management import CommandError, call_command
from django.test import Client

from lucent_admin.operations import actions
from lucent_admin.operations.audit import Actor
from lucent_admin.operations.models import AuditEntry, Job
from projections import keys
from projections.keys import KeySpace
from projections.queries import Queries
from tests.accounts import account
from tests.fixtures.jobs import finished
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def row(page: str, projection: str, generation: int) -> str:
    found = re.search(rf'<tr data-generation="{projection}:{generation}"(.*?)</tr>', page, re.S)
    assert found, f"no row for generation {generation} of {projection}"
    return found.group(0)


def key_count(client: redis.Redis, projection: str, generation: int) -> int:
    return sum(1 for _ in client.scan_iter(match=keys.generation_pattern(projection, generation), count=1000))


@pytest.fixture
def generations(projected: Queries, worker, ops, redis_client: redis.Redis) -> Job:
    """risk: generation 2 live, 1 kept (a rebuild), 7 an orphan; leaderboards: generation 5 being written by a job."""
    job_id = actions.do_rebuild(Actor.of(ops), "risk", "risk").job
    rebuild = wait_until(lambda: finished(job_id), 60, what="the rebuild")
    assert rebuild.state == Job.State.SUCCEEDED, rebuild.error
    orphan = KeySpace("risk", 7)
    redis_client.set(orphan.checkpoint, "12")
    redis_client.hset(orphan.user_risk("nobody"), mapping={"lastPosition": "12"})
    redis_client.set(keys.generation_lease("leaderboards", 5), "a-runner-token", px=120_000)
    redis_client.set(KeySpace("leaderboards", 5).checkpoint, "3")
    return Job.objects.create(kind=Job.Kind.REBUILD, target="leaderboards", requested_by="ops", unit="events",
                              state=Job.State.RUNNING, params={"projection": "leaderboards", "generation": 5})


def test_the_projections_page_lists_every_generation_with_its_role_keys_and_memory(
        client: Client, generations: Job, redis_client: redis.Redis) -> None:
    client.force_login(account("viewer", "pw-view-123"))

    page = client.get("/projections/").content.decode()

    live, kept, orphan = row(page, "risk", 2), row(page, "risk", 1), row(page, "risk", 7)
    assert 'data-role="live"' in live and 'data-role="kept"' in kept and 'data-role="orphan"' in orphan
    assert "kept for a rollback until" in kept
    writing = row(page, "leaderboards", 5)
    assert 'data-role="writing"' in writing and f'href="/jobs/{generations.pk}/"' in writing
    assert f'data-keys="{key_count(redis_client, "risk", 2)}"' in live
    assert f'data-keys="{key_count(redis_client, "risk", 7)}"' in orphan
    assert re.search(r'data-field="memory"[^>]*>[^<]*\d[^<]*(B|KiB|MiB)', live)
    assert "MEMORY USAGE" in page  # says the memory is a sampled estimate
    assert 'data-action="drop-generation"' in kept and 'data-action="drop-generation"' in orphan
    assert 'data-action="drop-generation"' not in live and 'data-action="drop-generation"' not in writing
    assert 'hx-confirm="Drop generation 7 of risk' in orphan


def test_dropping_a_generation_is_permission_checked_audited_refused_when_in_use_and_idempotent(
        client: Client, generations: Job, redis_client: redis.Redis, ops) -> None:
    client.force_login(account("viewer", "pw-view-123"))
    assert client.post("/projections/risk/generations/7/drop/").status_code == 403
    denied = AuditEntry.objects.get(action="rebuild.drop")
    assert (denied.outcome, denied.target, denied.actor_name) == ("denied", "risk/g7", "viewer")
    assert redis_client.exists(KeySpace("risk", 7).checkpoint)

    client.force_login(ops)
    live = client.post("/projections/risk/generations/2/drop/", follow=True).content.decode()
    writing = client.post("/projections/leaderboards/generations/5/drop/", follow=True).content.decode()
    assert "is live" in live and "being written by job" in writing
    assert redis_client.exists(KeySpace("risk", 2).checkpoint) and redis_client.exists(KeySpace("leaderboards", 5).checkpoint)

    response = client.post("/projections/risk/generations/7/drop/", HTTP_HX_REQUEST="true")

    drop = Job.objects.get(kind=Job.Kind.DROP_GENERATION)
    assert response.headers["HX-Redirect"] == f"/jobs/{drop.pk}/"
    assert wait_until(lambda: finished(drop.pk), 30, what="the drop").state == Job.State.SUCCEEDED
    assert key_count(redis_client, "risk", 7) == 0 and key_count(redis_client, "risk", 1) > 0
    again = actions.do_drop_generation(Actor.of(ops), "risk", 7)
    assert again.ok and "not there" in again.message and Job.objects.filter(kind=Job.Kind.DROP_GENERATION).count() == 1
    outcomes = list(AuditEntry.objects.filter(action="rebuild.drop").order_by("id").values_list("target", "outcome"))
    assert outcomes == [("risk/g7", "denied"), ("risk/g2", "failed"), ("leaderboards/g5", "failed"), ("risk/g7", "ok"),
                        ("risk/g7", "ok")]


def test_the_command_line_lists_generations_and_drops_one(generations: Job, redis_client: redis.Redis, ops) -> None:
    out = io.StringIO()
    call_command("generations", "list", "--projection", "risk", "--json", stdout=out)
    listed = {g["generation"]: g for g in json.loads(out.getvalue())}
    assert {n: g["role"] for n, g in listed.items()} == {1: "kept", 2: "live", 7: "orphan"}
    assert listed[2]["keys"] == key_count(redis_client, "risk", 2)
    with pytest.raises(CommandError, match="is live"):
        call_command("generations", "drop", "risk", "2", "--yes", "--as", "ops", stdout=io.StringIO())

    out = io.StringIO()
    call_command("generations", "drop", "risk", "7", "--yes", "--wait", "--as", "ops", stdout=out, stderr=io.StringIO())

    assert "succeeded" in out.getvalue() and key_count(redis_client, "risk", 7) == 0
    entry = AuditEntry.objects.filter(action="rebuild.drop", outcome="ok").get()
    assert entry.actor_name.endswith(" as ops") and entry.target == "risk/g7"
