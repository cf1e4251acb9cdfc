"""The live projector publishes RiskLevelChanged / PortfolioSignificantlyUpdated once per cause: through
retried batches, a kill -9 between commit and append, restarts; never from a rebuild."""
from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from projections import keys
from projections.events import (
    PortfolioSignificantlyUpdated,
    RiskLevelChanged,
    decode,
    published_portfolio_stream,
    published_risk_stream,
)
from projections.eventstore import EventStore, ProposedEvent
from projections.maintenance.control import Unattended
from projections.maintenance.generations import live_generation, switch_to
from projections.maintenance.user_rebuild import rebuild_user
from projections.projector.runner import Runner
from projections.queries import published_events
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections.helpers import config, in_thread
from tests.unit.eventfactory import T0, iso
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[3]
# scores 4.42 (medium), 5.64, 6.86 (high), 7.28, 8.1 (critical): three level changes, by trades 0, 2 and 4
AMOUNTS = (60_000.0, 60_000.0, 60_000.0, 60_000.0, 100_000.0)
CAUSES = (0, 2, 4)


def trade_id(user: str, i: int) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_OID, f"published-test-{user}-{i}")


def append_trades(uri: str, user: str, amounts: tuple[float, ...] = AMOUNTS, pair: str = "BTC-USD") -> None:
    """One append per trade of ``user`` (1 of ``pair`` at ``amount``), with a correlation id of its own."""
    with EventStore(uri) as store:
        for i, amount in enumerate(amounts):
            data = {"tradeId": f"t-{user}-{i}", "userId": user, "pair": pair, "side": "buy", "amount": 1.0,
                    "price": amount, "amountUsd": amount, "exchange": "binance", "executedAt": iso(T0 + timedelta(minutes=i))}
            meta = {"correlationId": f"order-{user}-{i}", "causationId": f"order-{user}-{i}", "source": "test"}
            store.append(f"trades-{user}", [ProposedEvent("TradeExecuted", data, meta, id=trade_id(user, i))])


def stream_of(uri: str, stream: str) -> list[Any]:
    with EventStore(uri) as store:
        return list(store.read_stream(stream))


def level_changes(uri: str, user: str = "alice") -> list[RiskLevelChanged]:
    return [e for e in map(decode, stream_of(uri, published_risk_stream(user))) if isinstance(e, RiskLevelChanged)]


def live(projection: str, redis_process: RedisProcess, store_process: StoreProcess, **over: Any) -> Runner:
    return Runner(config(projection, redis_process.url, store_process.uri, publish_events=True, **over))


def prime(redis_process: RedisProcess, store_process: StoreProcess) -> None:
    """A projection that has started before (a checkpoint, its horizon set): what it folds next is news."""
    append_trades(store_process.uri, "bob", (100.0,))
    live("risk", redis_process, store_process).run()


def assert_published_once(uri: str) -> None:
    changes = level_changes(uri)
    assert [(c.old_level, c.new_level) for c in changes] == [("low", "medium"), ("medium", "high"), ("high", "critical")]
    assert [c.source_event_id for c in changes] == [str(trade_id("alice", i)) for i in CAUSES]


def test_a_live_projector_publishes_one_event_per_cause(redis_process: RedisProcess, store_process: StoreProcess) -> None:
    runners = [live(p, redis_process, store_process, exit_when_caught_up=False) for p in ("risk", "portfolio")]
    threads = [in_thread(r) for r in runners]
    wait_until(lambda: all(r.caught_up for r in runners), 30, what="the projectors to go live")
    append_trades(store_process.uri, "alice")
    wait_until(lambda: len(level_changes(store_process.uri)) == 3, 30, what="three RiskLevelChanged")
    wait_until(lambda: len(stream_of(store_process.uri, published_portfolio_stream("alice"))) == 5, 30,
               what="five PortfolioSignificantlyUpdated")  # 0 -> 60k -> 120k -> 180k -> 240k -> 500k: each > 10 %
    for runner, (thread, errors) in zip(runners, threads):
        runner.stop()
        thread.join(10)
        assert errors == []
    assert_published_once(store_process.uri)
    with EventStore(store_process.uri) as store:
        [first] = [e for e in store.client.read_stream(published_risk_stream("alice"), limit=1)]
        summary = published_events(store, "alice")
    assert first.metadata and b'"causationId":"%s"' % str(trade_id("alice", 0)).encode() in first.metadata
    assert b'"correlationId":"order-alice-0"' in first.metadata
    assert len(summary) == 8 and summary[0].envelope.position > summary[-1].envelope.position
    assert {type(e) for e in summary} == {RiskLevelChanged, PortfolioSignificantlyUpdated}
    client = redis.Redis.from_url(redis_process.url)
    assert not client.exists(keys.outbox("risk")) and not client.exists(keys.outbox("portfolio"))


