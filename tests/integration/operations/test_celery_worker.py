"""A real Celery worker consuming from the real Redis broker."""
from __future__ import annotations

import socket

import pytest
from celery.contrib.testing.worker import start_worker

from lucent_admin.celery import app
from lucent_admin.operations.tasks import ping


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
