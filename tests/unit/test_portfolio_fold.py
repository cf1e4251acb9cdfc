"""Portfolio folds: positions, zero removal, cost basis, marks, rebalance, close, history."""
from __future__ import annotations

from dataclasses import replace

import pytest

from projections.events import PortfolioRebalanced, PriceUpdated
from projections.keys import KeySpace
from projections.maintenance.user_fold import marks_needed, segments
from projections.projector.fold import fold_batch
from projections.readmodels.portfolio import (
    HISTORY_CAP,
    MARKS,
    MODEL,
    Marks,
    Portfolio,
    evolve_closed,
    evolve_marks,
    evolve_rebalanced,
    evolve_trade,
    parse_rebalance_marks,
)
from tests.unit.eventfactory import T0, closed, minutes, price, rebalanced, simulated, trade

KS = KeySpace("portfolio")
NO_MARKS = Marks()


def test_buy_then_sell_tracks_position_count_and_last_trade() -> None:
    p = evolve_trade(Portfolio("alice"), trade(tradeId="t1", amount=2.0, amountUsd=200.0), NO_MARKS)
    p = evolve_trade(p, trade(T0 + minutes(1), tradeId="t2", side="sell", amount=0.5, price=120.0, amountUsd=60.0), NO_MARKS)
    assert p.positions == {"BTC-USD": 1.5}
    assert p.trade_count == 2
    assert (p.last_trade_id, p.last_trade_at) == ("t2", int((T0 + minutes(1)).timestamp() * 1000))
    assert p.cost_basis == pytest.approx(150.0)  # average cost: a quarter of 200 sold
    assert p.realized_pnl == pytest.approx(10.0)  # 60 proceeds - 50 cost
    assert p.market_value == pytest.approx(1.5 * 120.0)  # no mark: last trade price


def test_position_below_epsilon_is_removed() -> None:
    p = evolve_trade(Portfolio("alice"), trade(amount=1.0), NO_MARKS)
    p = evolve_trade(p, trade(side="sell", amount=1.0 - 5e-7), NO_MARKS)
    assert p.positions == {} and p.costs == {}
    assert p.cost_basis == 0.0 and p.market_value == 0.0


def test_position_just_above_epsilon_stays() -> None:
    p = evolve_trade(Portfolio("alice"), trade(amount=1.0), NO_MARKS)
    p = evolve_trade(p, trade(side="sell", amount=1.0 - 2e-6), NO_MARKS)
    assert p.positions["BTC-USD"] == pytest.approx(2e-6)


def test_short_and_flip_through_zero() -> None:
    p = evolve_trade(Portfolio("alice"), trade(side="sell", amount=1.0, amountUsd=100.0), NO_MARKS)
    assert p.positions == {"BTC-USD": -1.0} and p.cost_basis == pytest.approx(-100.0)
    p = evolve_trade(p, trade(side="buy", amount=3.0, price=90.0, amountUsd=270.0), NO_MARKS)
    assert p.positions == {"BTC-USD": pytest.approx(2.0)}
    assert p.realized_pnl == pytest.approx(10.0)  # shorted at 100, covered at 90
    assert p.cost_basis == pytest.approx(180.0)


def test_market_value_uses_marks_as_of_the_users_event() -> None:
    marks = evolve_marks(NO_MARKS, price(price=150.0))
    p = evolve_trade(Portfolio("alice"), trade(amount=2.0, amountUsd=200.0), marks)
    assert p.market_value == pytest.approx(300.0)
    assert evolve_marks(marks, price(price=150.0)) is marks  # same price: no change


def test_rebalance_replaces_positions_and_splits_cost_by_value() -> None:
    marks = Marks({"BTC-USD": 100.0, "ETH-USD": 10.0})
    p = evolve_trade(Portfolio("alice"), trade(amount=1.0), marks)
    p = evolve_rebalanced(p, rebalanced({"ETH-USD": 5.0, "SOL-USD": 0.0000001, "BTC-USD": 0.5}, 110.0), marks)  # type: ignore[arg-type]
    assert p.positions == {"ETH-USD": 5.0, "BTC-USD": 0.5}
    assert p.costs == pytest.approx({"ETH-USD": 110.0 * 50 / 100, "BTC-USD": 110.0 * 50 / 100})
    assert p.market_value == pytest.approx(100.0)


