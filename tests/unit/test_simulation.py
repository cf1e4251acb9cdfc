"""The market simulator: deterministic, catalog-valid, realistic, and faulty on request."""
from __future__ import annotations

import json
import math
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from projections.eventstore import ProposedEvent
from projections.simulation.appender import plan_appends
from projections.simulation.faults import BAD_KINDS
from projections.simulation.market import DEFAULT_START, Market

ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}\Z")
PAIR = re.compile(r"[A-Za-z0-9_.]+-[A-Za-z0-9_.]+\Z")
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")

Item = tuple[str, ProposedEvent]


def run(seed: int = 7, n: int = 5000, **kwargs: Any) -> list[Item]:
    return list(Market(seed, **kwargs).events(n))


@pytest.fixture(scope="module")
def history() -> list[Item]:
    return run(7, 5000)


@pytest.fixture(scope="module")
def faulty() -> list[Item]:
    return run(11, 5000, bad_ratio=0.1)


# -- a catalog check written from DESIGN.md's table, independent of projections/events/ --


def is_number(value: object, low: float | None = None, strict: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return low is None or (value > low if strict else value >= low)


def is_time(value: object) -> bool:
    return isinstance(value, str) and ISO.match(value) is not None


def is_id(value: object) -> bool:
    return isinstance(value, str) and ID.match(value) is not None


def is_pair(value: object) -> bool:
    return isinstance(value, str) and PAIR.match(value) is not None


def catalog_problems(stream: str, event: ProposedEvent) -> list[str]:
    """Every way ``event`` breaks the catalog (empty when valid)."""
    if event.raw_data is not None:
        try:
            json.loads(event.raw_data)
        except ValueError:
            return ["data is not JSON"]
    d = event.data
    checks: dict[str, bool]
    if event.type == "TradeExecuted":
        checks = {
            "tradeId": is_id(d.get("tradeId")), "userId": is_id(d.get("userId")), "pair": is_pair(d.get("pair")),
            "side": d.get("side") in ("buy", "sell"), "amount": is_number(d.get("amount"), 0, strict=True),
            "price": is_number(d.get("price"), 0, strict=True), "amountUsd": is_number(d.get("amountUsd"), 0),
            "exchange": is_id(d.get("exchange")), "executedAt": is_time(d.get("executedAt")),
            "strategyId": "strategyId" not in d or is_id(d["strategyId"]),
            "stream": stream == f"trades-{d.get('userId')}",
        }
    elif event.type == "PriceUpdated":
        checks = {
            "exchange": is_id(d.get("exchange")), "pair": is_pair(d.get("pair")),
            "price": is_number(d.get("price"), 0, strict=True), "volume": is_number(d.get("volume"), 0),
            "spread": "spread" not in d or is_number(d["spread"], 0), "timestamp": is_time(d.get("timestamp")),
            "stream": stream == f"prices-{d.get('exchange')}",
        }
    elif event.type == "PortfolioRebalanced":
        positions = d.get("newPositions")
        checks = {
            "userId": is_id(d.get("userId")), "newTotalValue": is_number(d.get("newTotalValue"), 0),
            "newPositions": isinstance(positions, dict)
            and all(is_pair(p) and is_number(a, 0) for p, a in positions.items()),
            "rebalancedAt": is_time(d.get("rebalancedAt")), "stream": stream == f"portfolio-{d.get('userId')}",
        }
    elif event.type == "PositionClosed":
        checks = {
            "userId": is_id(d.get("userId")), "pair": is_pair(d.get("pair")),
            "closureValue": is_number(d.get("closureValue"), 0), "closedAt": is_time(d.get("closedAt")),
            "stream": stream == f"portfolio-{d.get('userId')}",
        }
    else:
        return [f"unexpected type {event.type}"]
    return [name for name, ok in checks.items() if not ok]


def event_time(event: ProposedEvent) -> str:
    key = {"TradeExecuted": "executedAt", "PriceUpdated": "timestamp", "PortfolioRebalanced": "rebalancedAt"}
    return str(event.data[key.get(event.type, "closedAt")])


# -- determinism -------------------------------------------------------------------------


def test_same_seed_gives_the_same_events_and_ids(history: list[Item]) -> None:
    assert run(7, 5000) == history


def test_different_seeds_and_starts_differ(history: list[Item]) -> None:
    other = run(8, 200)
    assert [e.data for _, e in other] != [e.data for _, e in history[:200]]
    assert {e.id for _, e in other}.isdisjoint(e.id for _, e in history)
    later = run(7, 200, start=DEFAULT_START + timedelta(days=1))
    assert {e.id for _, e in later}.isdisjoint(e.id for _, e in history)


def test_ids_are_unique_and_metadata_names_the_simulator(history: list[Item]) -> None:
    assert len({e.id for _, e in history}) == len(history)
    assert len({e.data["tradeId"] for _, e in history if e.type == "TradeExecuted"}) == sum(
        e.type == "TradeExecuted" for _, e in history
    )
    for _, event in history:
        assert event.metadata["source"] == "simulator"
        assert event.metadata["correlationId"] and event.metadata["causationId"]


def test_event_times_start_at_start_and_never_go_back(history: list[Item]) -> None:
    times = [event_time(e) for _, e in history]
    assert times == sorted(times)
    assert times[0].startswith("2026-01-05T00:00:")
    assert datetime.fromisoformat(times[-1]) - datetime.fromisoformat(times[0]) > timedelta(minutes=10)


def test_a_given_clock_stamps_the_events() -> None:
    now = [datetime(2026, 11, 25, 10, 0, tzinfo=UTC)]

    def clock() -> datetime:
        now[0] += timedelta(milliseconds=123)
        return now[0]

    items = list(Market(1).events(5, clock=clock))
    assert [event_time(e) for _, e in items][-1] == "2026-11-25T10:00:00.615Z"


# -- the catalog ------------------------------------------------------------------------


def test_every_good_event_fits_the_catalog(history: list[Item]) -> None:
    problems = {e.id: catalog_problems(s, e) for s, e in history}
    assert {k: v for k, v in problems.items() if v} == {}


def test_mix_is_mostly_prices_then_trades(history: list[Item]) -> None:
    counts = Counter(e.type for _, e in history)
    assert 0.55 < counts["PriceUpdated"] / len(history) < 0.65
    assert 0.30 < counts["TradeExecuted"] / len(history) < 0.40
    assert counts["PortfolioRebalanced"] > 20 and counts["PositionClosed"] > 20
    assert sum(1 for _, e in history if "strategyId" in e.data) > 50
    assert any("spread" not in e.data for _, e in history if e.type == "PriceUpdated")


# -- realism ----------------------------------------------------------------------------


def test_arbitrage_spreads_above_half_a_percent_occur_sometimes(history: list[Item]) -> None:
    latest: dict[tuple[str, str], float] = {}
    spreads = []
    for _, e in history:
        if e.type == "PriceUpdated":
            latest[(e.data["exchange"], e.data["pair"])] = e.data["price"]
            quotes = [p for (_, pair), p in latest.items() if pair == e.data["pair"]]
            if len(quotes) > 1:
                spreads.append((max(quotes) - min(quotes)) / min(quotes))
    wide = sum(s > 0.005 for s in spreads)
    assert 0 < wide < 0.3 * len(spreads)
    assert statistics.median(spreads) < 0.005


def test_some_user_crosses_100k_daily_exposure_but_not_most(history: list[Item]) -> None:
    exposure: Counter[tuple[str, str]] = Counter()
    for _, e in history:
        if e.type == "TradeExecuted":
            exposure[(e.data["userId"], e.data["executedAt"][:10])] += e.data["amountUsd"]
    over = {user for (user, _), usd in exposure.items() if usd > 100_000}
    assert 1 <= len(over) <= 25


def test_some_user_holds_a_concentrated_portfolio(history: list[Item]) -> None:
    per_pair: dict[str, Counter[str]] = defaultdict(Counter)
    for _, e in history:
        if e.type == "TradeExecuted":
            per_pair[e.data["userId"]][e.data["pair"]] += e.data["amountUsd"]
    shares = [max(c.values()) / sum(c.values()) for c in per_pair.values() if sum(c.values()) > 10_000]
    assert any(s > 0.8 for s in shares)


def test_holdings_never_go_negative(history: list[Item]) -> None:
    holdings: dict[str, dict[str, float]] = defaultdict(dict)
    for _, e in history:
        d, user = e.data, e.data.get("userId", "")
        if e.type == "TradeExecuted":
            sign = 1 if d["side"] == "buy" else -1
            holdings[user][d["pair"]] = holdings[user].get(d["pair"], 0.0) + sign * d["amount"]
            assert holdings[user][d["pair"]] >= -1e-6, (user, d)
        elif e.type == "PortfolioRebalanced":
            holdings[user] = dict(d["newPositions"])
        elif e.type == "PositionClosed":
            assert holdings[user].pop(d["pair"], 0.0) > 0, (user, d)


def test_prices_move_together_across_pairs() -> None:
    market = Market(5, pairs=2)
    path = []
    for _ in range(400):
        for _ in market.events(10):
            pass
        path.append([inst.log_price for inst in market.instruments])
    returns = [[b[i] - a[i] for a, b in zip(path, path[1:])] for i in range(2)]
    assert statistics.correlation(returns[0], returns[1]) > 0.4


def test_market_rejects_bad_parameters() -> None:
    for kwargs in ({"users": 0}, {"pairs": 51}, {"exchanges": 1}, {"bad_ratio": 1.5}):
        with pytest.raises(ValueError):
            Market(1, **kwargs)


def test_many_pairs_and_exchanges_get_synthetic_names() -> None:
    items = run(2, 300, pairs=14, exchanges=10)
    assert {catalog_problems(s, e) == [] for s, e in items} == {True}


# -- fault drills -----------------------------------------------------------------------


def test_bad_ratio_gives_that_fraction_of_each_kind(faulty: list[Item]) -> None:
    drills = Counter(e.metadata["faultDrill"] for _, e in faulty if "faultDrill" in e.metadata)
    assert abs(sum(drills.values()) / len(faulty) - 0.1) < 0.02
    assert set(drills) == set(BAD_KINDS)
    assert run(7, 1000, bad_ratio=0.0) == run(7, 1000)
    assert all("faultDrill" in e.metadata for _, e in run(3, 50, bad_ratio=1.0))


def test_every_drill_event_breaks_the_catalog_and_good_ones_do_not(faulty: list[Item]) -> None:
    for stream, event in faulty:
        broken = catalog_problems(stream, event)
        assert bool(broken) == ("faultDrill" in event.metadata), (event.metadata, event.data, broken)


def test_non_json_drill_sends_raw_bytes(faulty: list[Item]) -> None:
    raw = [e for _, e in faulty if e.metadata.get("faultDrill") == "non_json"]
    assert raw and all(e.to_new_event().data == e.raw_data for e in raw)


# -- the catalog decoder (projections/events/) agrees ------------------------------------


@dataclass(frozen=True)
class Recorded:
    type: str
    data: bytes
    id: Any
    stream_name: str
    commit_position: int | None
    recorded_at: datetime | None


def test_events_module_decodes_good_events_and_parks_drills(faulty: list[Item]) -> None:
    events = pytest.importorskip("projections.events")
    errors = pytest.importorskip("projections.errors")
    for position, (stream, event) in enumerate(faulty):
        new = event.to_new_event()
        recorded = Recorded(new.type, new.data, new.id, stream, position, None)
        if "faultDrill" in event.metadata:
            with pytest.raises(errors.BadEvent):
                events.decode(recorded)
        else:
            assert type(events.decode(recorded)).__name__ == event.type


# -- batching and progress ------------------------------------------------------------------


def test_appends_group_by_stream_keep_order_and_respect_batch_size(history: list[Item]) -> None:
    plan = list(plan_appends(history, batch_size=7, window=500))
    assert all(1 <= len(events) <= 7 for _, events in plan)
    assert sum(len(events) for _, events in plan) == len(history)
    sent: dict[str, list[Any]] = defaultdict(list)
    for stream, events in plan:
        sent[stream] += [e.id for e in events]
    expected: dict[str, list[Any]] = defaultdict(list)
    for stream, event in history:
        expected[stream].append(event.id)
    assert sent == expected
    assert len(plan) < len(history) / 3
