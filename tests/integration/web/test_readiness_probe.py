"""/readyz is open to probes: it says whether each dependency answers, and why not only to staff and the log."""
from __future__ import annotations

import logging
import time

import pytest
from django.test import Client

from lucent_admin.console.health import READY_CACHE_SECONDS
from lucent_admin.embedded import free_port
from tests.accounts import account

pytestmark = pytest.mark.django_db

PASSWORD = "hunter2-very-secret"


@pytest.fixture
def store_behind_a_password(settings) -> str:
    """EVENTSTORE_URI with credentials, at a closed port on a named host."""
    port = free_port()
    settings.EVENTSTORE_URI = f"esdb://admin:{PASSWORD}@localhost:{port}?Tls=false"
    return str(port)


def test_anonymous_readyz_shows_neither_the_password_nor_the_host(client: Client, store_behind_a_password: str) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"ready": False, "checks": {"redis": {"ok": True}, "eventstore": {"ok": False},
                                                          "database": {"ok": True}}}
    text = response.content.decode()
    assert PASSWORD not in text and "localhost" not in text and store_behind_a_password not in text and "admin" not in text


def test_staff_sees_why_without_the_password(client: Client, store_behind_a_password: str) -> None:
    client.force_login(account("ops", "pw-ops-123"))
    body = client.get("/readyz").json()
    error = body["checks"]["eventstore"]["error"]
    assert f"localhost:{store_behind_a_password}" in error, error
    assert PASSWORD not in error


def test_the_log_says_why_without_the_password(client: Client, store_behind_a_password: str, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="lucent_admin.console.health"):
        client.get("/readyz")
    (line,) = [r.getMessage() for r in caplog.records if "eventstore" in r.getMessage()]
    assert f"localhost:{store_behind_a_password}" in line and PASSWORD not in line


def test_probes_within_the_cache_window_share_one_look(client: Client, store_behind_a_password: str, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="lucent_admin.console.health"):
        assert client.get("/readyz").status_code == 503
        looked = time.monotonic()
        for _ in range(5):
            assert client.get("/readyz").status_code == 503
        within_window = time.monotonic() - looked < READY_CACHE_SECONDS
    looks = [r for r in caplog.records if "eventstore is not ready" in r.getMessage()]
    assert within_window, "the probes took longer than the cache window"
    assert len(looks) == 1, [r.getMessage() for r in looks]