def test_close_removes_the_pair_and_realises_pnl() -> None:
    p = evolve_trade(Portfolio("alice"), trade(amount=1.0, amountUsd=100.0), NO_MARKS)
    p = evolve_closed(p, closed("BTC-USD", 130.0), NO_MARKS)  # type: ignore[arg-type]
    assert p.positions == {} and p.realized_pnl == pytest.approx(30.0)
    same = evolve_closed(p, closed("ETH-USD", 0.0), NO_MARKS)  # type: ignore[arg-type]
    assert same.positions == {}


def test_step_touches_user_and_marks() -> None:
    event = trade()
    assert MODEL.touches(event) == (("user", "alice"), MARKS)
    assert MODEL.touches(price()) == (MARKS,)
    out = MODEL.step({("user", "alice"): Portfolio("alice"), MARKS: NO_MARKS}, event)
    assert set(out) == {("user", "alice")}


def test_history_appends_keyed_by_commit_position_and_capped() -> None:
    event = trade(position=777)
    state = evolve_trade(Portfolio("alice"), event, NO_MARKS)
    (entry,) = MODEL.appends(KS, ("user", "alice"), event, state)
    assert entry.key == KS.portfolio_history("alice") and entry.score == 777 and entry.cap == HISTORY_CAP == 1000
    assert '"position":777' in entry.member


def test_codec_round_trip_is_exact() -> None:
    p = evolve_trade(Portfolio("alice"), trade(amount=0.1, amountUsd=10.0 / 3), Marks({"BTC-USD": 1 / 3}))
    p = replace(p, last_position=42)
    ref = ("user", "alice")
    fields = MODEL.render(KS, ref, p).owned[KS.portfolio("alice")]
    assert MODEL.parse(ref, fields) == p
    marks = Marks({"BTC-USD": 0.1 + 0.2})
    assert MODEL.parse(MARKS, MODEL.render(KS, MARKS, marks).owned[KS.marks()]) == marks
    rendered = MODEL.render(KS, ref, p)
    assert rendered.zsets[KS.portfolio_values()] == {"alice": p.market_value}
    assert rendered.owned[KS.portfolio_positions("alice")] == {"BTC-USD": repr(0.1)}


def test_one_users_fold_with_marks_only_where_they_outlive_equals_the_full_replay() -> None:
    events = [e for e in simulated(6000, seed=9, users=6) if e.envelope.type in MODEL.event_types]
    rebalances = [e for e in events if isinstance(e, PortfolioRebalanced)]
    assert rebalances  # the case the shortcut is about
    full = fold_batch(MODEL, KS, {}, events)
    index = dict(parse_rebalance_marks(a.member) for a in full.appends if a.key == KS.rebalance_marks())
    assert sorted(index) == [e.envelope.position for e in rebalances]  # one entry per rebalance, replay-exact
    prices = [e for e in events if isinstance(e, PriceUpdated)]

    def latest(before: int, pairs: frozenset[str]) -> dict[str, float]:
        return {p.pair: p.price for p in prices if p.envelope.position < before and p.pair in pairs}

    for ref in sorted(ref for ref in full.changed if ref != MARKS):
        own = [e for e in events if ref in MODEL.touches(e) and not isinstance(e, PriceUpdated)]
        needs = marks_needed(own, set())
        assert len(needs) == sum(1 for e in own if isinstance(e, PortfolioRebalanced)) + (not isinstance(own[-1], PortfolioRebalanced))
        marks = {at: index[at] if at in index else latest(at, pairs) for at, pairs in needs}
        states: dict = {}
        for chunk, at in segments(own, marks):
            if at is not None:
                states[MARKS] = Marks(at)
            states.update(fold_batch(MODEL, KS, states, chunk).changed)
        assert MODEL.render(KS, ref, states[ref]) == MODEL.render(KS, ref, full.changed[ref])
