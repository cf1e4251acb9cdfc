"""Leaderboards read model (entities: trader, strategy, clock).

* daily volume leaders: ``daily-volume-leaders:{YYYY-MM-DD}`` per UTC day of
  ``executedAt``; a trader keeps the last 7 days (relative to the trader's own
  newest trade), older days leave the ranking;
* strategy performance: per ``strategyId`` trades, volume, realised PnL by the
  average-cost method per pair, and ROI % = realised PnL / USD bought, ranked
  in ``strategy-performance``;
* top portfolios and a user's portfolio rank read the portfolio projection's
  ``portfolio-values`` ranking (one source for one figure).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from projections.events import CANARY_TYPE, DomainEvent, TradeExecuted
from projections.keys import KeySpace
from projections.readmodels.base import (
    DAY_MS,
    EPSILON,
    Placement,
    Ref,
    Rendered,
    StrayPlaces,
    day_start,
    dumps,
    fnum,
    inum,
    loads_map,
    no_appends,
    num,
    utc_day,
)
from projections.readmodels.clock import CLOCK, Clock, evolve_clock, parse_clock, render_clock
from projections.readmodels.portfolio import trade_costs

NAME: str = "leaderboards"
EVENT_TYPES: tuple[str, ...] = ("TradeExecuted", CANARY_TYPE)
DAYS_KEPT = 7


@dataclass(frozen=True, slots=True)
class Trader:
    user_id: str
    volumes: Mapping[str, float] = field(default_factory=dict)  # day -> USD volume
    last_position: int = 0


@dataclass(frozen=True, slots=True)
class Strategy:
    strategy_id: str
    trades: int = 0
    volume: float = 0.0
    bought: float = 0.0
    realized_pnl: float = 0.0
    positions: Mapping[str, float] = field(default_factory=dict)
    costs: Mapping[str, float] = field(default_factory=dict)
    last_position: int = 0

    @property
    def roi(self) -> float:
        return self.realized_pnl / self.bought * 100.0 if self.bought > 0 else 0.0


def evolve_trader(t: Trader, e: TradeExecuted) -> Trader:
    day = utc_day(e.executed_at)
    volumes = {**t.volumes, day: t.volumes.get(day, 0.0) + e.amount_usd}
    newest = max(volumes)
    oldest_kept = utc_day(day_start(newest) - (DAYS_KEPT - 1) * DAY_MS)
    volumes = {d: v for d, v in volumes.items() if d >= oldest_kept}
    return replace(t, volumes=volumes, last_position=e.envelope.position)


def evolve_strategy(s: Strategy, e: TradeExecuted) -> Strategy:
    positions, costs = dict(s.positions), dict(s.costs)
    delta = e.amount if e.side == "buy" else -e.amount
    pos, cost, pnl = trade_costs(positions.get(e.pair, 0.0), costs.get(e.pair, 0.0), delta, e.amount_usd)
    if abs(pos) < EPSILON:
        positions.pop(e.pair, None)
        costs.pop(e.pair, None)
    else:
        positions[e.pair], costs[e.pair] = pos, cost
    return replace(
        s,
        trades=s.trades + 1,
        volume=s.volume + e.amount_usd,
        bought=s.bought + (e.amount_usd if e.side == "buy" else 0.0),
        realized_pnl=s.realized_pnl + pnl,
        positions=positions,
        costs=costs,
        last_position=e.envelope.position,
    )


class LeaderboardsModel:
    name = NAME
    event_types = EVENT_TYPES
    user_kind: str | None = "trader"
    publishes = False

    def own_append_keys(self, ks: KeySpace, ref: Ref) -> set[str]:
        return set()

    def user_ranking(self, ks: KeySpace) -> str | None:
        return None

    def presence(self, ks: KeySpace) -> str:
        return self.main_key(ks, ("trader", "*"))

    def stray_places(self, ks: KeySpace) -> StrayPlaces:
        return StrayPlaces(keys=ks.daily_volume_leaders("*"))  # every day's volume leaderboard

    def touches(self, event: DomainEvent) -> tuple[Ref, ...]:
        if not isinstance(event, TradeExecuted):
            return ()
        if event.strategy_id is None:
            return (("trader", event.user_id), CLOCK)
        return (("trader", event.user_id), ("strategy", event.strategy_id), CLOCK)

    def placement(self, ref: Ref) -> Placement:
        return Placement.LOCAL if ref == CLOCK else Placement.USER if ref[0] == "trader" else Placement.HOME

    def empty(self, ref: Ref) -> Any:
        kind, ident = ref
        return Clock() if ref == CLOCK else Trader(ident) if kind == "trader" else Strategy(ident)

    def step(self, states: Mapping[Ref, Any], event: DomainEvent) -> dict[Ref, Any]:
        if not isinstance(event, TradeExecuted):
            return {}
        t = ("trader", event.user_id)
        out: dict[Ref, Any] = {t: evolve_trader(states[t], event), CLOCK: evolve_clock(states[CLOCK], event.executed_at)}
        if event.strategy_id is not None:
            s = ("strategy", event.strategy_id)
            out[s] = evolve_strategy(states[s], event)
        return out

    def main_key(self, ks: KeySpace, ref: Ref) -> str:
        if ref == CLOCK:
            return ks.clock()
        return ks.trader(ref[1]) if ref[0] == "trader" else ks.strategy(ref[1])

    def parse(self, ref: Ref, f: Mapping[str, str]) -> Any:
        if ref == CLOCK:
            return parse_clock(f)
        if not f:
            return self.empty(ref)
        if ref[0] == "trader":
            return Trader(ref[1], loads_map(f.get("volumes")), inum(f, "lastPosition"))
        return Strategy(
            ref[1], inum(f, "trades"), fnum(f, "volume"), fnum(f, "bought"), fnum(f, "realizedPnl"),
            loads_map(f.get("positions")), loads_map(f.get("costs")), inum(f, "lastPosition"),
        )

    def render(self, ks: KeySpace, ref: Ref, s: Any) -> Rendered:
        if ref == CLOCK:
            return render_clock(ks, s)
        if ref[0] == "trader":
            t: Trader = s
            return Rendered(
                owned={ks.trader(t.user_id): {"userId": t.user_id, "volumes": dumps(t.volumes), "lastPosition": str(t.last_position)}},
                zsets={ks.daily_volume_leaders(day): {t.user_id: v} for day, v in t.volumes.items()},
            )
        st: Strategy = s
        main = {
            "strategyId": st.strategy_id, "trades": str(st.trades), "volume": num(st.volume),
            "bought": num(st.bought), "realizedPnl": num(st.realized_pnl), "roi": num(st.roi),
            "positions": dumps(st.positions), "costs": dumps(st.costs), "lastPosition": str(st.last_position),
        }
        return Rendered(owned={ks.strategy(st.strategy_id): main}, zsets={ks.strategy_performance(): {st.strategy_id: st.roi}})

    appends = staticmethod(no_appends)


MODEL = LeaderboardsModel()
