"""Roles: each page, partial, live socket and action checks its own permission (lucent_admin/operations/roles.py);
sockets check the origin with its scheme and port, and close when their session ends."""
from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from lucent_admin.asgi import application
from lucent_admin.console import consumers
from lucent_admin.console.consumers import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED
from lucent_admin.operations.models import AuditEntry
from lucent_admin.operations.roles import OPERATORS, RISK_TEAM, VIEWERS
from tests.accounts import account

PAGES = ["/", "/leaderboards/", "/risk/", "/market/", "/user/?user=someone", "/projections/", "/consistency/",
         "/jobs/", "/infrastructure/", "/settings/", "/projections/portfolio/rebuild/"]
ACTIONS = ["/risk/acknowledge/", "/projections/retry/", "/projections/park/", "/projections/resync/",
           "/projections/portfolio/rebuild/", "/projections/portfolio/rollback/", "/user/rebuild/", "/jobs/1/cancel/",
           "/jobs/1/approve/", "/jobs/1/flip-anyway/", "/jobs/1/repair/", "/consistency/check/", "/settings/",
           "/recovery/dismiss/"]
ORIGIN = (b"origin", b"http://127.0.0.1:8000")  # one of CSRF_TRUSTED_ORIGINS


def signed_in(role: str | None, name: str = "someone", **fields: object) -> Client:
    client = Client()
    client.force_login(account(name, "pw-role-123", role=role, **fields))
    return client


@pytest.mark.django_db
def test_a_viewer_sees_every_page_but_the_audit_log_and_may_do_nothing(settings, eventstore_uri: str) -> None:
    settings.EVENTSTORE_URI = eventstore_uri
    viewer = signed_in(VIEWERS, "vera")
    for page in PAGES:
        assert viewer.get(page).status_code == 200, page
    assert viewer.get("/audit/").status_code == 403
    assert viewer.get("/leaderboards/rank/", {"user": "someone"}).status_code == 200  # a partial of a page it sees
    assert b"Audit log" not in viewer.get("/").content  # no link to a page it may not open
    for action in ACTIONS:
        assert viewer.post(action, {"projection": "portfolio"}).status_code == 403, action
    denied = AuditEntry.objects.filter(actor_name="vera", outcome="denied")
    assert denied.count() == len(ACTIONS) and all("you need the permission" in e.detail for e in denied)


@pytest.mark.django_db
def test_the_risk_team_sees_the_risk_page_acknowledges_alerts_and_nothing_else(settings, eventstore_uri: str) -> None:
    settings.EVENTSTORE_URI = eventstore_uri
    desk = signed_in(RISK_TEAM, "rita")
    landing = desk.get("/")
    assert landing.status_code == 302 and landing["Location"] == "/risk/"  # its one page
    assert desk.get("/risk/").status_code == 200
    for page in PAGES:
        if page != "/risk/":
            assert desk.get(page).status_code in (302, 403), page
    acknowledged = desk.post("/risk/acknowledge/", {"user_id": "u-risk-1", "alert_id": "alert-1"})
    assert acknowledged.status_code == 302
    assert AuditEntry.objects.get(action="risk.acknowledge").outcome == "ok"
    retry = desk.post("/projections/retry/", {"projection": "risk", "event_id": "0b6f6a2e-3f4e-4d0b-9d55-6c3a0c1f2a11"})
    assert retry.status_code == 403
    assert AuditEntry.objects.get(action="parked.retry").outcome == "denied"


@pytest.mark.django_db
def test_operators_read_the_audit_log_and_nobody_manages_users_but_a_superuser() -> None:
    operator = signed_in(OPERATORS, "olga", is_staff=True)
    assert operator.get("/audit/").status_code == 200
    assert operator.get("/admin/auth/user/").status_code == 403  # Django admin, but no user management
    assert operator.get("/admin/operations/job/").status_code == 200
    assert not Group.objects.get(name=OPERATORS).permissions.filter(content_type__app_label="auth").exists()


def session_socket(client: Client, page: str, origin: tuple[bytes, bytes] = ORIGIN) -> WebsocketCommunicator:
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    return WebsocketCommunicator(application, f"/ws/live/{page}/", headers=[origin, (b"cookie", cookie)])


async def closed_with(comm: WebsocketCommunicator, timeout: float = 5) -> int:
    while True:
        message = await comm.receive_output(timeout=timeout)
        if message["type"] == "websocket.close":
            return int(message["code"])


@pytest.mark.django_db(transaction=True)
async def test_a_socket_checks_its_pages_permission_and_its_origin_with_scheme_and_port() -> None:
    viewer = await sync_to_async(signed_in)(VIEWERS, "vic")
    desk = await sync_to_async(signed_in)(RISK_TEAM, "rhea")
    comm = session_socket(viewer, "overview")
    assert await comm.connect() == (True, None)
    await comm.disconnect()
    comm = session_socket(desk, "overview")
    assert await comm.connect() == (True, None)
    assert await closed_with(comm) == CLOSE_FORBIDDEN  # the Risk team may not watch the overview...
    comm = session_socket(desk, "risk")
    assert await comm.connect() == (True, None)  # ...but its own page
    await comm.disconnect()
    for foreign in (b"https://127.0.0.1:8000", b"http://127.0.0.1:8001", b"http://evil.example:8000"):
        refused = session_socket(viewer, "overview", (b"origin", foreign))
        connected, _ = await refused.connect()
        assert not connected, foreign  # the handshake itself is refused


@pytest.mark.django_db(transaction=True)
async def test_a_socket_closes_when_its_session_ends_or_its_permission_goes(monkeypatch) -> None:
    monkeypatch.setattr(consumers, "SESSION_CHECK_S", 0.2)
    leaving = await sync_to_async(signed_in)(VIEWERS, "lea")
    comm = session_socket(leaving, "overview")
    assert await comm.connect() == (True, None)
    await sync_to_async(leaving.logout)()
    assert await closed_with(comm) == CLOSE_UNAUTHENTICATED

    demoted = await sync_to_async(signed_in)(VIEWERS, "dora")
    comm = session_socket(demoted, "overview")
    assert await comm.connect() == (True, None)
    user = await sync_to_async(get_user_model().objects.get)(username="dora")
    await sync_to_async(user.groups.clear)()
    assert await closed_with(comm) == CLOSE_FORBIDDEN


@pytest.mark.django_db(transaction=True)
async def test_a_socket_closes_when_its_accounts_password_changes(monkeypatch) -> None:
    monkeypatch.setattr(consumers, "SESSION_CHECK_S", 0.2)
    client = await sync_to_async(signed_in)(VIEWERS, "pat")
    comm = session_socket(client, "overview")
    assert await comm.connect() == (True, None)
    user = await sync_to_async(get_user_model().objects.get)(username="pat")
    user.set_password("pw-changed-456")  # rotates the session auth hash: the old session is no longer valid
    await sync_to_async(user.save)()
    assert await closed_with(comm) == CLOSE_UNAUTHENTICATED
