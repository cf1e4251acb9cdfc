"""The console's read side over a real Redis, after a real replay."""
from __future__ import annotations

from typing import Any

import pytest
import redis

from projections.errors import InvalidIdentifier
from projections.eventstore import EventStore, ProposedEvent
from projections.queries import Queries
from projections.readmodels.risk import alert_id_for
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections.helpers import run_to_end

DAY = "2026-01-05"


def trade(n: int, user: str, usd: float, side: str = "buy", pair: str = "BTC-USD", strategy: str | None = "momo") -> tuple[str, ProposedEvent]:
    data: dict[str, Any] = {"tradeId": f"t{n}", "userId": user, "pair": pair, "side": side, "amount": usd / 100, "price": 100.0,
                            "amountUsd": usd, "exchange": "binance", "executedAt": f"{DAY}T10:{n:02d}:00Z"}
    if strategy:
        data["strategyId"] = strategy
    return f"trades-{user}", ProposedEvent("TradeExecuted", data)


def price(n: int, exchange: str, value: float) -> tuple[str, ProposedEvent]:
    data = {"exchange": exchange, "pair": "BTC-USD", "price": value, "volume": 2.0, "timestamp": f"{DAY}T10:{n:02d}:00Z"}
    return f"prices-{exchange}", ProposedEvent("PriceUpdated", data)


@pytest.fixture
def queries(redis_process: RedisProcess, store_process: StoreProcess) -> Queries:
    items = [price(0, "binance", 100.0), trade(1, "alice", 1000.0), trade(2, "bob", 500.0, strategy="mean"),
             trade(3, "whale", 150_000.0), trade(4, "alice", 200.0, side="sell"), price(5, "kraken", 102.0),
             price(6, "binance", 110.0)]
    with EventStore(store_process.uri) as store:
        for stream, event in items:
            store.append(stream, [event])
    run_to_end(redis_process.url, store_process.uri)
    return Queries(redis.Redis.from_url(redis_process.url))


def test_portfolio_and_leaderboards(queries: Queries) -> None:
    alice = queries.portfolio_summary("alice")
    assert alice is not None and alice.positions == {"BTC-USD": 8.0} and alice.trade_count == 2
    assert alice.market_value == pytest.approx(800.0)  # marked at 100 when alice last traded
    assert alice.live_value == pytest.approx(880.0)  # marked at the newest price, 110
    assert alice.last_trade_id == "t4" and [h.pair for h in alice.recent_history] == ["BTC-USD", "BTC-USD"]
    assert queries.portfolio_summary("nobody") is None
    assert [r.user_id for r in queries.top_portfolios(2)] == ["whale", "alice"]
    assert queries.top_portfolios(1)[0].positions == 1
    assert [(r.id, r.score) for r in queries.daily_volume_leaders()] == [("whale", 150_000.0), ("alice", 1200.0), ("bob", 500.0)]
    assert {r.strategy_id for r in queries.strategy_performance()} == {"momo", "mean"}
    rank = queries.user_rank("alice")
    assert (rank.portfolio_rank, rank.volume_rank, rank.day) == (2, 2, DAY)


def test_risk_queries(queries: Queries) -> None:
    (whale,) = queries.high_risk_users().rows
    assert whale.user_id == "whale" and whale.daily_exposure == 150_000.0 and whale.risk_level in ("high", "critical")
    alerts = queries.active_alerts()
    assert [a.user_id for a in alerts] == ["whale"]
    first = alerts[0]
    assert first.alert_id.startswith("alert-") and first.alert_id == alert_id_for(f"trades-{first.user_id}", first.event_id)
    profile = queries.risk_profile("whale")
    assert profile is not None and profile.rank == 1 and profile.active_alerts[0].alert_id == alerts[0].alert_id
    with pytest.raises(InvalidIdentifier):
        queries.risk_profile("not a user")


def test_market_overview_filters_expired_arbitrage(queries: Queries) -> None:
    at_event = 1767607500000  # 2026-01-05T10:05:00Z; at 10:06 binance (110) vs kraken (102) opened 7.8%
    overview = queries.market_overview(now_ms=at_event + 60_000)
    assert overview.latest_prices["BTC-USD"]["binance"].price == 110.0
    assert [g.id for g in overview.gainers] == ["BTC-USD"] and overview.losers == []
    (opportunity,) = overview.arbitrage
    assert (opportunity.buy_exchange, opportunity.sell_exchange) == ("kraken", "binance")
    assert queries.market_overview(now_ms=opportunity.expires_at).arbitrage == []
    assert queries.pair_detail("BTC-USD") is not None


def test_status_of_every_projection(queries: Queries) -> None:
    statuses = {s.projection: s for s in queries.projection_status()}
    assert set(statuses) == {"portfolio", "risk", "market", "leaderboards"}
    assert all(s.checkpoint > 0 and s.state == "paused" and not s.alive and s.generation == 1 for s in statuses.values())
