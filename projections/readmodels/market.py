"""Market read model (entities: pair, exchange) — analytics and arbitrage.

All windows slide with event time: a pair's 1h samples and 24h hourly buckets
are pruned against that pair's newest ``timestamp``; an exchange's liquidity
against the exchange's newest one. So a pair that stops ticking keeps its
last figures (they are "as of" its last update), and a replay gives the same.

* latest price per exchange: the quote with the newest ``timestamp`` wins;
* 1h price change: newest price vs the oldest minute sample within 1h, in %;
  unknown (None, shown as "—") until the hour holds a price of an earlier
  minute than the newest: a single minute of prices is no change, not 0%;
* volatility: standard deviation of minute-to-minute returns within 1h, in %;
* 24h volume: ``volume`` summed in hourly buckets over the last 24 hours;
* exchange liquidity: the same over an exchange's pairs;
* arbitrage: among quotes at most 5 minutes old, cheapest vs dearest; a spread
  above 0.5% is an opportunity expiring 5 minutes after the event time (the
  expiry is stored with it and filtered at read, not a Redis TTL, so the
  keyspace never depends on when it was written).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from projections.events import CANARY_TYPE, DomainEvent, PriceUpdated
from projections.keys import KeySpace, arbitrage_member, latest_price_field
from projections.readmodels.base import (
    HOUR_MS,
    MINUTE_MS,
    Placement,
    Ref,
    Rendered,
    StrayPlaces,
    dumps,
    floor_to,
    inum,
    loads_map,
    no_appends,
)

NAME: str = "market"
EVENT_TYPES: tuple[str, ...] = ("PriceUpdated", CANARY_TYPE)
ARBITRAGE_THRESHOLD = 0.005
ARBITRAGE_TTL_MS = 5 * MINUTE_MS
WINDOW_1H = HOUR_MS
WINDOW_24H = 24 * HOUR_MS


@dataclass(frozen=True, slots=True)
class Quote:
    price: float
    volume: float
    spread: float
    at: int


@dataclass(frozen=True, slots=True)
class Opportunity:
    pair: str
    buy_exchange: str
    sell_exchange: str
    buy_price: float
    sell_price: float
    spread: float
    detected_at: int
    expires_at: int

    @property
    def member(self) -> str:
        return arbitrage_member(self.pair, self.buy_exchange, self.sell_exchange)


@dataclass(frozen=True, slots=True)
class PairMarket:
    pair: str
    quotes: Mapping[str, Quote] = field(default_factory=dict)
    minutes: Mapping[int, float] = field(default_factory=dict)  # minute start -> last price in it
    hours: Mapping[int, float] = field(default_factory=dict)  # hour start -> volume
    last_at: int = 0
    last_price: float = 0.0
    arbitrage: Opportunity | None = None
    last_position: int = 0

    @property
    def change_1h(self) -> float | None:
        if len(self.minutes) < 2:
            return None
        first = self.minutes[min(self.minutes)]
        return (self.last_price - first) / first * 100.0

    @property
    def volatility(self) -> float:
        prices = [self.minutes[k] for k in sorted(self.minutes)]
        returns = [(b - a) / a for a, b in zip(prices, prices[1:])]
        if len(returns) < 2:
            return 0.0
        mean = math.fsum(returns) / len(returns)
        return math.sqrt(math.fsum((r - mean) ** 2 for r in returns) / (len(returns) - 1)) * 100.0

    @property
    def volume_24h(self) -> float:
        return math.fsum(self.hours.values())


@dataclass(frozen=True, slots=True)
class ExchangeMarket:
    exchange: str
    hours: Mapping[int, float] = field(default_factory=dict)
    last_at: int = 0

    @property
    def liquidity_24h(self) -> float:
        return math.fsum(self.hours.values())


def _add_volume(hours: Mapping[int, float], at: int, newest: int, volume: float) -> dict[int, float]:
    """Hourly buckets after adding ``volume`` at ``at``: the 24 hours ending with ``newest``'s hour."""
    cutoff = floor_to(newest, HOUR_MS) - WINDOW_24H
    hour = floor_to(at, HOUR_MS)
    buckets = {k: v for k, v in hours.items() if k > cutoff}
    if hour > cutoff:
        buckets[hour] = buckets.get(hour, 0.0) + volume
    return buckets


