"""Market folds: latest prices, 1h change, 24h buckets, volatility, liquidity, arbitrage."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from projections.keys import KeySpace
from projections.readmodels.base import HOUR_MS
from projections.readmodels.market import MODEL, ExchangeMarket, PairMarket, evolve_exchange, evolve_pair, find_arbitrage
from tests.unit.eventfactory import T0, minutes, price

KS = KeySpace("market")


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def fold(*events: object) -> PairMarket:
    m = PairMarket("BTC-USD")
    for e in events:
        m = evolve_pair(m, e)  # type: ignore[arg-type]
    return m


def test_latest_price_per_exchange_by_event_time() -> None:
    m = fold(price(T0, price=100.0), price(T0 + minutes(1), exchange="kraken", price=101.0), price(T0 - minutes(1), price=90.0))
    assert m.quotes["binance"].price == 100.0  # the older event does not win
    assert m.quotes["kraken"].price == 101.0
    assert m.last_price == 101.0


def test_one_hour_change_uses_the_oldest_sample_within_the_hour() -> None:
    m = fold(price(T0, price=100.0), price(T0 + minutes(30), price=105.0), price(T0 + minutes(59), price=110.0))
    assert m.change_1h == pytest.approx(10.0)
    m = evolve_pair(m, price(T0 + minutes(61), price=99.0))  # type: ignore[arg-type]
    assert min(m.minutes) == ms(T0 + minutes(1)) or min(m.minutes) == ms(T0 + minutes(30))
    assert m.change_1h == pytest.approx((99.0 - 105.0) / 105.0 * 100)


def test_24h_volume_in_hourly_buckets_by_event_time() -> None:
    m = fold(price(T0, volume=5.0), price(T0 + minutes(10), volume=3.0), price(T0 + timedelta(hours=23), volume=1.0))
    assert m.volume_24h == 9.0 and len(m.hours) == 2
    m = evolve_pair(m, price(T0 + timedelta(hours=24), volume=2.0))  # type: ignore[arg-type]
    assert m.volume_24h == 3.0  # the first hour slid out
    m = evolve_pair(m, price(T0 - timedelta(hours=2), volume=100.0))  # type: ignore[arg-type]
    assert m.volume_24h == 3.0  # a late event outside the window is not counted
    assert all(k % HOUR_MS == 0 for k in m.hours)


def test_volatility_is_zero_for_flat_prices_and_positive_otherwise() -> None:
    flat = fold(*(price(T0 + minutes(i), price=100.0) for i in range(5)))
    assert flat.volatility == 0.0
    wobbly = fold(*(price(T0 + minutes(i), price=100.0 + (i % 2) * 3) for i in range(6)))
    assert wobbly.volatility > 0


@pytest.mark.parametrize(("other", "expected"), [(100.5, False), (100.51, True), (99.4, True)])
def test_arbitrage_threshold_is_strictly_above_half_a_percent(other: float, expected: bool) -> None:
    m = fold(price(T0, price=100.0), price(T0 + minutes(1), exchange="kraken", price=other))
    assert (m.arbitrage is not None) is expected


def test_arbitrage_expires_five_minutes_after_event_time_and_ignores_stale_quotes() -> None:
    m = fold(price(T0, price=100.0), price(T0 + minutes(1), exchange="kraken", price=102.0))
    assert m.arbitrage is not None
    assert (m.arbitrage.buy_exchange, m.arbitrage.sell_exchange) == ("binance", "kraken")
    assert m.arbitrage.expires_at == ms(T0 + minutes(6))
    later = evolve_pair(m, price(T0 + minutes(5, ), exchange="kraken", price=102.0))  # type: ignore[arg-type]
    assert later.arbitrage is None  # binance's quote is exactly 5 minutes old: stale
    assert find_arbitrage("BTC-USD", m.quotes, ms(T0 + minutes(2))) is not None


def test_exchange_liquidity_sums_24h_volume() -> None:
    x = ExchangeMarket("binance")
    for i, e in enumerate((price(T0, volume=1.0), price(T0 + minutes(1), pair="ETH-USD", volume=2.0), price(T0 + timedelta(hours=25), volume=4.0))):
        x = evolve_exchange(x, e)  # type: ignore[arg-type]
    assert x.liquidity_24h == 4.0


def test_render_shares_the_documents_keys_and_round_trips() -> None:
    m = fold(price(T0, price=100.0), price(T0 + minutes(1), exchange="kraken", price=102.0, spread=None))
    ref = ("pair", "BTC-USD")
    out = MODEL.render(KS, ref, m)
    assert set(out.hfields[KS.latest_prices()]) == {"binance:BTC-USD", "kraken:BTC-USD"}
    assert out.zsets[KS.arbitrage_opportunities()] == {"BTC-USD:binance:kraken": pytest.approx(0.02)}
    assert MODEL.parse(ref, out.owned[KS.market_pair("BTC-USD")]) == m
    x = evolve_exchange(ExchangeMarket("binance"), price())  # type: ignore[arg-type]
    assert MODEL.parse(("exchange", "binance"), MODEL.render(KS, ("exchange", "binance"), x).owned[KS.market_exchange("binance")]) == x
