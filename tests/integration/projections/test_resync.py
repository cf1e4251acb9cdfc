"""Resync: a running projector asked by an operator drops its state and resubscribes from its checkpoint."""
from __future__ import annotations

import pytest
import redis

from projections import keys
from projections.actions import request_resync
from projections.errors import NotRunning
from projections.eventstore import EventStore, ProposedEvent
from projections.projector.runner import Runner
from projections.queries import Queries
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections.helpers import append_market, checkpoint, config, head_for, in_thread
from tests.waiting import wait_until

TRADE = {"tradeId": "t-resync", "userId": "rosa", "pair": "BTC-USD", "side": "buy", "amount": 1.0, "price": 100.0,
         "amountUsd": 100.0, "exchange": "binance", "executedAt": "2026-01-05T10:00:00Z"}


def test_a_resync_restarts_the_subscription_and_loses_nothing(redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 600, bad_ratio=0.0)
    client = redis.Redis.from_url(redis_process.url)
    queries = Queries(client)
    with pytest.raises(NotRunning):
        request_resync(client, "portfolio")  # nothing runs it yet: refused, nothing left behind
    assert not client.exists(keys.resync_request("portfolio"))
    runner = Runner(config("portfolio", redis_process.url, store_process.uri, exit_when_caught_up=False))
    thread, errors = in_thread(runner)
    try:
        wait_until(lambda: queries.projection_status("portfolio")[0].alive and runner.caught_up, 30, what="live")
        sessions = runner.status.sessions

        request_resync(client, "portfolio")

        wait_until(lambda: runner.status.sessions == sessions + 1, 5, what="the projector to resubscribe")
        assert not client.exists(keys.resync_request("portfolio"))  # consumed
        with EventStore(store_process.uri) as store:
            store.append("trades-rosa", [ProposedEvent("TradeExecuted", TRADE)])
        head = head_for(store_process.uri, "portfolio")
        wait_until(lambda: checkpoint(client, "portfolio") == head, 20, what="the new event to be applied")
        assert queries.portfolio_summary("rosa").trade_count == 1
        wait_until(lambda: queries.projection_status("portfolio")[0].sessions == sessions + 1, 5,
                   what="the status to show the new subscription")
    finally:
        runner.stop()
        thread.join(10)
    assert errors == []
