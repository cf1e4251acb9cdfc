"""A user's events are the user's own streams' (issue 21, item 1): an event of the catalog in any other
stream (an import stream, another user's stream) is parked by the live projector with the reason, a
per-user rebuild and a consistency check agree with it, and a repair leaves the read models equal to a
fresh projection of the same store."""
from __future__ import annotations

import uuid

import redis

from projections.eventstore import EventStore, ProposedEvent
from projections.maintenance.consistency import check_users
from projections.maintenance.user_rebuild import rebuild_user
from projections.queries import Queries
from projections.readmodels import PROJECTIONS
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections.helpers import append_market, generation_content, run_to_end


def _whale_trade(user: str) -> ProposedEvent:
    data = {"tradeId": "import-1", "userId": user, "pair": "BTC-USD", "side": "buy", "amount": 40.0,
            "price": 50_000.0, "amountUsd": 2_000_000.0, "exchange": "binance", "executedAt": "2025-03-02T09:00:00Z"}
    return ProposedEvent("TradeExecuted", data, id=uuid.uuid4())


def test_a_trade_in_an_import_stream_is_parked_and_a_repair_keeps_what_a_fresh_projection_keeps(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 1500, bad_ratio=0.0)
    client = redis.Redis.from_url(redis_process.url)
    run_to_end(redis_process.url, store_process.uri)
    user = Queries(client).top_portfolios(1)[0].user_id
    with EventStore(store_process.uri) as store:
        store.append("trades-import-1", [_whale_trade(user)])
        store.append(f"trades-{user}-x", [_whale_trade(user)])  # another stream whose name starts like the user's
    run_to_end(redis_process.url, store_process.uri)

    for name in ("portfolio", "risk", "leaderboards"):
        parked = {p.stream: p for p in Queries(client).parked_events(name)}
        assert set(parked) == {"trades-import-1", f"trades-{user}-x"}, name
        assert parked["trades-import-1"].field == "stream"
        assert f"belongs in stream trades-{user}, not trades-import-1" in parked["trades-import-1"].reason

    with EventStore(store_process.uri) as store:
        report = check_users(client, store, [user])
        assert report.differences == [] and report.score == 1.0
        assert rebuild_user(client, store, user).writes == 0  # the repair finds nothing to change

    fresh_url = redis_process.url.rsplit("/", 1)[0] + "/1"
    run_to_end(fresh_url, store_process.uri)
    fresh = redis.Redis.from_url(fresh_url)
    for name in PROJECTIONS:
        assert generation_content(client, 1, name) == generation_content(fresh, 1, name), name
