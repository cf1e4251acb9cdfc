"""Event ids are unique only within a stream (issue 22, item 1): two users' streams may hold an event with the
same id. Alerts, parked events and published events are keyed by stream and id, so neither overwrites the other."""
from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import redis

from projections import keys
from projections.actions import acknowledge_alert, park_bad_event, retry_parked
from projections.errors import AmbiguousEvent, NotParked
from projections.events import RiskLevelChanged, decode, published_risk_stream
from projections.eventstore import EventStore, ProposedEvent
from projections.projector.runner import Runner
from projections.queries import Queries
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections.helpers import config, in_thread, run_to_end
from tests.unit.eventfactory import T0, iso
from tests.waiting import wait_until

SHARED = uuid.UUID("7d1c4c1e-2b8a-4f7e-9a51-2c4f3b1d0a99")  # the one event id both users' streams hold
USERS = ("alice", "bob")


def trade(user: str, usd: float = 150_000.0, amount: Any = 1.0) -> dict[str, Any]:
    return {"tradeId": f"t-{user}", "userId": user, "pair": "BTC-USD", "side": "buy", "amount": amount,
            "price": usd, "amountUsd": usd, "exchange": "binance", "executedAt": iso(T0)}


def append_same_id(uri: str, data_of: Any) -> None:
    with EventStore(uri) as store:
        for user in USERS:
            store.append(f"trades-{user}", [ProposedEvent("TradeExecuted", data_of(user), id=SHARED)])


def test_two_users_alerts_raised_by_events_with_one_id_are_two_and_acknowledged_apart(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_same_id(store_process.uri, trade)  # $150K in one trade: score 5 + 2 -> high, for each user
    run_to_end(redis_process.url, store_process.uri, ("risk",))
    queries = Queries(redis.Redis.from_url(redis_process.url))
    alerts = queries.active_alerts()
    assert sorted(a.user_id for a in alerts) == ["alice", "bob"]
    assert len({a.alert_id for a in alerts}) == 2 and {a.event_id for a in alerts} == {str(SHARED)}

    bobs = next(a for a in alerts if a.user_id == "bob")
    with EventStore(store_process.uri) as store:
        first = acknowledge_alert(store, "bob", bobs.alert_id, "ops.jane")
        assert acknowledge_alert(store, "bob", bobs.alert_id, "ops.jane") == first  # a double click appends once
        assert len(list(store.read_stream("risk-bob"))) == 1
    run_to_end(redis_process.url, store_process.uri, ("risk",))
    assert [a.user_id for a in queries.active_alerts()] == ["alice"]


def test_two_bad_events_with_one_id_are_both_parked_and_named_apart(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_same_id(store_process.uri, lambda user: trade(user, amount="2.0"))  # amount as a string: bad
    run_to_end(redis_process.url, store_process.uri, ("portfolio",))
    client = redis.Redis.from_url(redis_process.url)
    parked = Queries(client).parked_events("portfolio")
    assert sorted(p.stream for p in parked) == ["trades-alice", "trades-bob"]
    assert {p.event_id for p in parked} == {str(SHARED)}

    with pytest.raises(AmbiguousEvent, match="trades-alice/.*trades-bob/"):
        retry_parked(client, "portfolio", str(SHARED))
    assert not client.exists(keys.retry_requests("portfolio"))
    with pytest.raises(NotParked):
        retry_parked(client, "portfolio", f"trades-carol/{SHARED}")
    alice, bob = sorted(parked, key=lambda p: p.stream)
    retry_parked(client, "portfolio", f"trades-alice/{SHARED}")
    retry_parked(client, "portfolio", str(bob.position))  # the commit position names one event too
    assert client.smembers(keys.retry_requests("portfolio")) == {alice.key.encode(), bob.key.encode()}


def test_a_stopped_projection_parks_only_the_event_it_stopped_on(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_same_id(store_process.uri, lambda user: trade(user, amount="2.0"))
    client = redis.Redis.from_url(redis_process.url)
    queries = Queries(client)
    runner = Runner(config("portfolio", redis_process.url, store_process.uri, on_bad_event="stop",
                           exit_when_caught_up=False, lease_ms=600))
    thread, errors = in_thread(runner)

    def stopped_on() -> str:
        (status,) = queries.projection_status("portfolio")
        return status.stopped_on.stream if status.stopped_on else ""

    wait_until(lambda: stopped_on() == "trades-alice", 20, what="the projection to stop on alice's bad event")
    park_bad_event(client, "portfolio", str(SHARED))  # plain id: the event it is stopped on is one
    wait_until(lambda: stopped_on() == "trades-bob", 20, what="the projection to stop on bob's bad event")
    assert [p.stream for p in queries.parked_events("portfolio")] == ["trades-alice"]
    park_bad_event(client, "portfolio", f"trades-bob/{SHARED}")
    wait_until(lambda: len(queries.parked_events("portfolio")) == 2, 20, what="bob's event parked too")
    runner.stop()
    thread.join(10)
    assert not errors


def test_causes_with_one_id_in_two_users_streams_publish_two_events(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    def publishing() -> None:
        Runner(config("risk", redis_process.url, store_process.uri, publish_events=True)).run()

    with EventStore(store_process.uri) as store:
        store.append("trades-carol", [ProposedEvent("TradeExecuted", trade("carol", 100.0))])
    publishing()  # a projection that started before: what it folds next is news, not history
    append_same_id(store_process.uri, trade)
    publishing()  # both causes in one batch, so in one commit's outbox

    def published(user: str) -> list[RiskLevelChanged]:
        with EventStore(store_process.uri) as store:
            events = [decode(e) for e in store.read_stream(published_risk_stream(user))]
        return [e for e in events if isinstance(e, RiskLevelChanged)]

    (alice,), (bob,) = published("alice"), published("bob")
    assert alice.source_event_id == bob.source_event_id == str(SHARED)
    assert alice.envelope.event_id != bob.envelope.event_id
    assert not redis.Redis.from_url(redis_process.url).exists(keys.outbox("risk"))


def test_a_record_parked_before_by_id_alone_is_listed_retried_and_moved_to_stream_slash_id(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    with EventStore(store_process.uri) as store:
        store.append("trades-alice", [ProposedEvent("TradeExecuted", trade("alice", amount="2.0"), id=SHARED)])
    run_to_end(redis_process.url, store_process.uri, ("portfolio",))
    client = redis.Redis.from_url(redis_process.url)
    member, legacy = f"trades-alice/{SHARED}", str(SHARED)
    client.hset(keys.parked("portfolio"), legacy, client.hget(keys.parked("portfolio"), member))  # as parked before
    client.zadd(keys.parked_index("portfolio"), {legacy: client.zscore(keys.parked_index("portfolio"), member)})
    client.hdel(keys.parked("portfolio"), member)
    client.zrem(keys.parked_index("portfolio"), member)
    queries = Queries(client)
    (listed,) = queries.parked_events("portfolio")
    assert listed.key == legacy and queries.parked_member("portfolio", member) == legacy

    runner = Runner(config("portfolio", redis_process.url, store_process.uri, exit_when_caught_up=False, lease_ms=600))
    thread, errors = in_thread(runner)
    wait_until(lambda: runner.caught_up, 20, what="the projector to go live")
    retry_parked(client, "portfolio", legacy)  # still bad: parked again, as stream/id
    wait_until(lambda: [p.key for p in queries.parked_events("portfolio")] == [member], 20, what="the record moved")
    assert json.loads(client.hget(keys.parked("portfolio"), member))["retried"]
    runner.stop()
    thread.join(10)
    assert not errors
