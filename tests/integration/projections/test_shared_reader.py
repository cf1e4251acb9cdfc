"""A projector process reads ``$all`` once for all its runners (projections.projector.fanout): the read models equal
a fresh projection's, whether the runners start together, one joins far behind, or one stops taking events."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from projections.maintenance.user_rebuild import heal
from projections.projector.runner import Runner, RunnerConfig, shared_reader
from projections.readmodels import PROJECTIONS
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections.helpers import append_market, checkpoint, config, head_for, keyspace, run_to_end
from tests.waiting import wait_until


def reference(client: redis.Redis, redis_url: str, uri: str) -> dict[str, object]:
    """The keyspace of each projection run to the end on a subscription of its own (then emptied)."""
    run_to_end(redis_url, uri, PROJECTIONS, batch_size=200, reader_process_after=-1)
    expected = keyspace(client)
    client.flushdb()
    return expected


def assert_equal_to_a_reference(client: redis.Redis, redis_process: RedisProcess, store_process: StoreProcess) -> None:
    """The live keyspace equals the projections run to the end each on a subscription of its own."""
    live = keyspace(client)
    client.flushdb()
    assert live == reference(client, redis_process.url, store_process.uri)


def caught_up(client: redis.Redis, uri: str, names: tuple[str, ...] = PROJECTIONS) -> bool:
    return all(checkpoint(client, name) >= head_for(uri, name) for name in names)


@contextmanager
def running(runners: list[Runner]) -> Iterator[list[threading.Thread]]:
    threads = [threading.Thread(target=r.run, daemon=True, name=r.config.projection) for r in runners]
    for thread in threads:
        thread.start()
    try:
        yield threads
    finally:
        for runner in runners:
            runner.stop()
        for thread in threads:
            thread.join(10)


def live_config(name: str, redis_process: RedisProcess, store_process: StoreProcess, **over: object) -> RunnerConfig:
    return config(name, redis_process.url, store_process.uri, exit_when_caught_up=False, **over)


def test_four_projections_started_together_read_all_once_through_a_reader_process(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 1500)
    client = redis.Redis.from_url(redis_process.url)
    expected_before = reference(client, redis_process.url, store_process.uri)
    assert expected_before  # the market gave every projection something to project

    base = live_config("portfolio", redis_process, store_process, reader_process_after=200)
    shared = shared_reader(base)
    runners = [Runner(live_config(n, redis_process, store_process, reader_process_after=200), healer=heal, shared=shared)
               for n in PROJECTIONS]
    try:
        with running(runners):
            wait_until(lambda: caught_up(client, store_process.uri), 60, what="every projection to catch up")
            append_market(store_process.uri, 300, start=1500)  # live traffic, through the same reading
            wait_until(lambda: caught_up(client, store_process.uri), 60, what="every projection to apply the traffic")
            assert all(r.caught_up for r in runners)
    finally:
        shared.stop()
    assert shared.reads == 1  # one subscription to $all, for all four, from the first event to the live traffic
    assert_equal_to_a_reference(client, redis_process, store_process)


def test_a_projection_joining_far_behind_catches_up_alone_and_the_live_ones_go_on(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 1200)
    client = redis.Redis.from_url(redis_process.url)
    shared = shared_reader(live_config("portfolio", redis_process, store_process))
    early = [Runner(live_config(n, redis_process, store_process), healer=heal, shared=shared) for n in ("portfolio", "risk")]
    try:
        with running(early):
            wait_until(lambda: caught_up(client, store_process.uri, ("portfolio", "risk")), 60, what="the first two to catch up")
            late = [Runner(live_config(n, redis_process, store_process, reader_process_after=100), healer=heal, shared=shared)
                    for n in ("market", "leaderboards")]
            with running(late):
                append_market(store_process.uri, 300, start=1200)
                wait_until(lambda: caught_up(client, store_process.uri), 60, what="all four to catch up")
                # the live ones were never sent back to the beginning: one reading for them, one per gap re-read
                assert shared.reads <= 3
    finally:
        shared.stop()
    assert_equal_to_a_reference(client, redis_process, store_process)


def test_a_projection_that_takes_no_events_does_not_hold_the_others(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 600)
    client = redis.Redis.from_url(redis_process.url)
    shared = shared_reader(live_config("portfolio", redis_process, store_process))
    shared.stall_s = 0.3
    released = threading.Event()

    def hold(step: str) -> None:  # the market's runner stalls before each batch until released
        if step == "read":
            released.wait(60)

    runners = [Runner(live_config(n, redis_process, store_process, batch_size=20), healer=heal, shared=shared,
                      hook=hold if n == "market" else None) for n in PROJECTIONS]
    try:
        with running(runners):
            others = tuple(n for n in PROJECTIONS if n != "market")
            append_market(store_process.uri, 600, start=600)  # more than the held runner's feed holds
            wait_until(lambda: caught_up(client, store_process.uri, others), 60, what="the others to catch up")
            assert checkpoint(client, "market") < head_for(store_process.uri, "market")
            released.set()
            wait_until(lambda: caught_up(client, store_process.uri), 60, what="the held one to catch up once released")
    finally:
        released.set()
        shared.stop()
    assert_equal_to_a_reference(client, redis_process, store_process)
