"""A simulated crypto market that produces the event catalog's events.

Pure and deterministic: no I/O, no wall clock unless one is passed in. The
same seed and parameters give the same events with the same ids, so a demo
history or a fault drill can be reproduced exactly.

Price model: each pair's fair price follows a geometric random walk whose
shocks share a common market factor (correlation ``MARKET_CORRELATION``).
Each exchange quotes the fair price times ``exp(deviation)``, where the
deviation is a mean-reverting (Ornstein-Uhlenbeck) process with occasional
dislocation jumps, so cross-exchange spreads above 0.5% (arbitrage) appear
now and then and fade within a minute or so. Trade sizes are heavy-tailed
(log-normal per trade, Pareto bursts, a few whales), so some users cross the
risk thresholds.
"""
from __future__ import annotations

import itertools
import math
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from projections.eventstore import ProposedEvent
from projections.simulation.faults import BAD_KINDS, malformed

__all__ = ["DEFAULT_START", "Market", "iso_utc"]

DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)
SOURCE = "simulator"
MEAN_INTERVAL_MS = 250  # simulated time between two events
MARKET_CORRELATION = 0.7
VOL_BOOST = 3.0  # annual volatilities are boosted so a demo hour shows movers
SECONDS_PER_YEAR = 365.25 * 86400
DEVIATION_SD = 0.0012  # stationary sd of an exchange's log deviation from fair
DEVIATION_HALF_LIFE_S = 20.0
JUMP_PROBABILITY = 0.006  # per quote: a dislocation (thin book, lagging feed)
ZERO_POSITION = 1e-6

# (pair, initial price in USD, annual volatility, relative trading volume)
PAIRS: tuple[tuple[str, float, float, float], ...] = (
    ("BTC-USD", 64000.0, 0.55, 10.0), ("ETH-USD", 3400.0, 0.70, 6.0),
    ("SOL-USD", 150.0, 0.95, 3.0), ("XRP-USD", 0.62, 0.80, 2.0),
    ("DOGE-USD", 0.16, 1.10, 1.5), ("ADA-USD", 0.45, 0.90, 1.0),
    ("AVAX-USD", 35.0, 1.00, 0.8), ("LINK-USD", 18.0, 0.90, 0.8),
    ("DOT-USD", 7.0, 0.90, 0.6), ("LTC-USD", 85.0, 0.75, 0.6),
    ("ATOM-USD", 9.0, 0.95, 0.4), ("NEAR-USD", 5.5, 1.05, 0.4),
)
EXCHANGES = ("binance", "coinbase", "kraken", "bitstamp", "okx", "bybit", "kucoin", "bitfinex")
STRATEGIES = ("momentum-1h", "mean-revert-btc", "grid-eth", "arb-xex", "dca-weekly", "breakout-4h")


