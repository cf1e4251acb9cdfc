"""Operator actions: permission-checked, validated, audited, and real in the event store / Redis."""
from __future__ import annotations

import getpass
import io
import json

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.test import Client
from esdbclient.exceptions import NotFound

from lucent_admin.operations.models import AuditEntry
from projections import keys
from projections.events import Envelope
from projections.status import failing_event_to_json
from tests.accounts import account

pytestmark = pytest.mark.django_db


def operator(client: Client, *perms: str, name: str = "ops") -> Client:
    user = account(name, "pw-ops-123")
    user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    client.force_login(user)
    return client


@pytest.fixture
def store_settings(settings, eventstore_uri: str):
    settings.EVENTSTORE_URI = eventstore_uri
    return settings


def risk_events(esdb_client, user_id: str) -> list[dict]:
    try:
        return [json.loads(e.data) for e in esdb_client.get_stream(f"risk-{user_id}")]
    except NotFound:
        return []


def test_acknowledge_appends_the_event_and_audits_who_did_it(client: Client, store_settings, esdb_client) -> None:
    operator(client, "acknowledge_alert")
    response = client.post("/risk/acknowledge/", {"user_id": "ack-user-1", "alert_id": "alert-1", "note": "called them"},
                           follow=True)
    assert response.redirect_chain[-1][0] == "/risk/"
    assert b"Alert alert-1 of ack-user-1 acknowledged." in response.content
    [event] = risk_events(esdb_client, "ack-user-1")
    assert event["alertId"] == "alert-1" and event["acknowledgedBy"] == "ops" and event["note"] == "called them"
    entry = AuditEntry.objects.get(action="risk.acknowledge")
    assert (entry.actor_name, entry.target, entry.outcome) == ("ops", "ack-user-1/alert-1", "ok")


def test_acknowledging_twice_appends_one_event(client: Client, store_settings, esdb_client) -> None:
    operator(client, "acknowledge_alert")
    for _ in range(2):
        client.post("/risk/acknowledge/", {"user_id": "ack-user-2", "alert_id": "alert-2"})
    assert len(risk_events(esdb_client, "ack-user-2")) == 1
    assert AuditEntry.objects.filter(action="risk.acknowledge", outcome="ok").count() == 2


def test_acknowledge_without_the_permission_is_403_and_audited(client: Client, store_settings, esdb_client) -> None:
    operator(client)
    response = client.post("/risk/acknowledge/", {"user_id": "ack-user-3", "alert_id": "alert-3"})
    assert response.status_code == 403
    assert AuditEntry.objects.get(action="risk.acknowledge").outcome == "denied"
    assert risk_events(esdb_client, "ack-user-3") == []


def test_bad_alert_id_gets_a_message_naming_the_field(client: Client, store_settings) -> None:
    operator(client, "acknowledge_alert")
    response = client.post("/risk/acknowledge/", {"user_id": "u1", "alert_id": "bad id!"}, follow=True)
    assert b"alert_id: Alert id must be 1" in response.content
    assert AuditEntry.objects.get(action="risk.acknowledge").outcome == "failed"


