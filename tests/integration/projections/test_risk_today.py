"""The risk read side answers for the projection's today: the UTC day of the newest trade it applied.

A user's daily figures (exposure, volume, trades today, score, level) are of
that day at read time; a user who stopped trading on an earlier day has none,
never yesterday's. Lists are filtered before they are cut, and counts are true.
"""
from __future__ import annotations

import pytest
import redis

from projections.eventstore import EventStore, ProposedEvent
from projections.queries import Queries
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections.helpers import run_to_end

YESTERDAY, TODAY = "2026-01-05", "2026-01-06"


def trade(day: str, n: int, user: str, usd: float, pair: str = "BTC-USD") -> tuple[str, ProposedEvent]:
    at = f"{day}T{n // 60 % 24:02d}:{n % 60:02d}:00Z"
    data = {"tradeId": f"t{day}-{n}", "userId": user, "pair": pair, "side": "buy", "amount": usd / 100, "price": 100.0,
            "amountUsd": usd, "exchange": "binance", "executedAt": at}
    return f"trades-{user}", ProposedEvent("TradeExecuted", data)


def project(redis_process: RedisProcess, store_process: StoreProcess, items: list[tuple[str, ProposedEvent]]) -> Queries:
    with EventStore(store_process.uri) as store:
        for stream, event in items:
            store.append(stream, [event])
    run_to_end(redis_process.url, store_process.uri, ("risk",))
    return Queries(redis.Redis.from_url(redis_process.url))


def two_days(yesterdays_whales: int, todays_whales: int) -> list[tuple[str, ProposedEvent]]:
    """``yesterdays_whales`` users over $100K yesterday (and one of $300K), then ``todays_whales`` today and a minnow."""
    items = [trade(YESTERDAY, n, f"y{n:02d}", 150_000.0) for n in range(yesterdays_whales)]
    items.append(trade(YESTERDAY, 200, "whale300", 300_000.0))
    items += [trade(TODAY, n, f"t{n:02d}", 120_000.0 + n) for n in range(todays_whales)]
    items.append(trade(TODAY, 300, "minnow", 1_000.0))
    return items


@pytest.fixture
def quiet_today(redis_process: RedisProcess, store_process: StoreProcess) -> Queries:
    return project(redis_process, store_process, two_days(66, 3))


def test_todays_high_risk_users_are_not_hidden_by_earlier_days_whales(quiet_today: Queries) -> None:
    page = quiet_today.high_risk_users(limit=50)
    assert [u.user_id for u in page.rows] == ["t02", "t01", "t00"]
    assert page.total == 3 and page.day == TODAY
    assert all(u.day == TODAY for u in page.rows)


def test_a_user_who_stopped_trading_has_no_figures_today(quiet_today: Queries) -> None:
    whale = quiet_today.risk_profile("whale300")
    assert whale is not None
    assert (whale.day, whale.last_trade_day) == (TODAY, YESTERDAY)
    assert (whale.daily_exposure, whale.daily_volume, whale.trades_today, whale.largest_today) == (0.0, 0.0, 0, 0.0)
    assert whale.largest_trade == 300_000.0  # all-time figures stay
    assert whale.score == 2.0 and whale.level == "low"  # 100% concentration alone, no trading today
    assert whale.active_alerts, "yesterday's alert stays active until acknowledged"
    today = quiet_today.risk_profile("t00")
    assert today is not None and today.day == today.last_trade_day == TODAY and today.daily_exposure == 120_000.0


def test_the_active_alert_count_is_the_count(quiet_today: Queries) -> None:
    assert quiet_today.active_alert_count() == 66 + 1 + 3
    assert len(quiet_today.active_alerts(50)) == 50


def test_users_ranked_by_todays_risk_score(quiet_today: Queries) -> None:
    ranking = quiet_today.risk_ranking(limit=5)
    assert ranking.total == 66 + 1 + 3 + 1 and ranking.day == TODAY
    assert [r.user_id for r in ranking.rows[:4]] == ["t02", "t01", "t00", "minnow"]
    assert [r.rank for r in ranking.rows] == [1, 2, 3, 4, 5]
    assert ranking.rows[4].score == 2.0 and ranking.rows[4].trades_today == 0  # an idle user, as of today
    assert all(a.score >= b.score for a, b in zip(ranking.rows, ranking.rows[1:]))
    t00 = quiet_today.risk_profile("t00")
    assert t00 is not None and t00.rank == 3
    assert quiet_today.user_rank("minnow").risk_rank == 4


def test_more_than_a_page_of_high_risk_users_today(redis_process: RedisProcess, store_process: StoreProcess) -> None:
    queries = project(redis_process, store_process, two_days(5, 55))
    page = queries.high_risk_users(limit=50)
    assert page.total == 55 and len(page.rows) == 50
    assert {u.user_id for u in page.rows} <= {f"t{n:02d}" for n in range(55)}
    assert page.rows[0].user_id == "t54"  # the largest exposure ranks first among equal scores


def test_an_empty_projection_answers_empty(redis_process: RedisProcess) -> None:
    queries = Queries(redis.Redis.from_url(redis_process.url))
    assert queries.high_risk_users().rows == [] and queries.high_risk_users().total == 0
    assert queries.risk_ranking().rows == [] and queries.risk_ranking().total == 0
    assert queries.active_alert_count() == 0

