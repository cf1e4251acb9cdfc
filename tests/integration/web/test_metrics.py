"""/metrics: refused to anonymous requests, served to the scraper's token and to staff, with every series."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from lucent_admin import config
from lucent_admin.operations.models import Job
from lucent_admin.operations.roles import RISK_TEAM
from projections.errors import ConfigurationError
from projections.projector.runner import Runner
from projections.queries import Queries
from projections.readmodels import PROJECTIONS
from projections.status import ProjectionState, ProjectionStatus
from tests.accounts import account
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections.helpers import append_market, in_thread
from tests.integration.projections.helpers import config as runner_config
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db
TOKEN = "scraper-token-0123456789abcdef"


@pytest.fixture
def token(settings) -> str:
    settings.LUCENT_METRICS_TOKEN = TOKEN
    return TOKEN


def staff(client: Client) -> Client:
    """Signed in as a Viewer: the role that may read /metrics without the token."""
    client.force_login(account("ops", "pw-ops-123"))
    return client


def families(body: bytes) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of the exposition by sample name (a histogram's: ``_bucket``, ``_count``, ...): (labels, value)."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def value(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    (v,) = [v for got, v in found[name] if all(got.get(k) == want for k, want in labels.items())]
    return v


def test_anonymous_requests_and_bad_tokens_get_a_plain_401(client: Client, token: str, redis_client) -> None:
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong-token-0123456789"}, {"HTTP_AUTHORIZATION": f"Basic {TOKEN}"}):
        response = client.get("/metrics", **headers)
        assert response.status_code == 401, headers
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert response["Content-Type"].startswith("text/plain") and b"lucent_" not in response.content


def test_without_a_configured_token_no_bearer_is_accepted(client: Client, settings, redis_client) -> None:
    settings.LUCENT_METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401


def test_the_token_and_viewers_are_served_others_refused(client: Client, token: str, redis_client) -> None:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "lucent_redis_used_memory_bytes" in families(response.content)
    assert staff(Client()).get("/metrics").status_code == 200
    other = Client()
    other.force_login(account("risk-desk", "pw-risk-123", role=RISK_TEAM))  # signed in, not a console viewer
    assert other.get("/metrics").status_code == 403


def test_a_short_token_stops_start_up_naming_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("LUCENT_METRICS_TOKEN", "short")
    with pytest.raises(ConfigurationError, match="LUCENT_METRICS_TOKEN"):
        config.env_token("LUCENT_METRICS_TOKEN")
    monkeypatch.setenv("LUCENT_METRICS_TOKEN", TOKEN)
    assert config.env_token("LUCENT_METRICS_TOKEN") == TOKEN


@pytest.fixture
def lagging(settings, redis_process: RedisProcess, store_process: StoreProcess) -> Iterator[ProjectionStatus]:
    """A live portfolio projector of the stop policy, stopped on a bad event with events behind it: it lags."""
    append_market(store_process.uri, 600, bad_ratio=0.05)
    settings.REDIS_URL, settings.EVENTSTORE_URI = redis_process.url, store_process.uri
    runner = Runner(runner_config("portfolio", redis_process.url, store_process.uri, on_bad_event="stop",
                                  exit_when_caught_up=False))
    thread, errors = in_thread(runner)
    queries = Queries(redis.Redis.from_url(redis_process.url))

    def stopped() -> ProjectionStatus | None:
        (s,) = queries.projection_status("portfolio")
        return s if s.alive and s.stopped_on and s.events_behind > 0 and s.head > s.checkpoint else None

    try:
        yield wait_until(stopped, 30, what="the portfolio projector stopped on a bad event, alive, behind the head")
    finally:
        runner.stop()
        thread.join(10)
    assert errors == []


def test_metrics_expose_every_series(client: Client, token: str, settings, lagging: ProjectionStatus) -> None:
    running = Job.objects.create(kind=Job.Kind.REBUILD, target="risk", requested_by="ops", state=Job.State.RUNNING,
                                 done=120, total=480, unit="events")
    Job.objects.create(kind=Job.Kind.CONSISTENCY_CHECK, target="sample", requested_by="system", unit="users",
                       state=Job.State.SUCCEEDED, finished_at=timezone.now(),
                       result={"scores": {"portfolio": 0.96, "risk": 1.0}, "per_projection": {}})
    staff(Client()).get("/infrastructure/")  # one request for the latency histogram
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    found = families(response.content)

    # every section was read
    assert {labels["section"]: v for labels, v in found["lucent_metrics_section_failed"]} == {
        s: 0.0 for s in ("projections", "health", "jobs", "consistency", "canary", "redis", "redis_nodes", "memory",
                         "latency")}
    # the projection made to lag: its figures as its status says, the others have no projector (no lag series)
    current = Queries(redis.Redis.from_url(settings.REDIS_URL)).projection_status("portfolio")[0]
    assert value(found, "lucent_projection_events_behind", projection="portfolio") == lagging.events_behind > 0
    assert value(found, "lucent_projection_lag_seconds", projection="portfolio") == pytest.approx(current.lag_seconds, abs=1.0)
    assert value(found, "lucent_projection_lag_seconds", projection="portfolio") >= 0
    assert "lucent_projection_throughput_events_per_second" in found
    assert [labels["projection"] for labels, _ in found["lucent_projection_lag_seconds"]] == ["portfolio"]
    assert value(found, "lucent_projection_state", projection="portfolio", state="failed") == 1.0
    assert value(found, "lucent_projection_state", projection="portfolio", state="live") == 0.0
    assert value(found, "lucent_projection_state", projection="risk", state="not started") == 1.0
    assert sum(v for labels, v in found["lucent_projection_state"] if labels["projection"] == "market") == 1.0
    assert len(found["lucent_projection_state"]) == len(PROJECTIONS) * len(ProjectionState)
    assert value(found, "lucent_projection_parked_events", projection="portfolio") == 0  # stop policy: nothing parked
    # health: the stopped projection is STOPPED, one that never ran is DEAD; nothing escalated
    assert value(found, "lucent_projection_health", projection="portfolio", state="stopped") == 1.0
    assert value(found, "lucent_projection_health", projection="risk", state="dead") == 1.0
    assert sum(v for labels, v in found["lucent_projection_health"] if labels["projection"] == "market") == 1.0
    assert value(found, "lucent_recovery_escalated", projection="portfolio") == 0.0
    # jobs and consistency
    assert value(found, "lucent_job_progress_done", job=str(running.pk), kind="rebuild", target="risk", unit="events") == 120
    assert value(found, "lucent_job_progress_total", job=str(running.pk)) == 480
    assert value(found, "lucent_jobs", kind="rebuild", state="running") == 1
    assert value(found, "lucent_consistency_score", projection="portfolio") == 0.96
    assert value(found, "lucent_consistency_score", projection="risk") == 1.0
    assert value(found, "lucent_consistency_checked_timestamp_seconds", projection="risk") > 1.7e9
    # Redis: memory, memory per projection (estimated; the lagging projection holds keys), latency
    used = value(found, "lucent_redis_used_memory_bytes")
    assert used > 100_000 and value(found, "lucent_redis_memory_fragmentation_ratio") > 0
    assert value(found, "lucent_redis_max_memory_bytes") >= 0
    assert 0 < value(found, "lucent_redis_projection_memory_bytes", projection="portfolio") < used
    assert value(found, "lucent_redis_projection_keys", projection="portfolio") > 0
    assert value(found, "lucent_redis_other_keys_memory_bytes") >= 0 and value(found, "lucent_redis_keys") > 0
    assert value(found, "lucent_redis_projection_memory_bytes", projection="market") == 0  # never projected
    assert 0 < value(found, "lucent_redis_ping_seconds") < 1 and 0 < value(found, "lucent_redis_query_seconds") < 1
    # each Redis server (here the one primary, holding every live partition)
    node = f"127.0.0.1:{redis.Redis.from_url(settings.REDIS_URL).connection_pool.connection_kwargs['port']}"
    assert value(found, "lucent_redis_node_up", node=node, role="primary") == 1.0
    assert value(found, "lucent_redis_node_used_memory_bytes", node=node, role="primary") > 100_000
    assert value(found, "lucent_redis_node_partitions", node=node, role="primary") == len(PROJECTIONS)
    # web request latency, labelled by URL name
    assert value(found, "lucent_web_request_duration_seconds_count", view="console:infrastructure", method="GET",
                 status="2xx") >= 1


def test_a_section_that_fails_is_named_and_the_rest_served(client: Client, token: str, settings, redis_process) -> None:
    settings.REDIS_URL = redis_process.url
    redis_process.kill()  # Redis gone: its sections fail, jobs and consistency (the database) are still served
    found = families(client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content)
    failed = {labels["section"]: v for labels, v in found["lucent_metrics_section_failed"]}
    assert failed["redis"] == failed["redis_nodes"] == failed["projections"] == failed["memory"] == 1.0
    assert failed["jobs"] == failed["consistency"] == 0.0
    assert "lucent_jobs" in found and "lucent_redis_used_memory_bytes" not in found


def test_canary_freshness_per_projection(client: Client, token: str, settings, redis_process: RedisProcess,
                                         store_process: StoreProcess) -> None:
    from projections.eventstore import EventStore
    from projections.projector.canary import append_canary

    settings.REDIS_URL, settings.EVENTSTORE_URI = redis_process.url, store_process.uri
    client_redis = redis.Redis.from_url(redis_process.url)
    queries = Queries(client_redis)
    runner = Runner(runner_config("market", redis_process.url, store_process.uri, exit_when_caught_up=False))
    thread, errors = in_thread(runner)
    try:
        with EventStore(store_process.uri) as store:
            wait_until(lambda: queries.projection_status("market")[0].state is ProjectionState.LIVE, 20, what="market live")
            append_canary(store, client_redis)
            seen = wait_until(lambda: queries.canary("market"), 20, what="market to record the canary")
        found = families(client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content)
    finally:
        runner.stop()
        thread.join(10)
    assert errors == []
    assert value(found, "lucent_canary_freshness_seconds", projection="market", quantile="0.5") == seen.p50_ms / 1000
    assert value(found, "lucent_canary_freshness_seconds", projection="market", quantile="0.99") == seen.p99_ms / 1000
    assert 0 <= value(found, "lucent_canary_last_freshness_seconds", projection="market") < 5
    assert value(found, "lucent_canary_last_seen_timestamp_seconds", projection="market") == seen.last_seen_ms / 1000
    assert [labels["projection"] for labels, _ in found["lucent_canary_last_seen_timestamp_seconds"]] == ["market"]