def iso_utc(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a Z, e.g. 2026-11-25T10:00:00.123Z."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def round_price(price: float) -> float:
    """Six significant digits, at least cents."""
    return round(price, max(2, 5 - math.floor(math.log10(price))))


@dataclass
class Trader:
    user_id: str
    size_usd: float  # median trade size
    pair_weights: list[float]
    exchange_weights: list[float]
    strategy: str | None
    holdings: dict[str, float] = field(default_factory=dict)


@dataclass
class Instrument:
    pair: str
    log_price: float
    sigma: float  # boosted annual volatility
    liquidity: float


class Market:
    """A market of ``users`` traders, ``pairs`` pairs and ``exchanges`` exchanges."""

    def __init__(
        self,
        seed: int,
        users: int = 50,
        pairs: int = 6,
        exchanges: int = 3,
        start: datetime | None = None,
        bad_ratio: float = 0.0,
        mean_interval_ms: int = MEAN_INTERVAL_MS,
    ) -> None:
        if not 1 <= users <= 100_000:
            raise ValueError(f"users must be 1..100000, got {users}")
        if not 1 <= pairs <= 50:
            raise ValueError(f"pairs must be 1..50, got {pairs}")
        if not 2 <= exchanges <= 20:
            raise ValueError(f"exchanges must be 2..20 (arbitrage needs two), got {exchanges}")
        if not 0.0 <= bad_ratio <= 1.0:
            raise ValueError(f"bad_ratio must be within 0..1, got {bad_ratio}")
        if mean_interval_ms < 1:
            raise ValueError(f"mean_interval_ms must be at least 1, got {mean_interval_ms}")
        self.seed = seed
        self.bad_ratio = bad_ratio
        self.mean_interval_ms = mean_interval_ms
        self.now = (start or DEFAULT_START).astimezone(UTC)
        key = f"lucent-simulator:{seed}:{users}:{pairs}:{exchanges}:{bad_ratio}:{iso_utc(self.now)}"
        self.namespace = uuid.uuid5(uuid.NAMESPACE_URL, key)
        self.rng = random.Random(seed)
        self.bad_rng = random.Random(f"{seed}:faults")
        self.sequence = 0
        self.counts: Counter[str] = Counter()
        self.instruments = [self._instrument(i) for i in range(pairs)]
        self.exchanges = [EXCHANGES[i] if i < len(EXCHANGES) else f"exchange-{i + 1}" for i in range(exchanges)]
        self.deviation = [[0.0] * pairs for _ in self.exchanges]
        self.quoted_at = [[self.now] * pairs for _ in self.exchanges]
        self.last_quote: dict[tuple[int, int], tuple[float, str]] = {}  # (exchange, pair) -> price, event id
        self.traders = [self._trader(i) for i in range(users)]
        activity = [self.rng.paretovariate(1.2) for _ in self.traders]
        self.activity_cum = list(itertools.accumulate(activity))
        self.pair_index = {inst.pair: i for i, inst in enumerate(self.instruments)}

    def _instrument(self, index: int) -> Instrument:
        if index < len(PAIRS):
            pair, price, vol, liquidity = PAIRS[index]
        else:
            pair, price, vol, liquidity = f"TKN{index + 1}-USD", 10 ** self.rng.uniform(-1, 2), 1.2, 0.2
        return Instrument(pair, math.log(price), vol * VOL_BOOST, liquidity)

    def _trader(self, index: int) -> Trader:
        rng = self.rng
        size = 10 ** rng.uniform(2.0, 3.3)
        if rng.random() < 0.06:  # whales
            size *= rng.uniform(10.0, 30.0)
        pair_weights = [rng.gammavariate(0.4, 1.0) * i.liquidity + 1e-9 for i in self.instruments]
        exchange_weights = [rng.gammavariate(1.0, 1.0) + 1e-9 for _ in self.exchanges]
        strategy = rng.choice(STRATEGIES) if rng.random() < 0.35 else None
        return Trader(f"user-{index + 1:04d}", size, pair_weights, exchange_weights, strategy)

    # -- the event stream -------------------------------------------------

    def events(
        self, n: int | None = None, clock: Callable[[], datetime] | None = None
    ) -> Iterator[tuple[str, ProposedEvent]]:
        """Yield ``n`` (or endless) ``(stream, event)`` pairs, advancing the market.

        Event times come from a simulated clock (``mean_interval_ms`` apart on
        average) unless ``clock`` is given, e.g. the wall clock for a live run.
        """
        produced = 0
        while n is None or produced < n:
            yield self.next_event(clock)
            produced += 1

    def events_until(self, end: datetime) -> Iterator[tuple[str, ProposedEvent]]:
        """Events on the simulated clock until it reaches ``end`` (a history ending then)."""
        while self.now < end:
            yield self.next_event()

    def next_event(self, clock: Callable[[], datetime] | None = None) -> tuple[str, ProposedEvent]:
        self._advance(clock)
        self.sequence += 1
        event_id = uuid.uuid5(self.namespace, str(self.sequence))
        if self.bad_ratio and self.bad_rng.random() < self.bad_ratio:
            return self._bad_event(event_id)
        roll = self.rng.random()
        if roll < 0.60:
            made = self._price_update(event_id)
        elif roll < 0.95:
            made = self._trade(event_id)
        else:
            made = (self._rebalance if roll < 0.975 else self._closure)(event_id) or self._trade(event_id)
        self.counts[made[1].type] += 1
        return made

    def _advance(self, clock: Callable[[], datetime] | None) -> None:
        if clock is None:
            step = timedelta(milliseconds=max(1, round(self.rng.expovariate(1.0 / self.mean_interval_ms))))
        else:
            step = max(timedelta(0), clock().astimezone(UTC) - self.now)
        self.now += step
        dt = min(step.total_seconds(), 10.0) / SECONDS_PER_YEAR
        common = self.rng.gauss(0.0, 1.0)
        idio = math.sqrt(1.0 - MARKET_CORRELATION**2)
        for inst in self.instruments:
            shock = MARKET_CORRELATION * common + idio * self.rng.gauss(0.0, 1.0)
            inst.log_price += inst.sigma * math.sqrt(dt) * shock - 0.5 * inst.sigma**2 * dt

    def _event(self, event_id: uuid.UUID, type_: str, data: dict[str, Any], cause: str | None = None) -> ProposedEvent:
        metadata = {"correlationId": str(event_id), "causationId": cause or str(event_id), "source": SOURCE}
        return ProposedEvent(type=type_, data=data, metadata=metadata, id=event_id)

    def quote(self, exchange: int, pair: int) -> float:
        """The exchange's current price for the pair: fair price times its deviation."""
        return round_price(math.exp(self.instruments[pair].log_price + self.deviation[exchange][pair]))

    # -- good events -------------------------------------------------------

    def _price_update(self, event_id: uuid.UUID) -> tuple[str, ProposedEvent]:
        rng = self.rng
        p = rng.choices(range(len(self.instruments)), weights=[math.sqrt(i.liquidity) for i in self.instruments])[0]
        e = rng.randrange(len(self.exchanges))
        elapsed = (self.now - self.quoted_at[e][p]).total_seconds()
        decay = math.exp(-elapsed * math.log(2) / DEVIATION_HALF_LIFE_S)
        dev = self.deviation[e][p] * decay + rng.gauss(0.0, DEVIATION_SD * math.sqrt(1 - decay * decay))
        if rng.random() < JUMP_PROBABILITY:  # a dislocation: thin book, lagging feed
            dev += rng.choice((-1.0, 1.0)) * rng.uniform(0.004, 0.010)
        self.deviation[e][p], self.quoted_at[e][p] = dev, self.now
        price = self.quote(e, p)
        self.last_quote[(e, p)] = (price, str(event_id))
        inst, exchange = self.instruments[p], self.exchanges[e]
        volume = inst.liquidity * 4e5 * max(elapsed, 0.05) / 60 * rng.lognormvariate(0.0, 0.6)
        data: dict[str, Any] = {
            "exchange": exchange, "pair": inst.pair, "price": price,
            "volume": round(volume, 2), "timestamp": iso_utc(self.now),
        }
        if e % 3 != 2:  # some venues publish no book spread; the field is optional
            data["spread"] = round_price(price * rng.uniform(1.0, 8.0) / 1e4 / min(inst.liquidity, 1.0))
        return f"prices-{exchange}", self._event(event_id, "PriceUpdated", data)

    def _pick_trader(self) -> Trader:
        return self.rng.choices(self.traders, cum_weights=self.activity_cum)[0]

    def _trade(self, event_id: uuid.UUID) -> tuple[str, ProposedEvent]:
        rng, trader = self.rng, self._pick_trader()
        p = rng.choices(range(len(self.instruments)), weights=trader.pair_weights)[0]
        e = rng.choices(range(len(self.exchanges)), weights=trader.exchange_weights)[0]
        pair = self.instruments[p].pair
        price = round_price(self.quote(e, p) * (1 + rng.gauss(0.0, 0.0002)))
        usd = trader.size_usd * rng.lognormvariate(0.0, 0.7)
        if rng.random() < 0.05:  # bursts: the heavy tail of trade sizes
            usd *= min(rng.paretovariate(1.6), 40.0)
        held = trader.holdings.get(pair, 0.0)
        side = "sell" if held * price >= 10 and rng.random() < 0.45 else "buy"
        amount = round(usd / price, 8)
        if side == "sell":
            amount = held if rng.random() < 0.2 else min(held, amount)
            remaining = round(held - amount, 8)
        else:
            remaining = round(held + amount, 8)
        if remaining < ZERO_POSITION:
            trader.holdings.pop(pair, None)
        else:
            trader.holdings[pair] = remaining
        data: dict[str, Any] = {
            "tradeId": f"trd-{event_id.hex[:20]}", "userId": trader.user_id, "pair": pair, "side": side,
            "amount": amount, "price": price, "amountUsd": round(amount * price, 2),
            "exchange": self.exchanges[e], "executedAt": iso_utc(self.now),
        }
        if trader.strategy and rng.random() < 0.8:
            data["strategyId"] = trader.strategy
        quoted = self.last_quote.get((e, p))
        cause = quoted[1] if quoted else None
        return f"trades-{trader.user_id}", self._event(event_id, "TradeExecuted", data, cause)

    def _holder(self) -> Trader | None:
        for _ in range(8):
            trader = self._pick_trader()
            if trader.holdings:
                return trader
        return None

    def _mid(self, pair: str) -> float:
        return round_price(math.exp(self.instruments[self.pair_index[pair]].log_price))

    def _rebalance(self, event_id: uuid.UUID) -> tuple[str, ProposedEvent] | None:
        rng, trader = self.rng, self._holder()
        if trader is None:
            return None
        total = sum(amount * self._mid(pair) for pair, amount in trader.holdings.items())
        ranked = sorted(range(len(self.instruments)), key=lambda i: -trader.pair_weights[i])
        targets = ranked[: rng.randint(1, min(4, len(ranked)))]
        weights = [rng.gammavariate(2.0, 1.0) for _ in targets]
        positions: dict[str, float] = {}
        for index, weight in zip(targets, weights):
            pair = self.instruments[index].pair
            positions[pair] = round(total * weight / sum(weights) / self._mid(pair), 8)
        trader.holdings = {pair: amount for pair, amount in positions.items() if amount >= ZERO_POSITION}
        data = {
            "userId": trader.user_id, "newPositions": dict(trader.holdings),
            "newTotalValue": round(total, 2), "rebalancedAt": iso_utc(self.now),
        }
        return f"portfolio-{trader.user_id}", self._event(event_id, "PortfolioRebalanced", data)

    def _closure(self, event_id: uuid.UUID) -> tuple[str, ProposedEvent] | None:
        trader = self._holder()
        if trader is None:
            return None
        pair = self.rng.choice(sorted(trader.holdings))
        value = round(trader.holdings.pop(pair) * self._mid(pair), 2)
        data = {"userId": trader.user_id, "pair": pair, "closureValue": value, "closedAt": iso_utc(self.now)}
        return f"portfolio-{trader.user_id}", self._event(event_id, "PositionClosed", data)

    # -- fault drills ------------------------------------------------------

    def _bad_event(self, event_id: uuid.UUID) -> tuple[str, ProposedEvent]:
        rng = self.bad_rng
        kind = rng.choice(BAD_KINDS)
        trader = rng.choice(self.traders)
        e, p = rng.randrange(len(self.exchanges)), rng.randrange(len(self.instruments))
        stream, type_, data, raw = malformed(
            kind, rng, trader.user_id, self.instruments[p].pair, self.exchanges[e], self.quote(e, p),
            iso_utc(self.now), f"trd-{event_id.hex[:20]}",
        )
        metadata = {"correlationId": str(event_id), "causationId": str(event_id), "source": SOURCE, "faultDrill": kind}
        self.counts[f"bad:{kind}"] += 1
        return stream, ProposedEvent(type=type_, data=data, metadata=metadata, id=event_id, raw_data=raw)
