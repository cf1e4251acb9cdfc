"""A parked event is retried by id: still bad -> stays parked; fixed -> folded and unparked."""
from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from projections import keys
from projections.actions import retry_parked
from projections.errors import NotParked
from projections.events import decode
from projections.eventstore import EventStore, ProposedEvent
from projections.projector import batch as batch_module
from projections.projector.runner import Runner
from projections.queries import Queries
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections.helpers import config, in_thread
from tests.waiting import wait_until

TRADE = {"tradeId": "t1", "userId": "alice", "pair": "BTC-USD", "side": "buy", "amount": "2.0", "price": 100.0,
         "amountUsd": 200.0, "exchange": "binance", "executedAt": "2026-01-05T10:00:00Z"}


def lenient(raw: Any) -> Any:
    """The 'fix': amounts sent as strings are accepted."""
    data = json.loads(raw.data)
    if isinstance(data.get("amount"), str):
        data["amount"] = float(data["amount"])
    from dataclasses import replace

    return decode(replace(raw, data=json.dumps(data).encode()))


def test_retry_by_id(redis_process: RedisProcess, store_process: StoreProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    with EventStore(store_process.uri) as store:
        store.append("trades-alice", [ProposedEvent("TradeExecuted", TRADE)])
    client = redis.Redis.from_url(redis_process.url)
    queries = Queries(client)
    runner = Runner(config("portfolio", redis_process.url, store_process.uri, exit_when_caught_up=False, lease_ms=600))
    thread, errors = in_thread(runner)
    wait_until(lambda: queries.parked_events("portfolio"), 20, what="the bad trade to be parked")
    (parked,) = queries.parked_events("portfolio")
    assert (parked.field, parked.stream) == ("amount", "trades-alice")
    with pytest.raises(NotParked):
        retry_parked(client, "portfolio", "not-parked")

    retry_parked(client, "portfolio", parked.event_id)
    wait_until(lambda: json.loads(client.hget(keys.parked("portfolio"), parked.key))["retried"], 10, what="a failed retry")
    assert queries.portfolio_summary("alice") is None

    monkeypatch.setattr(batch_module, "decode", lenient)
    retry_parked(client, "portfolio", parked.event_id)
    wait_until(lambda: queries.portfolio_summary("alice") is not None, 10, what="the fixed event to be folded")
    summary = queries.portfolio_summary("alice")
    assert summary is not None and summary.positions == {"BTC-USD": 2.0} and summary.trade_count == 1
    assert queries.parked_events("portfolio") == []
    runner.stop()
    thread.join(10)
    assert not errors