def find_arbitrage(pair: str, quotes: Mapping[str, Quote], now: int) -> Opportunity | None:
    """The widest spread among quotes at most 5 minutes old, if above 0.5%."""
    fresh = sorted((q.price, ex) for ex, q in quotes.items() if q.at > now - ARBITRAGE_TTL_MS)
    if len(fresh) < 2:
        return None
    (low, buy), (high, sell) = fresh[0], fresh[-1]
    spread = (high - low) / low
    if spread <= ARBITRAGE_THRESHOLD:
        return None
    return Opportunity(pair, buy, sell, low, high, spread, now, now + ARBITRAGE_TTL_MS)


def evolve_pair(m: PairMarket, e: PriceUpdated) -> PairMarket:
    newest = max(m.last_at, e.timestamp)
    quotes = dict(m.quotes)
    old = quotes.get(e.exchange)
    if old is None or e.timestamp >= old.at:
        quotes[e.exchange] = Quote(e.price, e.volume, e.spread or 0.0, e.timestamp)
    minutes = dict(m.minutes)
    minute = floor_to(e.timestamp, MINUTE_MS)
    if e.timestamp >= m.last_at:  # the newest price of its minute
        minutes[minute] = e.price
    minutes = {k: v for k, v in minutes.items() if k >= newest - WINDOW_1H}
    latest = e.timestamp >= m.last_at
    return replace(
        m,
        quotes=quotes,
        minutes=minutes,
        hours=_add_volume(m.hours, e.timestamp, newest, e.volume),
        last_at=newest,
        last_price=e.price if latest else m.last_price,
        arbitrage=find_arbitrage(m.pair, quotes, newest),
        last_position=e.envelope.position,
    )


def evolve_exchange(x: ExchangeMarket, e: PriceUpdated) -> ExchangeMarket:
    newest = max(x.last_at, e.timestamp)
    return replace(x, hours=_add_volume(x.hours, e.timestamp, newest, e.volume), last_at=newest)


def _quote_json(q: Quote) -> dict[str, float]:
    return {"price": q.price, "volume": q.volume, "spread": q.spread, "timestamp": q.at}


def _opportunity_json(o: Opportunity) -> dict[str, Any]:
    return {
        "pair": o.pair, "buyExchange": o.buy_exchange, "sellExchange": o.sell_exchange,
        "buyPrice": o.buy_price, "sellPrice": o.sell_price, "spread": o.spread,
        "profitPotential": o.spread * 0.8, "detectedAt": o.detected_at, "expiresAt": o.expires_at,
    }


def opportunity_from_json(d: Mapping[str, Any]) -> Opportunity | None:
    if not d:
        return None
    return Opportunity(
        d["pair"], d["buyExchange"], d["sellExchange"], float(d["buyPrice"]), float(d["sellPrice"]),
        float(d["spread"]), int(d["detectedAt"]), int(d["expiresAt"]),
    )


def _int_keys(d: Mapping[str, Any]) -> dict[int, float]:
    return {int(k): float(v) for k, v in d.items()}