@pytest.mark.parametrize("step", ["write", "commit"])
def test_a_retried_batch_publishes_once(step: str, redis_process: RedisProcess, store_process: StoreProcess) -> None:
    prime(redis_process, store_process)
    append_trades(store_process.uri, "alice")
    client = redis.Redis.from_url(redis_process.url)
    outbox: dict[bytes, bytes] = {}

    def hook(at: str) -> None:  # Redis drops the connection once: before the batch's commit or just after it
        if at == step and not outbox:
            outbox.update(client.hgetall(keys.outbox("risk")) or {b"": b""})
            raise redis.ConnectionError(f"dropped at {at}")

    Runner(config("risk", redis_process.url, store_process.uri, publish_events=True), hook=hook).run()
    assert outbox and (len(outbox) == 3) == (step == "commit")  # after the commit, the outbox held the three
    assert_published_once(store_process.uri)
    if step == "commit":  # as if killed between the append and the outbox's removal: appended again at start
        client.hset(keys.outbox("risk"), mapping=outbox)
        live("risk", redis_process, store_process).run()
        assert not client.exists(keys.outbox("risk"))
        assert_published_once(store_process.uri)  # same ids, same stream: the store keeps the first of each


KILLED_AFTER_COMMIT = """
import os, sys
import redis
from projections import keys
from projections.projector.runner import Runner
from tests.integration.projections.helpers import config

url, uri = sys.argv[1], sys.argv[2]
client = redis.Redis.from_url(url)

def hook(step):
    if step == "commit" and client.hlen(keys.outbox("risk")):
        os._exit(9)  # kill -9 between the commit and the append: no cleanup, nothing flushed

Runner(config("risk", url, uri, publish_events=True), hook=hook).run()
"""


def test_killed_between_commit_and_append_then_restarted_publishes_once(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    prime(redis_process, store_process)
    append_trades(store_process.uri, "alice")
    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER_COMMIT, redis_process.url, store_process.uri],
                            cwd=ROOT, timeout=60, capture_output=True, text=True)
    assert killed.returncode == 9, killed.stderr
    client = redis.Redis.from_url(redis_process.url)
    assert client.hlen(keys.outbox("risk")) == 3 and level_changes(store_process.uri) == []  # committed, not appended
    live("risk", redis_process, store_process).run()
    assert_published_once(store_process.uri)
    assert not client.exists(keys.outbox("risk"))
    live("risk", redis_process, store_process).run()
    assert_published_once(store_process.uri)


def test_history_and_rebuilds_publish_nothing(redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_trades(store_process.uri, "alice")  # history before the projection's first start
    live("risk", redis_process, store_process).run()
    assert level_changes(store_process.uri) == []  # a first start folds history: a replay, not news
    append_trades(store_process.uri, "carol")
    with EventStore(store_process.uri) as store:
        head = store.client.get_commit_position()
    client = redis.Redis.from_url(redis_process.url)
    switch_to(client, config("risk", redis_process.url, store_process.uri, publish_events=True), 2, Unattended())
    assert live_generation(client, "risk") == 2  # the rebuild folded carol's trades into generation 2 and flipped
    with EventStore(store_process.uri) as store:
        assert store.client.get_commit_position() == head  # nothing appended
    assert level_changes(store_process.uri, "carol") == [] and not client.exists(keys.outbox("risk"))


def test_a_per_user_rebuild_publishes_nothing(redis_process: RedisProcess, store_process: StoreProcess) -> None:
    prime(redis_process, store_process)
    append_trades(store_process.uri, "alice")
    live("risk", redis_process, store_process).run()
    assert_published_once(store_process.uri)
    client = redis.Redis.from_url(redis_process.url)
    client.delete(keys.KeySpace("risk").user_risk("alice"))  # lost: the rebuild writes the user's state again
    with EventStore(store_process.uri) as store:
        head = store.client.get_commit_position()
        rebuild_user(client, store, "alice")
        assert store.client.get_commit_position() == head  # nothing appended
    assert client.hget(keys.KeySpace("risk").user_risk("alice"), "riskLevel") == b"critical"
    assert not client.exists(keys.outbox("risk"))
