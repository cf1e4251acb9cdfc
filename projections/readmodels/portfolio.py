"""Portfolio read model (entity: user), plus the marks table it values positions with.

How prices reach portfolios (decision): the ``portfolio`` projection also
subscribes to ``PriceUpdated`` and folds it into its own *marks* entity
(pair -> latest price on any exchange, in ``$all`` order). A user's
``marketValue`` is positions x marks (falling back to the user's last trade
price of the pair, then to its cost) and is recomputed whenever one of the
user's own events is applied, with the marks as they stood at that event. So
the stored value and the ``portfolio-values`` ranking are replay-exact and a
price tick never fans out to every holder; the console's portfolio summary
also computes a live mark-to-market from the same marks hash at read time.

Every sum over a map uses ``math.fsum`` (exact, so independent of the map's
order: a state read back from Redis has its keys sorted, one folded in memory
has them in insertion order, and both must give the same bits).

Cost basis uses the average-cost method: buys add their USD amount, sells
remove the sold fraction of the cost and realise the difference as PnL.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from math import fsum, isfinite
from typing import Any

from projections.events import CANARY_TYPE, DomainEvent, PortfolioRebalanced, PositionClosed, PriceUpdated, TradeExecuted
from projections.keys import KeySpace
from projections.readmodels.base import EPSILON, Append, Placement, Ref, Rendered, StrayPlaces, dumps, fnum, inum, loads_map, num

NAME: str = "portfolio"
EVENT_TYPES: tuple[str, ...] = ("TradeExecuted", "PriceUpdated", "PortfolioRebalanced", "PositionClosed", CANARY_TYPE)
HISTORY_CAP = 1000
REBALANCE_MARKS_CAP = 200_000  # rebalances whose marks are indexed (older ones are read from the store)
MARKS: Ref = ("marks", "all")


@dataclass(frozen=True, slots=True)
class Marks:
    prices: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Portfolio:
    user_id: str
    positions: Mapping[str, float] = field(default_factory=dict)
    costs: Mapping[str, float] = field(default_factory=dict)
    last_prices: Mapping[str, float] = field(default_factory=dict)
    trade_count: int = 0
    last_trade_id: str = ""
    last_trade_at: int = 0
    realized_pnl: float = 0.0
    cost_basis: float = 0.0
    market_value: float = 0.0
    updated_at: int = 0
    last_position: int = 0


def value_of(p: Portfolio, marks: Mapping[str, float]) -> float:
    """Positions x marks; a pair with no mark uses the last trade price, then its cost."""
    return _valued(p.positions, p.costs, p.last_prices, marks)


def _valued(positions: Mapping[str, float], costs: Mapping[str, float], last: Mapping[str, float], marks: Mapping[str, float]) -> float:
    parts = []
    for pair, amount in positions.items():
        price = marks.get(pair) or last.get(pair)
        parts.append(amount * price if price else costs.get(pair, 0.0))
    return fsum(parts)


def trade_costs(old: float, cost: float, delta: float, usd: float) -> tuple[float, float, float]:
    """(new position, new cost, realised PnL) of adding ``delta`` units worth ``usd``."""
    new = old + delta
    if old == 0.0 or (old > 0) == (delta > 0):
        return new, cost + (usd if delta > 0 else -usd), 0.0
    closed = min(abs(delta), abs(old))
    removed = cost * closed / abs(old)
    proceeds = usd * closed / abs(delta)
    # long closed by a sell earns proceeds - cost; short closed by a buy earns |cost| - paid
    pnl = proceeds - removed if old > 0 else -removed - proceeds
    rest = cost - removed
    if abs(delta) > abs(old):  # flipped: the remainder opens the other side
        rest = (usd - proceeds) * (1 if delta > 0 else -1)
    return new, rest, pnl


def _settle(
    p: Portfolio, positions: dict[str, float], costs: dict[str, float], marks: Marks, *, updated_at: int, last_position: int,
    last_prices: Mapping[str, float] | None = None, trade_count: int | None = None, last_trade_id: str | None = None,
    last_trade_at: int | None = None, realized_pnl: float | None = None,
) -> Portfolio:
    """The new state: zero positions removed, cost basis and market value recomputed (the
    constructor, not dataclasses.replace: this runs once per event)."""
    for pair in [k for k, v in positions.items() if abs(v) < EPSILON]:
        del positions[pair]
        costs.pop(pair, None)
    last = p.last_prices if last_prices is None else last_prices
    return Portfolio(
        p.user_id, positions, costs, last,
        p.trade_count if trade_count is None else trade_count,
        p.last_trade_id if last_trade_id is None else last_trade_id,
        p.last_trade_at if last_trade_at is None else last_trade_at,
        p.realized_pnl if realized_pnl is None else realized_pnl,
        fsum(costs.values()), _valued(positions, costs, last, marks.prices), updated_at, last_position,
    )


def evolve_trade(p: Portfolio, e: TradeExecuted, marks: Marks) -> Portfolio:
    positions, costs = dict(p.positions), dict(p.costs)
    delta = e.amount if e.side == "buy" else -e.amount
    pos, cost, pnl = trade_costs(positions.get(e.pair, 0.0), costs.get(e.pair, 0.0), delta, e.amount_usd)
    positions[e.pair], costs[e.pair] = pos, cost
    return _settle(
        p, positions, costs, marks,
        last_prices={**p.last_prices, e.pair: e.price},
        trade_count=p.trade_count + 1,
        last_trade_id=e.trade_id,
        last_trade_at=e.executed_at,
        realized_pnl=p.realized_pnl + pnl,
        updated_at=e.executed_at,
        last_position=e.envelope.position,
    )


def evolve_rebalanced(p: Portfolio, e: PortfolioRebalanced, marks: Marks) -> Portfolio:
    """Positions become ``newPositions``; ``newTotalValue`` becomes the cost basis, split by value."""
    positions = {k: v for k, v in e.new_positions.items() if abs(v) >= EPSILON}
    weights = {k: abs(v) * (marks.prices.get(k) or p.last_prices.get(k) or 0.0) for k, v in positions.items()}
    total = fsum(weights.values())
    if total > 0:
        costs = {k: e.new_total_value * w / total for k, w in weights.items()}
    else:
        costs = {k: e.new_total_value / len(positions) for k in positions} if positions else {}
    return _settle(p, positions, costs, marks, updated_at=e.rebalanced_at, last_position=e.envelope.position)


def evolve_closed(p: Portfolio, e: PositionClosed, marks: Marks) -> Portfolio:
    positions, costs = dict(p.positions), dict(p.costs)
    positions.pop(e.pair, None)
    cost = costs.pop(e.pair, 0.0)
    return _settle(
        p, positions, costs, marks,
        realized_pnl=p.realized_pnl + e.closure_value - cost,
        updated_at=e.closed_at,
        last_position=e.envelope.position,
    )


def marks_outlive(event: DomainEvent) -> bool:
    """Whether the marks one of a user's events is folded with can still show in the user's state after
    the user's next event. Only a rebalance's: it splits its cost by them. Every other event uses the
    marks for the market value alone, which the user's next event recomputes. So a replay of one user
    is exact given the true marks at its rebalances and at its last event, and any marks elsewhere
    (the per-user rebuild relies on this; ``tests/unit/test_portfolio_fold.py`` checks it)."""
    return isinstance(event, PortfolioRebalanced)


def pairs_of(event: DomainEvent) -> tuple[str, ...]:
    """The pairs one of a user's events gives the user a position in (or takes it out of)."""
    if isinstance(event, (TradeExecuted, PositionClosed)):
        return (event.pair,)
    if isinstance(event, PortfolioRebalanced):
        return tuple(event.new_positions)
    return ()


