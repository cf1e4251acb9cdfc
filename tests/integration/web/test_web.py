"""The web foundation: probes, login, staff-only pages, Django admin."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from lucent_admin.operations.models import AuditEntry
from lucent_admin.operations.roles import OPERATORS
from tests.accounts import account

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client) -> Client:
    user = account("ops", "pw-ops-123", role=OPERATORS, is_staff=True)  # staff: Django admin's read-only views
    client.force_login(user)
    return client


def test_healthz_answers_without_login_or_dependencies(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_each_dependency_reachable(client: Client, settings, eventstore_uri: str, redis_client) -> None:
    settings.EVENTSTORE_URI = eventstore_uri
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["ready"] is True
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "redis": True, "eventstore": True, "database": True,
    }


def test_readyz_is_503_and_names_the_dependency_that_is_down(staff: Client, settings) -> None:
    from lucent_admin.embedded import free_port

    settings.EVENTSTORE_URI = f"esdb://127.0.0.1:{free_port()}?Tls=false"
    response = staff.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["eventstore"]["ok"] is False
    assert body["checks"]["eventstore"]["error"]  # the why is for staff (tests/integration/web/test_readiness_probe.py)
    assert body["checks"]["redis"]["ok"] is True


def test_anonymous_user_is_sent_to_the_login_page(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/")


def test_login_page_is_styled_and_signs_in_an_operator(client: Client) -> None:
    account("alice", "s3cret-pass!")
    page = client.get("/login/")
    assert page.status_code == 200
    assert b"css/lucent.css" in page.content and b'name="password"' in page.content
    response = client.post("/login/", {"username": "alice", "password": "s3cret-pass!"}, follow=True)
    assert response.redirect_chain[-1][0] == "/"
    assert b"Overview" in response.content and b"alice" in response.content


def test_wrong_password_shows_an_error_on_the_login_page(client: Client) -> None:
    account("alice", "s3cret-pass!")
    response = client.post("/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b'role="alert"' in response.content
    assert "_auth_user_id" not in client.session
    assert AuditEntry.objects.get(action="auth.login").outcome == "denied"


def test_sign_in_and_out_are_audited(client: Client) -> None:
    account("alice", "s3cret-pass!")
    client.post("/login/", {"username": "alice", "password": "s3cret-pass!"})
    client.post("/logout/")
    assert list(AuditEntry.objects.order_by("id").values_list("action", "actor_name", "outcome")) == [
        ("auth.login", "alice", "ok"), ("auth.logout", "alice", "ok"),
    ]


def test_non_staff_user_gets_403_on_console_pages(client: Client) -> None:
    client.force_login(get_user_model().objects.create_user("bob", password="pw-bob-123"))
    assert client.get("/").status_code == 403


def test_staff_sees_navigation_and_django_admin(staff: Client) -> None:
    page = staff.get("/")
    assert page.status_code == 200
    assert b'class="nav"' in page.content
    admin = staff.get("/admin/")
    assert admin.status_code == 200
    assert b"Site administration" in admin.content


def test_favicon_is_served_without_login(client: Client) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 301, response.status_code
    icon = client.get(response["Location"])
    assert icon.status_code == 200
    assert icon["Content-Type"].startswith("image/svg+xml")
    assert b"<svg" in b"".join(icon.streaming_content if icon.streaming else [icon.content])
