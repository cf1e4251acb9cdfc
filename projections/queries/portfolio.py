"""Portfolio queries: a user's portfolio summary, the top portfolios."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from projections.codec import text
from projections.queries.base import (
    QueriesBase,
    _rank,
    _ranked,
    _tm,
    check_user,
)
from projections.readmodels.portfolio import MODEL as PORTFOLIO
from projections.readmodels.portfolio import Portfolio, value_of


@dataclass(frozen=True)
class TopPortfolio:
    user_id: str
    value: float
    rank: int
    positions: int


@dataclass(frozen=True)
class HistoryEntry:
    """One entry of a user's position history: the position in ``pair`` after the event."""

    position: int  # commit position of the event
    pair: str
    amount_after: float
    at: int
    event: str


@dataclass(frozen=True)
class PortfolioSummary:
    user_id: str
    positions: dict[str, float]
    cost_basis: float
    market_value: float
    live_value: float
    realized_pnl: float
    trade_count: int
    last_trade_id: str
    last_trade_at: int
    rank: int | None
    recent_history: list[HistoryEntry]


def _history_entry(member: Any) -> HistoryEntry:
    h = json.loads(text(member))
    return HistoryEntry(int(h["position"]), h["pair"], float(h["amount"]), int(h["at"]), h["event"])


class PortfolioQueries(QueriesBase):
    def portfolio_summary(self, user_id: str, history: int = 10) -> PortfolioSummary | None:
        user = check_user(user_id)
        spread = self.spread("portfolio")
        ks = spread.of(user)
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(ks.portfolio(user))
        pipe.zrevrange(ks.portfolio_history(user), 0, history - 1)
        pipe.hgetall(ks.marks())  # every partition holds the marks
        main, entries, marks = pipe.execute()
        if not main:
            return None
        rank = self.rank_of([s.portfolio_values() for s in spread.spaces], ks.portfolio_values(), user)
        p: Portfolio = PORTFOLIO.parse(("user", user), _tm(main))
        live = value_of(p, {text(k): float(text(v)) for k, v in marks.items()})  # marked to the newest prices
        return PortfolioSummary(
            user, dict(p.positions), p.cost_basis, p.market_value, live, p.realized_pnl, p.trade_count,
            p.last_trade_id, p.last_trade_at, _rank(rank), [_history_entry(e) for e in entries],
        )

    def top_portfolios(self, limit: int = 10) -> list[TopPortfolio]:
        spread = self.spread("portfolio")
        rows = self.top([s.portfolio_values() for s in spread.spaces], 0, limit - 1)
        pipe = self.client.pipeline(transaction=False)
        for member, _ in rows:
            pipe.hlen(spread.of(text(member)).portfolio_positions(text(member)))
        counts = pipe.execute() if rows else []
        return [TopPortfolio(r.id, r.score, r.rank, int(c)) for r, c in zip(_ranked(rows), counts)]