def evolve_marks(m: Marks, e: PriceUpdated) -> Marks:
    if m.prices.get(e.pair) == e.price:
        return m
    return Marks({**m.prices, e.pair: e.price})


class PortfolioModel:
    name = NAME
    event_types = EVENT_TYPES
    user_kind: str | None = "user"
    publishes = True

    def own_append_keys(self, ks: KeySpace, ref: Ref) -> set[str]:
        return {ks.portfolio_history(ref[1])}

    def user_ranking(self, ks: KeySpace) -> str | None:
        return ks.portfolio_values()

    def presence(self, ks: KeySpace) -> str:
        return self.main_key(ks, ("user", "*"))

    def stray_places(self, ks: KeySpace) -> StrayPlaces:
        return StrayPlaces()

    def touches(self, event: DomainEvent) -> tuple[Ref, ...]:
        if isinstance(event, PriceUpdated):
            return (MARKS,)
        if isinstance(event, (TradeExecuted, PortfolioRebalanced, PositionClosed)):
            return (("user", event.user_id), MARKS)
        return ()

    def placement(self, ref: Ref) -> Placement:
        return Placement.REPLICATED if ref == MARKS else Placement.USER

    def empty(self, ref: Ref) -> Any:
        return Marks() if ref == MARKS else Portfolio(user_id=ref[1])

    def step(self, states: Mapping[Ref, Any], event: DomainEvent) -> dict[Ref, Any]:
        marks: Marks = states[MARKS]
        if isinstance(event, PriceUpdated):
            return {MARKS: evolve_marks(marks, event)}
        ref = ("user", getattr(event, "user_id"))
        if isinstance(event, TradeExecuted):
            return {ref: evolve_trade(states[ref], event, marks)}
        if isinstance(event, PortfolioRebalanced):  # the marks come back unchanged, for their index entry
            return {ref: evolve_rebalanced(states[ref], event, marks), MARKS: marks}
        if isinstance(event, PositionClosed):
            return {ref: evolve_closed(states[ref], event, marks)}
        return {}

    def main_key(self, ks: KeySpace, ref: Ref) -> str:
        return ks.marks() if ref == MARKS else ks.portfolio(ref[1])

    def parse(self, ref: Ref, f: Mapping[str, str]) -> Any:
        if ref == MARKS:
            return Marks({k: float(v) for k, v in f.items()})
        if not f:
            return Portfolio(user_id=ref[1])
        return Portfolio(
            user_id=ref[1],
            positions=loads_map(f.get("positions")),
            costs=loads_map(f.get("costs")),
            last_prices=loads_map(f.get("lastPrices")),
            trade_count=inum(f, "tradeCount"),
            last_trade_id=f.get("lastTradeId", ""),
            last_trade_at=inum(f, "lastTradeAt"),
            realized_pnl=fnum(f, "realizedPnl"),
            cost_basis=fnum(f, "costBasis"),
            market_value=fnum(f, "marketValue"),
            updated_at=inum(f, "updatedAt"),
            last_position=inum(f, "lastPosition"),
        )

    def render(self, ks: KeySpace, ref: Ref, s: Any) -> Rendered:
        if ref == MARKS:
            return Rendered(owned={ks.marks(): {k: num(v) for k, v in s.prices.items()}})
        p: Portfolio = s
        main = {
            "userId": p.user_id,
            "positions": dumps(p.positions),
            "costs": dumps(p.costs),
            "lastPrices": dumps(p.last_prices),
            "tradeCount": str(p.trade_count),
            "lastTradeId": p.last_trade_id,
            "lastTradeAt": str(p.last_trade_at),
            "realizedPnl": num(p.realized_pnl),
            "costBasis": num(p.cost_basis),
            "marketValue": num(p.market_value),
            "totalValue": num(p.market_value),  # the document's name for the same figure
            "updatedAt": str(p.updated_at),
            "lastPosition": str(p.last_position),
        }
        return Rendered(
            owned={
                ks.portfolio(p.user_id): main,
                ks.portfolio_positions(p.user_id): {k: num(v) for k, v in p.positions.items()},
            },
            zsets={ks.portfolio_values(): {p.user_id: p.market_value}},
        )

    def appends(self, ks: KeySpace, ref: Ref, event: DomainEvent, s: Any) -> Sequence[Append]:
        """One history entry per changed pair, scored by commit position (replay-exact); for a
        rebalance, also the marks it split its cost by, in the ``rebalance-marks`` index."""
        if ref == MARKS:
            if not isinstance(event, PortfolioRebalanced):
                return ()
            used = {pair: s.prices[pair] for pair in sorted(event.new_positions) if pair in s.prices}
            member = rebalance_marks_member(event.envelope.position, used)
            return (Append(ks.rebalance_marks(), member, event.envelope.position, REBALANCE_MARKS_CAP),)
        p: Portfolio = s
        env = event.envelope
        if isinstance(event, (TradeExecuted, PositionClosed)):
            pairs: Sequence[str] = (event.pair,)
        elif isinstance(event, PortfolioRebalanced):
            pairs = sorted(event.new_positions)
        else:
            return ()
        key = ks.portfolio_history(p.user_id)
        return tuple(
            Append(key, history_member(env.position, pair, p.positions.get(pair, 0.0), p.updated_at, env.type), env.position, HISTORY_CAP)
            for pair in pairs
        )


def rebalance_marks_member(position: int, marks: Mapping[str, float]) -> str:
    return f"{position}:{dumps(marks)}"


def parse_rebalance_marks(member: str) -> tuple[int, dict[str, float]]:
    """(position, marks) of a ``rebalance-marks`` entry."""
    position, _, marks = member.partition(":")
    return int(position), {k: float(v) for k, v in loads_map(marks).items()}


def history_member(position: int, pair: str, amount: float, at: int, kind: str) -> str:
    """A history entry as compact JSON, formatted by hand: this runs once per event, and
    pair and event type are validated identifiers that need no escaping."""
    if not isfinite(amount):  # only json spells infinities the way json.loads reads them back
        return json.dumps({"position": position, "pair": pair, "amount": amount, "at": at, "event": kind}, separators=(",", ":"))
    return f'{{"position":{position},"pair":"{pair}","amount":{float(amount)!r},"at":{at},"event":"{kind}"}}'


MODEL = PortfolioModel()