def test_htmx_acknowledge_answers_with_a_client_redirect(client: Client, store_settings) -> None:
    operator(client, "acknowledge_alert")
    response = client.post("/risk/acknowledge/", {"user_id": "ack-user-4", "alert_id": "alert-4"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/risk/"


def test_actions_need_a_csrf_token(store_settings) -> None:
    client = Client(enforce_csrf_checks=True)
    operator(client, "acknowledge_alert")
    assert client.post("/risk/acknowledge/", {"user_id": "u1", "alert_id": "a1"}).status_code == 403


def test_anonymous_action_is_sent_to_login(client: Client) -> None:
    response = client.post("/risk/acknowledge/", {"user_id": "u1", "alert_id": "a1"})
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_retry_request_reaches_the_projection_and_is_audited(client: Client, redis_client) -> None:
    operator(client, "retry_parked_event")
    event_id = "0b6f6a2e-3f4e-4d0b-9d55-6c3a0c1f2a11"
    redis_client.hset(keys.parked("risk"), event_id, json.dumps({"eventId": event_id, "position": 7}))
    response = client.post("/projections/retry/", {"projection": "risk", "event_id": event_id}, follow=True)
    assert b"Retry of parked event" in response.content
    assert redis_client.sismember(keys.retry_requests("risk"), event_id)
    assert AuditEntry.objects.get(action="parked.retry").target == f"risk/{event_id}"


def test_retry_of_an_event_that_is_not_parked_says_so(client: Client, redis_client) -> None:
    operator(client, "retry_parked_event")
    event_id = "0b6f6a2e-3f4e-4d0b-9d55-6c3a0c1f2a12"
    response = client.post("/projections/retry/", {"projection": "risk", "event_id": event_id}, follow=True)
    assert f"event {event_id} is not parked in the risk projection".encode() in response.content
    assert AuditEntry.objects.get(action="parked.retry").outcome == "failed"


def test_retry_with_a_bad_event_id_names_the_field(client: Client, redis_client) -> None:
    operator(client, "retry_parked_event")
    response = client.post("/projections/retry/", {"projection": "risk", "event_id": "nope"}, follow=True)
    assert b"event_id: Event must be an event id (a UUID), stream/event id, or a commit position." in response.content
    assert not redis_client.exists(keys.retry_requests("risk"))


def test_retry_without_the_permission_is_403(client: Client, redis_client) -> None:
    operator(client)
    response = client.post("/projections/retry/", {"projection": "risk", "event_id": "0b6f6a2e-3f4e-4d0b-9d55-6c3a0c1f2a11"})
    assert response.status_code == 403
    assert not redis_client.exists(keys.retry_requests("risk"))


def test_audit_log_filters_by_operator_and_action(client: Client) -> None:
    operator(client, "view_auditentry")  # the audit log has its own view permission (a Viewer has not)
    AuditEntry.objects.create(actor_name="alice", action="risk.acknowledge", target="u1/a1", outcome="ok")
    AuditEntry.objects.create(actor_name="bob", action="parked.retry", target="risk/x", outcome="failed")
    page = client.get("/audit/", {"actor": "alice"}).content.decode()
    assert "u1/a1" in page and "risk/x" not in page
    page = client.get("/audit/", {"action": "parked.retry"}).content.decode()
    assert "risk/x" in page and "u1/a1" not in page


def test_user_lookup_rejects_a_bad_id_with_a_message(client: Client) -> None:
    operator(client)
    response = client.get("/user/", {"user": "../../etc"})
    assert response.status_code == 400
    assert b"User id must be 1" in response.content


def test_command_line_retry_is_audited_too(redis_client) -> None:
    event_id = "0b6f6a2e-3f4e-4d0b-9d55-6c3a0c1f2a13"
    redis_client.hset(keys.parked("market"), event_id, json.dumps({"eventId": event_id, "position": 9}))
    call_command("projections", "parked", "--projection", "market", "--retry", event_id, stdout=io.StringIO())
    assert redis_client.sismember(keys.retry_requests("market"), event_id)
    with pytest.raises(CommandError, match="is not parked"):
        call_command("projections", "parked", "--projection", "market", "--retry", event_id.replace("13", "14"))
    entries = list(AuditEntry.objects.order_by("id").values_list("actor_name", "action", "outcome"))
    assert entries == [(f"cli:{getpass.getuser()}", "parked.retry", "ok"), (f"cli:{getpass.getuser()}", "parked.retry", "failed")]


def stopped_on(redis_client, projection: str, event_id: str) -> None:
    """The status a stop-policy projector publishes when it stopped on ``event_id``."""
    failing = Envelope(event_id, "trades-u1", 70, "TradeExecuted", 0)
    redis_client.hset(keys.status(projection), mapping={"state": "failed", "lastError": "amount: out of range",
                                                         "failingEvent": failing_event_to_json(failing)})


def test_parking_the_event_a_stopped_projection_stopped_on_is_requested_and_audited(client: Client, redis_client) -> None:
    operator(client, "park_bad_event")
    event_id = "0b6f6a2e-3f4e-4d0b-9d55-6c3a0c1f2a21"
    stopped_on(redis_client, "risk", event_id)
    page = client.get("/projections/")
    assert b"Park this event and resume" in page.content
    response = client.post("/projections/park/", {"projection": "risk", "event_id": event_id}, follow=True)
    assert f"Event {event_id} will be parked".encode() in response.content
    assert redis_client.sismember(keys.park_requests("risk"), f"trades-u1/{event_id}")
    entry = AuditEntry.objects.get(action="parked.decide")
    assert entry.target == f"risk/{event_id}" and entry.outcome == "ok"


def test_parking_an_event_the_projection_is_not_stopped_on_is_refused(client: Client, redis_client) -> None:
    operator(client, "park_bad_event")
    stopped_on(redis_client, "risk", "0b6f6a2e-3f4e-4d0b-9d55-6c3a0c1f2a21")
    other = "0b6f6a2e-3f4e-4d0b-9d55-6c3a0c1f2a22"
    response = client.post("/projections/park/", {"projection": "risk", "event_id": other}, follow=True)
    assert f"is not stopped on event {other!r}".encode() in response.content.replace(b"&#x27;", b"'")
    assert not redis_client.exists(keys.park_requests("risk"))
    assert AuditEntry.objects.get(action="parked.decide").outcome == "failed"


def test_parking_without_the_permission_is_403(client: Client, redis_client) -> None:
    operator(client, "retry_parked_event")
    event_id = "0b6f6a2e-3f4e-4d0b-9d55-6c3a0c1f2a21"
    stopped_on(redis_client, "risk", event_id)
    response = client.post("/projections/park/", {"projection": "risk", "event_id": event_id})
    assert response.status_code == 403
    assert not redis_client.exists(keys.park_requests("risk"))


def test_cli_park_is_audited_as_the_shell_user(redis_client) -> None:
    event_id = "0b6f6a2e-3f4e-4d0b-9d55-6c3a0c1f2a21"
    stopped_on(redis_client, "risk", event_id)
    out = io.StringIO()
    call_command("projections", "park", "risk", event_id, stdout=out)
    assert "resumes past it" in out.getvalue()
    assert redis_client.sismember(keys.park_requests("risk"), f"trades-u1/{event_id}")
    assert AuditEntry.objects.get(action="parked.decide").actor_name == f"cli:{getpass.getuser()}"
    with pytest.raises(CommandError, match="is not stopped on event"):
        call_command("projections", "park", "risk", "0b6f6a2e-3f4e-4d0b-9d55-6c3a0c1f2a23")


# -- the one action layer: every attempt audited with its target, no failure is a 500 ----------


def test_a_viewers_post_is_refused_and_audited_with_its_target(client: Client, store_settings, esdb_client) -> None:
    client.force_login(account("visitor", "pw-visitor-123"))  # a Viewer: may look, not act
    response = client.post("/risk/acknowledge/", {"user_id": "ack-user-9", "alert_id": "alert-9"})
    assert response.status_code == 403
    entry = AuditEntry.objects.get(action="risk.acknowledge")
    assert (entry.actor_name, entry.target, entry.outcome) == ("visitor", "ack-user-9/alert-9", "denied")
    assert "operations.acknowledge_alert" in entry.detail and "Risk team" in entry.detail
    assert risk_events(esdb_client, "ack-user-9") == []


def test_a_denied_attempt_is_audited_with_its_target_and_the_missing_permission(client: Client, redis_client) -> None:
    operator(client, "acknowledge_alert")
    event_id = "0b6f6a2e-3f4e-4d0b-9d55-6c3a0c1f2a31"
    assert client.post("/projections/retry/", {"projection": "market", "event_id": event_id}).status_code == 403
    entry = AuditEntry.objects.get(action="parked.retry")
    assert (entry.target, entry.outcome) == (f"market/{event_id}", "denied")
    assert "operations.retry_parked_event" in entry.detail


def test_acknowledging_on_a_tombstoned_stream_fails_with_a_message_and_is_audited(client: Client, store_settings,
                                                                                   esdb_client) -> None:
    from esdbclient import StreamState

    esdb_client.tombstone_stream("risk-ack-user-10", current_version=StreamState.ANY)
    operator(client, "acknowledge_alert")
    response = client.post("/risk/acknowledge/", {"user_id": "ack-user-10", "alert_id": "alert-10"}, follow=True)
    assert response.status_code == 200  # back on the page with a message, not a 500
    assert b"Alert alert-10 not acknowledged" in response.content and b"tombstoned" in response.content
    entry = AuditEntry.objects.get(action="risk.acknowledge")
    assert (entry.target, entry.outcome) == ("ack-user-10/alert-10", "failed") and "deleted for good" in entry.detail


def test_a_redis_outage_during_an_action_is_a_message_and_an_audit_entry(client: Client, settings) -> None:
    from lucent_admin.embedded import free_port

    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    operator(client, "retry_parked_event")
    event_id = "0b6f6a2e-3f4e-4d0b-9d55-6c3a0c1f2a32"
    response = client.post("/projections/retry/", {"projection": "risk", "event_id": event_id}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response["HX-Redirect"] == "/projections/"
    entry = AuditEntry.objects.get(action="parked.retry")
    assert (entry.target, entry.outcome) == (f"risk/{event_id}", "failed") and "ConnectionError" in entry.detail


def test_a_command_line_action_during_a_redis_outage_fails_in_one_message_and_is_audited(settings) -> None:
    from lucent_admin.embedded import free_port

    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    event_id = "0b6f6a2e-3f4e-4d0b-9d55-6c3a0c1f2a33"
    with pytest.raises(CommandError, match="ConnectionError"):
        call_command("projections", "parked", "--projection", "risk", "--retry", event_id)
    entry = AuditEntry.objects.get(action="parked.retry")
    assert (entry.actor_name, entry.target, entry.outcome) == (f"cli:{getpass.getuser()}", f"risk/{event_id}", "failed")


def test_a_bad_projection_name_is_audited_with_the_field_named(client: Client, redis_client) -> None:
    operator(client, "retry_parked_event")
    event_id = "0b6f6a2e-3f4e-4d0b-9d55-6c3a0c1f2a34"
    response = client.post("/projections/retry/", {"projection": "nope", "event_id": event_id}, follow=True)
    assert b"projection: Projection must be one of portfolio, risk, market, leaderboards." in response.content
    entry = AuditEntry.objects.get(action="parked.retry")
    assert (entry.target, entry.outcome) == (f"nope/{event_id}", "failed")


def test_resync_from_the_projections_page_is_permission_checked_and_audited(client: Client, redis_client) -> None:
    redis_client.set(keys.heartbeat("market"), '{"at": 0, "projector": "t", "state": "stalled"}', ex=30)
    redis_client.hset(keys.status("market"), mapping={"state": "stalled", "lastError": "EventStoreUnavailable: x"})
    operator(client, "acknowledge_alert")
    assert client.post("/projections/resync/", {"projection": "market"}).status_code == 403
    assert not redis_client.exists(keys.resync_request("market"))
    client.logout()
    operator(client, "resync_projection", name="ops2")
    assert b"Resync" in client.get("/projections/").content
    response = client.post("/projections/resync/", {"projection": "market"}, follow=True)
    assert b"Resync of market requested" in response.content
    assert redis_client.exists(keys.resync_request("market"))
    outcomes = list(AuditEntry.objects.filter(action="projection.resync").order_by("id").values_list("actor_name", "outcome"))
    assert outcomes == [("ops", "denied"), ("ops2", "ok")]
    response = client.post("/projections/resync/", {"projection": "risk"}, follow=True)  # nothing runs risk
    assert b"risk not resynced: no projector is running" in response.content


def test_command_line_resync_is_audited(redis_client) -> None:
    with pytest.raises(CommandError, match="no projector is running 'risk'"):
        call_command("projections", "resync", "risk")
    assert AuditEntry.objects.get(action="projection.resync").outcome == "failed"


def test_a_rebuild_that_would_not_fit_in_memory_is_refused_for_a_direct_post_and_for_recovery(
        client: Client, store_settings, redis_client) -> None:
    from lucent_admin.operations import actions
    from lucent_admin.operations.audit import Actor
    from lucent_admin.operations.models import Job

    pf = keys.KeySpace("portfolio")
    redis_client.set(pf.checkpoint, "100")
    for i in range(300):  # a live generation whose copy would need more than Redis may hold
        redis_client.hset(pf.portfolio(f"big-{i}"), mapping={"userId": f"big-{i}", "positions": "x" * 2000})
    redis_client.config_set("maxmemory", str(int(redis_client.info("memory")["used_memory"]) + 2**18))
    try:
        operator(client, "run_rebuild")
        response = client.post("/projections/portfolio/rebuild/", {"confirm": "portfolio"}, follow=True)
        assert b"portfolio not rebuilt: memory: a second generation needs about" in response.content
        automatic = actions.do_rebuild(Actor("system: recovery (missing → rebuild)", automatic=True), "portfolio", None)
    finally:
        redis_client.config_set("maxmemory", "0")
    assert not automatic.ok and automatic.message.startswith("memory: a second generation needs about")
    assert not Job.objects.exists()
    outcomes = list(AuditEntry.objects.filter(action="rebuild.projection").values_list("outcome", flat=True))
    assert outcomes == ["failed", "failed"]


def test_a_retry_by_an_id_two_streams_parked_names_both_and_stream_slash_id_picks_one(client: Client, redis_client) -> None:
    operator(client, "retry_parked_event", "view_console")
    event_id = "0b6f6a2e-3f4e-4d0b-9d55-6c3a0c1f2a31"
    for position, user in ((11, "alice"), (12, "bob")):
        member = keys.parked_member(f"trades-{user}", event_id)
        record = {"eventId": event_id, "stream": f"trades-{user}", "position": position, "type": "TradeExecuted",
                  "field": "amount", "reason": "not a number", "recordedAt": 0, "retried": False}
        redis_client.hset(keys.parked("risk"), member, json.dumps(record))
        redis_client.zadd(keys.parked_index("risk"), {member: position})
    page = client.get("/projections/").content.decode()
    assert f'name="event_id" value="trades-alice/{event_id}"' in page and f'value="trades-bob/{event_id}"' in page
    response = client.post("/projections/retry/", {"projection": "risk", "event_id": event_id}, follow=True)
    assert (f"trades-alice/{event_id} (position 11), trades-bob/{event_id} (position 12); name one as stream/id"
            in response.content.decode())
    assert not redis_client.exists(keys.retry_requests("risk"))
    client.post("/projections/retry/", {"projection": "risk", "event_id": f"trades-bob/{event_id}"})
    assert redis_client.smembers(keys.retry_requests("risk")) == {f"trades-bob/{event_id}".encode()}
