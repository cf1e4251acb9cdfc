"""Beat's canary: the task appends one canary per run, each with its own id, on a real worker."""
from __future__ import annotations

import json

import redis
from django.conf import settings as django_settings

from lucent_admin.bootstrap import event_store
from lucent_admin.operations.tasks import append_canary
from projections.events import CANARY_STREAM, CANARY_TYPE
from projections.projector.canary import append_canary as append_one
from projections.queries import Queries
from tests.waiting import wait_until


def canaries() -> list[dict[str, str]]:
    return [json.loads(e.data) for e in event_store().read_stream(CANARY_STREAM) if e.envelope.type == CANARY_TYPE]


def test_each_call_appends_one_canary_with_a_unique_id(settings, eventstore_uri: str, redis_client: redis.Redis) -> None:
    settings.EVENTSTORE_URI = eventstore_uri
    before = len(canaries())
    ids = [append_one(event_store(), redis_client, at_ms=1_760_000_000_000 + i) for i in range(3)]
    appended = canaries()[before:]
    assert [c["canaryId"] for c in appended] == ids and len(set(ids)) == 3
    assert appended[-1]["appendedAt"] == "2025-10-09T08:53:20.002Z"
    newest = Queries(redis_client).canary_appended()
    assert newest is not None and (newest.canary_id, newest.appended_at_ms) == (ids[-1], 1_760_000_000_002)


def test_the_beat_task_appends_on_a_real_worker(settings, eventstore_uri: str, redis_client: redis.Redis, worker) -> None:
    settings.EVENTSTORE_URI = eventstore_uri
    before = len(canaries())
    append_canary.delay()
    newest = wait_until(lambda: Queries(redis_client).canary_appended(), 30, what="the worker to append a canary")
    assert [c["canaryId"] for c in canaries()[before:]] == [newest.canary_id]


def test_beat_schedules_it_every_few_seconds_and_drops_late_runs() -> None:
    entry = django_settings.CELERY_BEAT_SCHEDULE["append-canary"]
    assert entry["task"] == "lucent.append_canary"
    assert entry["schedule"] == float(django_settings.LUCENT_CANARY_EVERY_S) == entry["options"]["expires"] == 5.0
