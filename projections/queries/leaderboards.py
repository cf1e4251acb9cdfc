"""Leaderboard queries: the day's volume leaders, strategies, a user's ranks."""
from __future__ import annotations

from dataclasses import dataclass

from projections.codec import text
from projections.queries.base import (
    Ranked,
    _f,
    _i,
    _rank,
    _ranked,
    check_user,
)
from projections.queries.risk import RISK_FIELDS, RiskQueries, _risk_today


@dataclass(frozen=True)
class StrategyRow:
    strategy_id: str
    roi: float  # the ranking's score, in %
    rank: int
    trades: int
    volume: float
    realized_pnl: float


@dataclass(frozen=True)
class UserRank:
    user_id: str
    day: str
    portfolio_rank: int | None
    volume_rank: int | None
    daily_volume: float
    risk_rank: int | None

    @property
    def found(self) -> bool:
        return self.portfolio_rank is not None or self.volume_rank is not None


class LeaderboardQueries(RiskQueries):  # a user's rank names the risk rank too
    def leaderboard_day(self) -> str:
        """'Today' for the leaderboards: the UTC day of the newest trade applied (the newest of the partitions')."""
        return self.newest_day("leaderboards")

    def daily_volume_leaders(self, day: str | None = None, limit: int = 10) -> list[Ranked]:
        spaces = self.spread("leaderboards").spaces
        day = day or self.leaderboard_day()
        if not day:
            return []
        return _ranked(self.top([s.daily_volume_leaders(day) for s in spaces], 0, limit - 1))

    def strategy_performance(self, limit: int = 10) -> list[StrategyRow]:
        ks = self.spread("leaderboards").home  # strategies live in partition 0
        rows = self.client.zrevrange(ks.strategy_performance(), 0, limit - 1, withscores=True)
        pipe = self.client.pipeline(transaction=False)
        for member, _ in rows:
            pipe.hmget(ks.strategy(text(member)), "trades", "volume", "realizedPnl")
        details = pipe.execute() if rows else []
        return [StrategyRow(r.id, r.score, r.rank, _i(d[0]), _f(d[1]), _f(d[2])) for r, d in zip(_ranked(rows), details)]

    def user_rank(self, user_id: str) -> UserRank:
        """A user's ranks: portfolio value, today's volume, risk score (None when unranked)."""
        user = check_user(user_id)
        day = self.leaderboard_day()
        lb, pf, rk = self.spread("leaderboards"), self.spread("portfolio"), self.spread("risk")
        board = lb.of(user).daily_volume_leaders(day or "-")
        pv = self.rank_of([s.portfolio_values() for s in pf.spaces], pf.of(user).portfolio_values(), user)
        vol = self.rank_of([s.daily_volume_leaders(day or "-") for s in lb.spaces], board, user)
        pipe = self.client.pipeline(transaction=False)
        pipe.zscore(board, user)
        pipe.hmget(rk.of(user).user_risk(user), *RISK_FIELDS)
        volume, risk = pipe.execute()
        risk_day = self.risk_day()
        risk_rank = None
        if risk[0] is not None:  # the user has a risk profile
            risk_rank = self._risk_rank(rk, user, _risk_today(user, risk, risk_day).score, risk_day)
        return UserRank(user, day, _rank(pv), _rank(vol), _f(volume), risk_rank)
