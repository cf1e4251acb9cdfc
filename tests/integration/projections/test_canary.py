"""The freshness canary end to end in the engine: appended to the store, recorded by live runners only."""
from __future__ import annotations

from typing import Any

import redis

from projections import keys
from projections.eventstore import EventStore
from projections.maintenance.full_check import check_projection
from projections.projector.canary import append_canary
from projections.projector.runner import Runner
from projections.queries import Queries
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections.helpers import append_market, checkpoint, config, in_thread
from tests.waiting import wait_until


def live(name: str, redis_process: RedisProcess, store_process: StoreProcess, notices: list[dict[str, Any]]) -> Runner:
    return Runner(config(name, redis_process.url, store_process.uri, exit_when_caught_up=False), notifier=notices.append)


def test_live_runners_record_a_canary_and_a_stopped_one_stops_recording(redis_process: RedisProcess,
                                                                         store_process: StoreProcess) -> None:
    append_market(store_process.uri, 300, bad_ratio=0.0)
    client = redis.Redis.from_url(redis_process.url)
    queries = Queries(client)
    notices: list[dict[str, Any]] = []
    portfolio, market = (live(n, redis_process, store_process, notices) for n in ("portfolio", "market"))
    threads = [in_thread(portfolio), in_thread(market)]
    store = EventStore(store_process.uri)
    try:
        wait_until(lambda: portfolio.caught_up and market.caught_up, 30, what="both live")
        first = append_canary(store, client)
        position = int(queries.canary_appended().position)  # type: ignore[union-attr]
        for name in ("portfolio", "market"):
            seen = wait_until(lambda n=name: (f := queries.canary(n)) and f.canary_id == first and f, 10,
                              what=f"{name} to record the canary")
            assert seen.count == 1 and seen.p50_ms == seen.p99_ms == seen.last_ms
            assert 0 <= seen.last_ms < 5000 and seen.appended_at_ms == queries.canary_appended().appended_at_ms  # type: ignore[union-attr]
            assert checkpoint(client, name) >= position  # the canary moves the checkpoint like any event
        assert {n["projection"] for n in notices if n.get("canary") == first} == {"portfolio", "market"}
        assert client.zcard(keys.canary_samples("portfolio")) == 1  # one sample per canary, once

        market.stop()
        threads[1][0].join(10)
        before = queries.canary("market")
        second = append_canary(store, client)
        wait_until(lambda: queries.canary("portfolio").canary_id == second, 10, what="portfolio to record the second")  # type: ignore[union-attr]
        after = queries.canary("market")
        assert before is not None and after is not None
        assert after.canary_id == first and after.last_seen_ms == before.last_seen_ms  # stopped: nothing new
        assert after.age_ms > before.age_ms  # and its last-seen ages
        assert queries.canary("portfolio").count == 2  # type: ignore[union-attr]
    finally:
        portfolio.stop()
        market.stop()
        for thread, _ in threads:
            thread.join(10)
        store.close()
    assert [errors for _, errors in threads] == [[], []]


def test_a_rebuild_and_a_full_check_skip_canaries(redis_process: RedisProcess, store_process: StoreProcess) -> None:
    client = redis.Redis.from_url(redis_process.url)
    with EventStore(store_process.uri) as store:
        append_market(store_process.uri, 150, bad_ratio=0.0)
        append_canary(store, client)
        append_market(store_process.uri, 150, start=150, bad_ratio=0.0)
        append_canary(store, client)
        head = store.client.get_commit_position()

        Runner(config("risk", redis_process.url, store_process.uri, generation=2, publish_status=False)).run()
        assert int(client.get(keys.KeySpace("risk", 2).checkpoint) or 0) >= head - 1  # read past both canaries
        assert not client.exists(keys.canary_samples("risk"))  # a rebuild records none

        Runner(config("risk", redis_process.url, store_process.uri)).run()  # the live projector, to its end
        assert client.zcard(keys.canary_samples("risk")) == 2
        report = check_projection(client, store, "risk")
        assert report.checked > 0 and report.score == 1.0 and report.difference_count == 0
