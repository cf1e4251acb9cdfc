"""Market queries: the overview (prices, movers, arbitrage), one pair's detail."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

from projections.codec import text
from projections.queries.base import (
    QueriesBase,
    Ranked,
    _ranked,
    _tm,
    check_pair,
)
from projections.readmodels.market import MODEL as MARKET
from projections.readmodels.market import Opportunity, PairMarket, Quote, opportunity_from_json


@dataclass(frozen=True)
class MarketOverview:
    gainers: list[Ranked]
    losers: list[Ranked]
    volume_leaders: list[Ranked]
    exchanges: list[Ranked]
    latest_prices: dict[str, dict[str, Quote]]  # pair -> exchange -> quote
    changes_1h: dict[str, float]  # pair -> 1h change in %; a pair without an earlier price is absent
    arbitrage: list[Opportunity]


@dataclass(frozen=True)
class PairDetail:
    pair: str
    last_price: float
    last_at: int
    change_1h: float | None  # None: no earlier price within the hour yet
    volatility: float
    volume_24h: float
    quotes: dict[str, Quote]
    arbitrage: Opportunity | None


class MarketQueries(QueriesBase):
    def market_overview(self, limit: int = 10, now_ms: int | None = None) -> MarketOverview:
        """Movers, volume leaders, exchanges, latest prices, 1h changes and unexpired arbitrage
        (one round trip)."""
        ks = self.ks("market")
        pipe = self.client.pipeline(transaction=False)
        pipe.zrevrangebyscore(ks.price_changes_1h(), "+inf", "(0", start=0, num=limit, withscores=True)
        pipe.zrangebyscore(ks.price_changes_1h(), "-inf", "(0", start=0, num=limit, withscores=True)
        pipe.zrevrange(ks.volume_24h(), 0, limit - 1, withscores=True)
        pipe.zrevrange(ks.exchange_liquidity(), 0, limit - 1, withscores=True)
        pipe.hgetall(ks.latest_prices())
        pipe.hgetall(ks.arbitrage())
        pipe.zrange(ks.price_changes_1h(), 0, -1, withscores=True)
        gainers, losers, volume, exchanges, prices, arbitrage, changes = pipe.execute()
        latest: dict[str, dict[str, Quote]] = {}
        for name, quote in prices.items():
            exchange, _, pair = text(name).partition(":")
            q = json.loads(text(quote))
            latest.setdefault(pair, {})[exchange] = Quote(q["price"], q["volume"], q["spread"], q["timestamp"])
        now = int(time.time() * 1000) if now_ms is None else now_ms
        live = [o for o in (opportunity_from_json(json.loads(text(v))) for v in arbitrage.values()) if o and o.expires_at > now]
        return MarketOverview(
            _ranked(gainers), _ranked(losers), _ranked(volume), _ranked(exchanges), latest,
            {text(m): float(s) for m, s in changes}, sorted(live, key=lambda o: (-o.spread, o.pair)),
        )

    def pair_detail(self, pair: str) -> PairDetail | None:
        p = check_pair(pair)
        main = self.client.hgetall(self.ks("market").market_pair(p))
        if not main:
            return None
        m: PairMarket = MARKET.parse(("pair", p), _tm(main))
        return PairDetail(p, m.last_price, m.last_at, m.change_1h, m.volatility, m.volume_24h, dict(m.quotes), m.arbitrage)
