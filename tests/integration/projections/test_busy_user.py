"""A busy user (issue 22, item 3): the per-user rebuild and the consistency check fold a user's history while
reading it page by page, so the memory they take does not grow with the user's event count (the figure for a
1M-event user is ``benchmarks/bench_busy_user.py``'s)."""
from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
import redis

from projections.errors import JobCancelled
from projections.events import user_streams
from projections.eventstore import EventStore
from projections.keys import KeySpace
from projections.maintenance.consistency import check_user
from projections.maintenance.user_rebuild import rebuild_user
from projections.simulation.appender import append_events
from projections.simulation.market import Market
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections.helpers import keyspace, run_to_end

SMALL, BIG = 6_000, 24_000  # events of the one-trader market; four times the events must not take 1.6 times the memory
# (holding the whole history took 4.2 times the memory for five times the events, 3k and 15k; folded page by page,
# 1.4 times here, where the small one has not yet filled its pages and chunks; 1M events: the benchmark)


def one_user_market(uri: str, n: int) -> None:
    """``n`` events of a market with one trader (its trades, rebalances and closures, and the prices)."""
    with EventStore(uri) as store:
        append_events(store, Market(seed=5, users=1, pairs=3, exchanges=2).events(n), batch_size=500)


def peak_kib(work: Callable[[], Any]) -> int:
    """The most memory Python held at once during ``work``, above what it held before."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        work()
        return (tracemalloc.get_traced_memory()[1] - before) // 1024
    finally:
        tracemalloc.stop()


def replayed(client: redis.Redis) -> dict[str, Any]:
    """The read models without the state epoch (a per-user rebuild bumps it, a replay does not)."""
    return {k: v for k, v in keyspace(client).items() if not k.endswith(":state-epoch")}


def measured(redis_url: str, uri: str) -> tuple[str, dict[str, int], dict[str, Any]]:
    """Project the store, lose the user's keys, then the peak memory of a rebuild and of a check of the user."""
    client = redis.Redis.from_url(redis_url)
    run_to_end(redis_url, uri)
    full = replayed(client)
    user = next(iter(client.zrange(KeySpace("portfolio").portfolio_values(), 0, 0))).decode()
    client.delete(KeySpace("portfolio").portfolio(user), KeySpace("risk").user_risk(user), KeySpace("leaderboards").trader(user))
    with EventStore(uri) as store:
        peaks = {"rebuild": peak_kib(lambda: rebuild_user(client, store, user)),
                 "check": peak_kib(lambda: check_user(client, store, user))}
        checks = check_user(client, store, user)
    assert replayed(client) == full  # rebuilt exactly
    assert all(not c.differences for c in checks) and sum(c.events for c in checks) > SMALL
    return user, peaks, full


def test_a_busy_users_rebuild_and_check_take_memory_that_does_not_grow_with_the_users_events(
        redis_process: RedisProcess, store_process: StoreProcess, tmp_path: Any) -> None:
    one_user_market(store_process.uri, SMALL)
    _, small, _ = measured(redis_process.url, store_process.uri)
    redis.Redis.from_url(redis_process.url).flushall()
    with EventStore(store_process.uri) as store:  # the same market, five times as long
        append_events(store, list(Market(seed=5, users=1, pairs=3, exchanges=2).events(BIG))[SMALL:], batch_size=500)
    _, big, _ = measured(redis_process.url, store_process.uri)

    for work in ("rebuild", "check"):
        assert big[work] < 1.6 * small[work], f"{work}: {big[work]} KiB for {BIG:,} events, {small[work]} KiB for {SMALL:,}"


class Recording:
    """A job's control as a test sees it: what was reported; asks to cancel after ``cancel_after`` reports."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.reports: list[tuple[int, int | None, str]] = []
        self.cancel_after = cancel_after

    def report(self, done: int, total: int | None, phase: str = "") -> None:
        self.reports.append((done, total, phase))

    def cancelled(self) -> bool:
        return self.cancel_after is not None and len(self.reports) > self.cancel_after


def test_a_busy_users_rebuild_reports_the_events_read_and_stops_at_a_cancel_mid_read(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    one_user_market(store_process.uri, SMALL)
    client = redis.Redis.from_url(redis_process.url)
    run_to_end(redis_process.url, store_process.uri)
    user = next(iter(client.zrange(KeySpace("portfolio").portfolio_values(), 0, 0))).decode()
    lost = KeySpace("risk").user_risk(user)
    client.delete(lost)

    with EventStore(store_process.uri) as store:
        stopped = Recording(cancel_after=2)
        with pytest.raises(JobCancelled):
            rebuild_user(client, store, user, control=stopped)
        assert not client.exists(lost)  # nothing written: the cancel came while the events were read
        watched = Recording()
        rebuild_user(client, store, user, control=watched)
        events = sum(1 for stream in user_streams(user) for _ in store.read_stream(stream))
    reading = [(done, total) for done, total, phase in watched.reports if phase.startswith(f"reading {user}'s events")]
    assert len(reading) >= 3 and all(total == events and done <= total for done, total in reading)
    assert [done for done, _ in reading] == sorted(done for done, _ in reading)
    assert client.exists(lost) and watched.reports[-1][2] == f"rebuilt {user}"