class MarketModel:
    name = NAME
    event_types = EVENT_TYPES
    user_kind: str | None = None
    publishes = False

    def own_append_keys(self, ks: KeySpace, ref: Ref) -> set[str]:
        return set()

    def user_ranking(self, ks: KeySpace) -> str | None:
        return None

    def presence(self, ks: KeySpace) -> str:
        return ks.latest_prices()

    def stray_places(self, ks: KeySpace) -> StrayPlaces:
        return StrayPlaces()

    def touches(self, event: DomainEvent) -> tuple[Ref, ...]:
        if isinstance(event, PriceUpdated):
            return (("pair", event.pair), ("exchange", event.exchange))
        return ()

    def placement(self, ref: Ref) -> Placement:
        return Placement.HOME  # one partition: pairs and exchanges are no user's

    def empty(self, ref: Ref) -> Any:
        return PairMarket(ref[1]) if ref[0] == "pair" else ExchangeMarket(ref[1])

    def step(self, states: Mapping[Ref, Any], event: DomainEvent) -> dict[Ref, Any]:
        if not isinstance(event, PriceUpdated):
            return {}
        p, x = ("pair", event.pair), ("exchange", event.exchange)
        return {p: evolve_pair(states[p], event), x: evolve_exchange(states[x], event)}

    def main_key(self, ks: KeySpace, ref: Ref) -> str:
        return ks.market_pair(ref[1]) if ref[0] == "pair" else ks.market_exchange(ref[1])

    def parse(self, ref: Ref, f: Mapping[str, str]) -> Any:
        if not f:
            return self.empty(ref)
        if ref[0] == "exchange":
            return ExchangeMarket(ref[1], _int_keys(loads_map(f.get("hours"))), inum(f, "lastAt"))
        quotes = {k: Quote(float(v["price"]), float(v["volume"]), float(v["spread"]), int(v["timestamp"]))
                  for k, v in loads_map(f.get("quotes")).items()}
        return PairMarket(
            pair=ref[1], quotes=quotes, minutes=_int_keys(loads_map(f.get("minutes"))),
            hours=_int_keys(loads_map(f.get("hours"))), last_at=inum(f, "lastAt"),
            last_price=float(f.get("lastPrice", "0")), arbitrage=opportunity_from_json(loads_map(f.get("arbitrage"))),
            last_position=inum(f, "lastPosition"),
        )

    def render(self, ks: KeySpace, ref: Ref, s: Any) -> Rendered:
        if ref[0] == "exchange":
            x: ExchangeMarket = s
            main = {"exchange": x.exchange, "hours": dumps({str(k): v for k, v in x.hours.items()}),
                    "liquidity24h": repr(x.liquidity_24h), "lastAt": str(x.last_at)}
            return Rendered(owned={ks.market_exchange(x.exchange): main},
                            zsets={ks.exchange_liquidity(): {x.exchange: x.liquidity_24h}})
        return _render_pair(ks, s)

    appends = staticmethod(no_appends)


def _render_pair(ks: KeySpace, m: PairMarket) -> Rendered:
    arb, change = m.arbitrage, m.change_1h
    main = {
        "pair": m.pair, "quotes": dumps({k: _quote_json(q) for k, q in m.quotes.items()}),
        "minutes": dumps({str(k): v for k, v in m.minutes.items()}),
        "hours": dumps({str(k): v for k, v in m.hours.items()}),
        "lastAt": str(m.last_at), "lastPrice": repr(m.last_price), "change1h": "" if change is None else repr(change),
        "volatility": repr(m.volatility), "volume24h": repr(m.volume_24h),
        "arbitrage": dumps(_opportunity_json(arb)) if arb else "", "lastPosition": str(m.last_position),
    }
    return Rendered(
        owned={ks.market_pair(m.pair): main},
        zsets={
            ks.price_changes_1h(): {} if change is None else {m.pair: change},
            ks.volume_24h(): {m.pair: m.volume_24h},
            ks.volatility(): {m.pair: m.volatility},
            ks.arbitrage_opportunities(): {arb.member: arb.spread} if arb else {},
        },
        hfields={
            ks.latest_prices(): {latest_price_field(ex, m.pair): dumps(_quote_json(q)) for ex, q in m.quotes.items()},
            ks.arbitrage(): {arb.member: dumps(_opportunity_json(arb))} if arb else {},
        },
    )


MODEL = MarketModel()
