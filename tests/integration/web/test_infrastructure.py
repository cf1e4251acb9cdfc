"""The infrastructure sampler (writes every series, trims to the hour) and the Infrastructure page with and
without samples."""
from __future__ import annotations

import html
import json
import re
import time

import pytest
from django.template import Context, Template
from django.test import Client

from lucent_admin import bootstrap
from lucent_admin.operations.observability import sample_infrastructure
from projections import infrastructure as infra
from projections import keys
from projections.eventstore import EventStore, ProposedEvent
from projections.keys import KeySpace
from projections.partitions import Partition
from projections.queries import Queries
from projections.readmodels import PROJECTIONS
from tests.accounts import account

HOUR = 3_600_000


def beating(client, projection: str, throughput: float) -> None:
    client.hset(keys.status(projection), mapping={"state": "live", "throughput": str(throughput)})
    client.set(keys.heartbeat(projection), '{"at": 0, "projector": "t", "state": "live"}', ex=30)


def appended(uri: str, n: int) -> None:
    with EventStore(uri) as store:
        store.append("infra-test", [ProposedEvent("InfraProbe", {"i": i}) for i in range(n)])


def test_the_sampler_writes_every_series_and_trims_to_the_hour(redis_client, eventstore_uri: str) -> None:
    appended(eventstore_uri, 5)
    beating(redis_client, "risk", 12.5)  # market has no heartbeat: no update rate
    redis_client.hset(keys.status("market"), mapping={"state": "live", "throughput": "9"})
    queries = Queries(redis_client)
    now = int(time.time() * 1000)
    with EventStore(eventstore_uri) as store:
        figures = infra.record_samples(redis_client, store, PROJECTIONS, queries.projection_status, now)
        later = infra.record_samples(redis_client, store, PROJECTIONS, queries.projection_status, now + HOUR // 2)
        infra.record_samples(redis_client, store, PROJECTIONS, queries.projection_status, now + HOUR + 1)
    assert figures[infra.rate_series("risk")] == 12.5 and infra.rate_series("market") not in figures
    assert figures[infra.REDIS_USED] > 0 and figures[infra.REDIS_FRAGMENTATION] > 0
    assert 0 < figures[infra.PING_P50] <= figures[infra.PING_P99] < 1
    assert 0 < figures[infra.QUERY_P50] <= figures[infra.QUERY_P99] < 1
    assert figures[infra.STORE_HEAD] > 0 and figures[infra.APPEND_RATE] >= 5 / 60
    assert set(figures) >= {infra.memory_series(p) for p in PROJECTIONS}
    history = queries.infra_history(list(figures), now + HOUR + 1)
    for series in figures:  # the first sample is now older than an hour: trimmed from every series
        assert [at for at, _ in history[series]] == [now + HOUR // 2, now + HOUR + 1], series
        assert redis_client.zcard(keys.infra_history(series)) == 2
    assert history[infra.rate_series("risk")][0] == (now + HOUR // 2, 12.5)
    assert history[infra.STORE_HEAD][0][1] == later[infra.STORE_HEAD]  # a position is kept exactly


def test_without_the_store_its_series_are_left_out(redis_client) -> None:
    figures = infra.record_samples(redis_client, None, PROJECTIONS, Queries(redis_client).projection_status, 10 * HOUR)
    assert infra.STORE_HEAD not in figures and infra.APPEND_RATE not in figures and infra.REDIS_USED in figures


def test_memory_per_projection_is_exact_on_a_small_keyspace_and_estimated_on_a_large_one(redis_client) -> None:
    for i in range(300):
        redis_client.hset(keys.KeySpace("portfolio").portfolio(f"u{i}"), mapping={"cash": "1" * 100})
    for i in range(100):
        redis_client.set(keys.KeySpace("risk").user_risk(f"u{i}"), "x" * 100)
    exact = infra.memory_by_projection(redis_client, PROJECTIONS, sample=500)
    assert exact.exact and exact.projections["portfolio"].keys == 300 and exact.projections["risk"].keys == 100
    assert exact.projections["market"].bytes == 0 and exact.projections["portfolio"].bytes > exact.projections["risk"].bytes
    assert exact.other.keys == 0
    split = KeySpace("leaderboards", 1, Partition("leaderboards", 3, 4).tag)  # a partition's keys are its projection's
    redis_client.hset(split.trader("u1"), mapping={"volume": "1"})
    assert infra.memory_by_projection(redis_client, PROJECTIONS, sample=500).projections["leaderboards"].keys == 1
    redis_client.delete(split.trader("u1"))
    estimate = infra.memory_by_projection(redis_client, PROJECTIONS, sample=200)  # fewer than the 400 keys: sampled
    assert not estimate.exact and estimate.sampled_keys == 200 and estimate.total_keys == 400
    assert 150 < estimate.projections["portfolio"].keys < 390  # 300 expected; RANDOMKEY draws with replacement
    total = sum(p.bytes for p in exact.projections.values())
    assert 0.7 * total < sum(p.bytes for p in [*estimate.projections.values(), estimate.other]) < 1.3 * total


@pytest.fixture
def staff(client: Client, redis_client) -> Client:
    bootstrap.queries()._memory = None  # the memory estimate of an earlier test's keyspace is not this one's
    client.force_login(account("ops", "pw-ops-123"))
    return client


def charts(page: str) -> list[dict]:
    return [json.loads(html.unescape(m)) for m in re.findall(r'data-trend="([^"]+)"', page)]


@pytest.mark.django_db
def test_the_page_without_samples_says_so(staff: Client) -> None:
    page = staff.get("/infrastructure/").content.decode()
    assert '<a href="/infrastructure/" aria-current="page">Infrastructure</a>' in page
    assert page.count('data-field="no-samples"') == 4 and charts(page) == []
    assert "No samples yet: beat records one every 15 s" in page
    assert re.search(r'data-field="ping-latency">\d+\.\d\d ms · \d+\.\d\d ms<', page)  # measured now, from the web process
    assert re.search(r'data-field="redis-used">[\d,.]+ (KiB|MiB)<', page)
    assert page.count("— (no projector beats)") == len(PROJECTIONS)
    assert 'data-field="store-head"' not in page and "0.00" not in page
    # the test's one Redis: a primary, no replica
    assert re.search(r'<tr data-node="127\.0\.0\.1:\d+" data-role="primary">.*<td data-field="link">up</td>', page)
    assert "no replica is connected" in page


@pytest.mark.django_db
def test_the_page_with_samples_draws_each_chart_in_its_units(staff: Client, redis_client, settings, eventstore_uri) -> None:
    settings.EVENTSTORE_URI = eventstore_uri
    appended(eventstore_uri, 3)
    beating(redis_client, "portfolio", 42.0)
    beating(redis_client, "market", 0.4)
    for i in range(50):
        redis_client.hset(keys.KeySpace("portfolio").portfolio(f"u{i}"), mapping={"cash": "1" * 64})
    figures = sample_infrastructure()
    sample_infrastructure()
    page = staff.get("/infrastructure/").content.decode()
    assert 'data-field="no-samples"' not in page
    drawn = {c["kind"]: c for c in charts(page)}
    assert set(drawn) == {"bytes", "ratio", "millis", "rate"}
    memory = next(c for c in charts(page) if c["kind"] == "bytes")
    assert len(memory["x"]) == 2 and memory["to"] - memory["from"] == 3600
    assert set(memory["series"]) == {"used (all of Redis)", *PROJECTIONS} and memory["series"]["portfolio"][0] > 0
    rates = next(c for c in charts(page) if c["kind"] == "rate" and "portfolio" in c["series"])
    assert rates["series"]["portfolio"] == [42.0, 42.0] and rates["series"]["risk"] == [None, None]  # risk: no heartbeat
    assert 'data-field="update-rate">42/s<' in page and 'data-field="update-rate">0.4/s<' in page
    assert f'data-field="store-head">{int(figures[infra.STORE_HEAD])}<' in page
    assert re.search(r'data-field="append-rate">\d[\d,.]*/s<', page)
    assert re.search(r'data-projection="portfolio"><td>portfolio</td><td class="num" data-field="projection-memory">[\d,.]+ KiB', page)


def test_one_format_per_kind() -> None:
    render = Template("{% load numbers %}{{ a|bytes }}|{{ b|bytes }}|{{ c|bytes }}|{{ d|millis }}|{{ e|ratio }}|"
                      "{{ f|rate }}|{{ g|rate }}|{{ h|bytes }}|{{ i|millis }}").render
    out = render(Context({"a": 512, "b": 12.3 * 1024, "c": 234.5 * 2**20, "d": 0.000271, "e": 1.083, "f": 0.44,
                          "g": 1250.4, "h": None, "i": 27.6884}))
    assert out == "512 B|12.3 KiB|234.5 MiB|0.27 ms|1.08×|0.4/s|1,250/s|—|27,688 ms"
