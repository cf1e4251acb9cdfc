"""The management commands are thin and wired: run_projector notifies the Channels group."""
from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.management import call_command

from projections.projector.notices import group_name
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections.helpers import append_market


@pytest.mark.django_db  # the status shows each projection's health, which reads recovery's records
def test_run_projector_then_status_and_parked(redis_process: RedisProcess, store_process: StoreProcess, settings: Any) -> None:
    settings.REDIS_URL = redis_process.url
    settings.EVENTSTORE_URI = store_process.uri
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    append_market(store_process.uri, 300, bad_ratio=0.05)
    layer = get_channel_layer()
    async_to_sync(layer.group_add)(group_name("risk"), "test-listener")

    call_command("run_projector", "--projection", "risk", "--exit-when-caught-up", stderr=StringIO())

    message = async_to_sync(layer.receive)("test-listener")
    assert message["type"] == "change.notice" and message["notice"]["projection"] == "risk"
    assert message["notice"]["users"]
    out = StringIO()
    call_command("projections", "status", "--json", stdout=out)
    rows = {row["projection"]: row for row in json.loads(out.getvalue())}
    assert rows["risk"]["checkpoint"] > 0 and rows["risk"]["state"] == "paused" and rows["portfolio"]["checkpoint"] == 0
    assert rows["risk"]["health"] == "dead" and "no heartbeat" in rows["risk"]["health_reason"]  # it has exited
    assert rows["portfolio"]["health"] == "dead" and "run_projector" in rows["portfolio"]["health_reason"]
    out = StringIO()
    call_command("projections", "parked", "--projection", "risk", "--json", stdout=out)
    assert all(row["projection"] == "risk" and row["reason"] for row in json.loads(out.getvalue()))
