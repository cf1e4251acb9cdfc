"""Password guessing is throttled (django-axes): by account and by address, on the console's and the admin's login.

The lockout lasts AXES_COOLOFF_TIME after the last failure (LUCENT_LOGIN_COOLOFF_S); these tests shorten it.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client

from lucent_admin.operations.models import AuditEntry
from tests.accounts import account
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db

PASSWORD = "s3cret-pass!"


@pytest.fixture
def short_lockout(settings) -> None:
    assert settings.AXES_FAILURE_LIMIT == 10  # LUCENT_LOGIN_FAILURE_LIMIT's default
    settings.AXES_COOLOFF_TIME = timedelta(seconds=2)


@pytest.fixture
def alice() -> None:
    account("alice", PASSWORD)


def sign_in(client: Client, username: str, password: str, path: str = "/login/", address: str = "10.1.2.3") -> int:
    """POST the login form from ``address``; the status code (302: signed in)."""
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address).status_code


@pytest.mark.usefixtures("alice", "short_lockout")
def test_ten_wrong_passwords_lock_the_account_until_the_lockout_ends(client: Client) -> None:
    for _ in range(9):
        assert sign_in(client, "alice", "wrong") == 200
    response = client.post("/login/", {"username": "alice", "password": "wrong"}, REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content
    refused = client.post("/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="10.1.2.3")
    assert refused.status_code == 429 and "_auth_user_id" not in client.session
    # the account is locked from every address, not only the guessing one
    assert sign_in(client, "alice", PASSWORD, address="10.9.9.9") == 429
    wait_until(lambda: sign_in(client, "alice", PASSWORD) == 302, timeout=10, what="the lockout to end")
    assert "_auth_user_id" in client.session


@pytest.mark.usefixtures("alice", "short_lockout")
def test_refused_sign_ins_are_audited_with_the_address_and_bounded(client: Client) -> None:
    for _ in range(10):
        sign_in(client, "alice", "wrong")
    for _ in range(20):  # refused during the lockout: counted by nobody, audited never
        sign_in(client, "alice", PASSWORD)
    rows = sorted(AuditEntry.objects.values_list("action", "target", "outcome", "params__address"))
    assert rows == [("auth.lockout", "alice", "denied", "10.1.2.3")] + [("auth.login", "alice", "denied", "10.1.2.3")] * 10


@pytest.mark.usefixtures("alice", "short_lockout")
def test_unknown_accounts_lock_the_address_and_are_audited_once(client: Client) -> None:
    for n in range(10):
        sign_in(client, f"guess-{n}", "whatever", address="10.6.6.6")
    assert sign_in(client, "alice", PASSWORD, address="10.6.6.6") == 429  # the address is locked, for every account
    assert sign_in(client, "alice", PASSWORD, address="10.7.7.7") == 302  # alice herself is not
    denied = AuditEntry.objects.filter(params__address="10.6.6.6").order_by("action")
    assert [(e.action, e.target) for e in denied] == [("auth.lockout", "guess-9"), ("auth.login", "guess-0")]
    assert "no such account" in denied[1].detail


@pytest.mark.usefixtures("alice", "short_lockout")
def test_the_admin_login_is_protected_too(client: Client) -> None:
    for _ in range(10):
        assert sign_in(client, "alice", "wrong", path="/admin/login/") in (200, 429)
    assert sign_in(client, "alice", PASSWORD, path="/admin/login/") == 429
    assert sign_in(client, "alice", PASSWORD) == 429  # one count for both logins
    assert AuditEntry.objects.filter(action="auth.lockout", target="alice").count() == 1


@pytest.mark.usefixtures("alice")
def test_a_successful_sign_in_is_audited_with_the_address(client: Client) -> None:
    assert sign_in(client, "alice", PASSWORD, address="10.4.4.4") == 302
    entry = AuditEntry.objects.get(action="auth.login")
    assert (entry.outcome, entry.params) == ("ok", {"address": "10.4.4.4"})


@pytest.mark.usefixtures("alice")
def test_the_address_behind_trusted_proxies(client: Client, settings) -> None:
    settings.LUCENT_TRUSTED_PROXY_COUNT = 1
    response = client.post("/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="10.0.0.1",
                           HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")  # the client's own claim, then the proxy's
    assert response.status_code == 302
    assert AuditEntry.objects.get(action="auth.login").params == {"address": "203.0.113.7"}
