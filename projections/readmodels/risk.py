"""Risk read model (entity: user) with alerts and their acknowledgement.

Definitions (all from event time; the "day" is the UTC day of ``executedAt``):

* daily volume: gross USD traded in the user's current day;
* daily exposure: sum over pairs of |net USD bought - sold| in that day (new
  risk taken; the ``user-daily-exposure`` ranking, > $100K = high-risk user);
* trade frequency: trades in the day; largest trade: of the day and all-time;
* exposure per pair: |position| x last trade price; concentration: the largest
  pair's share of total exposure (0 below $1,000 of total exposure);
* risk score 0-10 = volume (<= 4) + frequency (<= 2) + largest trade (<= 2)
  + concentration (<= 2); level low < 3 <= medium < 6 <= high < 8 <= critical.

A trade on an earlier day than the user's current day (late event) updates
positions and all-time figures, not the current day's. An alert is raised
exactly once each time the level *rises* to high or critical; its id derives
from the triggering event's stream and id (event ids are unique only within a
stream), so a replay raises the same alert and two users' events with one id
raise two. It stays active until a ``RiskAlertAcknowledged`` names it, by that
id or by the ``alert-<event id>`` alerts were named by before (issue 22).
"""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from math import fsum
from typing import Any

from projections.events import CANARY_TYPE, RISK_LEVELS, DomainEvent, RiskAlertAcknowledged, TradeExecuted
from projections.keys import KeySpace
from projections.readmodels.base import (
    EPSILON,
    Placement,
    Ref,
    Rendered,
    StrayPlaces,
    dumps,
    fnum,
    inum,
    loads_map,
    no_appends,
    num,
    utc_day,
)
from projections.readmodels.clock import CLOCK, Clock, evolve_clock, parse_clock, render_clock

NAME: str = "risk"
EVENT_TYPES: tuple[str, ...] = ("TradeExecuted", "RiskAlertAcknowledged", CANARY_TYPE)
LEVELS = RISK_LEVELS
HIGH_RISK_DAILY_EXPOSURE = 100_000.0
ACKNOWLEDGED_KEPT = 20
ACTIVE_CAP = 100
ALERT_NAMESPACE = uuid.UUID("0d5e7f3a-6b2c-4e1d-8a9f-3c7b5e2d1f04")  # of alert ids: never change it


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: str
    user_id: str
    level: str
    score: float
    raised_at: int
    event_id: str
    position: int
    acknowledged_by: str = ""
    acknowledged_at: int = 0
    note: str = ""
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "alertId": self.alert_id, "userId": self.user_id, "level": self.level, "score": self.score,
            "raisedAt": self.raised_at, "eventId": self.event_id, "position": self.position,
            "acknowledgedBy": self.acknowledged_by, "acknowledgedAt": self.acknowledged_at, "note": self.note,
            "reasons": list(self.reasons),
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Alert:
        return Alert(
            d["alertId"], d["userId"], d["level"], float(d["score"]), int(d["raisedAt"]), d["eventId"],
            int(d["position"]), d.get("acknowledgedBy", ""), int(d.get("acknowledgedAt", 0)), d.get("note", ""),
            tuple(d.get("reasons", ())),
        )


@dataclass(frozen=True, slots=True)
class Risk:
    user_id: str
    day: str = ""
    daily_volume: float = 0.0
    daily_net: Mapping[str, float] = field(default_factory=dict)
    trades_today: int = 0
    largest_today: float = 0.0
    largest_trade: float = 0.0
    positions: Mapping[str, float] = field(default_factory=dict)
    last_prices: Mapping[str, float] = field(default_factory=dict)
    score: float = 0.0
    level: str = "low"
    active: Mapping[str, Alert] = field(default_factory=dict)
    acknowledged: tuple[Alert, ...] = ()
    updated_at: int = 0
    last_position: int = 0

    @property
    def daily_exposure(self) -> float:
        return fsum(abs(v) for v in self.daily_net.values())

    @property
    def exposure(self) -> dict[str, float]:
        return {k: abs(v) * self.last_prices.get(k, 0.0) for k, v in self.positions.items()}

    @property
    def concentration(self) -> float:
        exposure = self.exposure
        total = fsum(exposure.values())
        return max(exposure.values()) / total if total >= 1000.0 else 0.0


def risk_score(daily_volume: float, trades: int, largest: float, concentration: float) -> float:
    """Deterministic score in [0, 10] (see the module docstring)."""
    raw = min(4.0, daily_volume / 50_000) + min(2.0, trades / 50) + min(2.0, largest / 50_000) + 2.0 * concentration
    return round(min(10.0, raw), 2)


def risk_level(score: float) -> str:
    return "low" if score < 3 else "medium" if score < 6 else "high" if score < 8 else "critical"


def idle_score(concentration: float) -> float:
    """The score of a user with no trades on the day: concentration alone."""
    return risk_score(0.0, 0, 0.0, concentration)


def as_of(r: Risk, day: str) -> Risk:
    """``r`` as of ``day`` (the read side's today): a user whose current day is earlier has no daily
    figures on ``day``, and the score and level of concentration alone. Stored state never decays
    (folds see no time but events'); readers apply this with the projection's clock day."""
    if not day or r.day >= day:
        return r
    score = idle_score(r.concentration)
    return replace(r, day=day, daily_volume=0.0, daily_net={}, trades_today=0, largest_today=0.0,
                   score=score, level=risk_level(score))


def _positions_after(r: Risk, e: TradeExecuted) -> dict[str, float]:
    positions = dict(r.positions)
    amount = positions.get(e.pair, 0.0) + (e.amount if e.side == "buy" else -e.amount)
    if abs(amount) < EPSILON:
        positions.pop(e.pair, None)
    else:
        positions[e.pair] = amount
    return positions


def _daily_after(r: Risk, e: TradeExecuted, day: str) -> dict[str, Any]:
    """The day's figures after ``e`` (a new day starts from zero; a late day changes nothing)."""
    if day < r.day:
        return {}
    fresh = day > r.day
    net = {} if fresh else dict(r.daily_net)
    net[e.pair] = net.get(e.pair, 0.0) + (e.amount_usd if e.side == "buy" else -e.amount_usd)
    return {
        "day": day,
        "daily_net": net,
        "daily_volume": (0.0 if fresh else r.daily_volume) + e.amount_usd,
        "trades_today": (0 if fresh else r.trades_today) + 1,
        "largest_today": max(0.0 if fresh else r.largest_today, e.amount_usd),
    }


def evolve_trade(r: Risk, e: TradeExecuted) -> Risk:
    new = replace(
        r,
        positions=_positions_after(r, e),
        last_prices={**r.last_prices, e.pair: e.price},
        largest_trade=max(r.largest_trade, e.amount_usd),
        updated_at=max(r.updated_at, e.executed_at),
        last_position=e.envelope.position,
        **_daily_after(r, e, utc_day(e.executed_at)),
    )
    score = risk_score(new.daily_volume, new.trades_today, new.largest_today, new.concentration)
    level = risk_level(score)
    new = replace(new, score=score, level=level)
    if LEVELS.index(level) > LEVELS.index(r.level) and level in ("high", "critical"):
        new = _raise(new, e, level, score)
    return new


def alert_id_for(stream: str, event_id: str) -> str:
    """The alert raised by the event ``event_id`` of ``stream`` (deterministic: a replay raises the same id; an
    identifier of 42 characters, whatever the lengths of the user id and the event id)."""
    return f"alert-{uuid.uuid5(ALERT_NAMESPACE, f'{stream}/{event_id}')}"


def legacy_alert_id(event_id: str) -> str:
    """The id an alert raised by ``event_id`` had before issue 22, which acknowledgements stored then carry."""
    return f"alert-{event_id}"[:64]


def alert_reasons(r: Risk) -> tuple[str, ...]:
    """The score's components that are at least half their maximum, in words (for operators)."""
    reasons = []
    if r.daily_volume >= 100_000:
        reasons.append(f"daily volume ${r.daily_volume:,.0f}")
    if r.trades_today >= 50:
        reasons.append(f"{r.trades_today} trades today")
    if r.largest_today >= 50_000:
        reasons.append(f"largest trade today ${r.largest_today:,.0f}")
    if r.concentration >= 0.5:
        exposure = r.exposure
        top = max(sorted(exposure), key=lambda pair: exposure[pair])
        reasons.append(f"{r.concentration:.0%} of exposure in {top}")
    return tuple(reasons)


def _raise(r: Risk, e: TradeExecuted, level: str, score: float) -> Risk:
    env = e.envelope
    alert = Alert(alert_id_for(env.stream, env.event_id), r.user_id, level, score, e.executed_at, env.event_id,
                  env.position, reasons=alert_reasons(r))
    active = {**r.active, alert.alert_id: alert}
    if len(active) > ACTIVE_CAP:  # keep the newest; a flood of alerts must not grow a hash without bound
        active = dict(sorted(active.items(), key=lambda kv: (kv[1].raised_at, kv[1].position))[-ACTIVE_CAP:])
    return replace(r, active=active)


def evolve_acknowledged(r: Risk, e: RiskAlertAcknowledged) -> Risk:
    """Move the named alert from active to acknowledged; an unknown or repeated id changes nothing.

    An id of before issue 22 (``alert-<event id>``) names the user's alert raised by that event: the user's trades
    are all in one stream, where event ids are unique, so it names one alert of this user at most."""
    alert = r.active.get(e.alert_id) or next(
        (a for a in r.active.values() if legacy_alert_id(a.event_id) == e.alert_id), None)
    if alert is None:
        return r
    done = replace(alert, acknowledged_by=e.acknowledged_by, acknowledged_at=e.at, note=e.note)
    active = {k: v for k, v in r.active.items() if k != alert.alert_id}
    return replace(r, active=active, acknowledged=((done,) + r.acknowledged)[:ACKNOWLEDGED_KEPT], last_position=e.envelope.position)


class RiskModel:
    name = NAME
    event_types = EVENT_TYPES
    user_kind: str | None = "user"
    publishes = True

    def own_append_keys(self, ks: KeySpace, ref: Ref) -> set[str]:
        return set()

    def user_ranking(self, ks: KeySpace) -> str | None:
        return ks.user_risk_scores()

    def presence(self, ks: KeySpace) -> str:
        return self.main_key(ks, ("user", "*"))

    def stray_places(self, ks: KeySpace) -> StrayPlaces:
        return StrayPlaces(details=ks.risk_alert_details(), ranking=ks.risk_alerts())  # an alert naming the user

    def touches(self, event: DomainEvent) -> tuple[Ref, ...]:
        if isinstance(event, TradeExecuted):
            return (("user", event.user_id), CLOCK)
        if isinstance(event, RiskAlertAcknowledged):
            return (("user", event.user_id),)
        return ()

    def placement(self, ref: Ref) -> Placement:
        return Placement.LOCAL if ref == CLOCK else Placement.USER

    def empty(self, ref: Ref) -> Any:
        return Clock() if ref == CLOCK else Risk(user_id=ref[1])

    def step(self, states: Mapping[Ref, Any], event: DomainEvent) -> dict[Ref, Any]:
        if isinstance(event, TradeExecuted):
            ref = ("user", event.user_id)
            return {ref: evolve_trade(states[ref], event), CLOCK: evolve_clock(states[CLOCK], event.executed_at)}
        if isinstance(event, RiskAlertAcknowledged):
            ref = ("user", event.user_id)
            return {ref: evolve_acknowledged(states[ref], event)}
        return {}

    def main_key(self, ks: KeySpace, ref: Ref) -> str:
        return ks.clock() if ref == CLOCK else ks.user_risk(ref[1])

    def parse(self, ref: Ref, f: Mapping[str, str]) -> Any:
        if ref == CLOCK:
            return parse_clock(f)
        if not f:
            return Risk(user_id=ref[1])
        active = {k: Alert.from_json(v) for k, v in loads_map(f.get("activeAlerts")).items()}
        acked = tuple(Alert.from_json(v) for v in loads_map(f.get("acknowledgedAlerts")).get("items", []))
        return Risk(
            user_id=ref[1], day=f.get("day", ""), daily_volume=fnum(f, "dailyVolume"),
            daily_net=loads_map(f.get("dailyNet")), trades_today=inum(f, "tradesToday"),
            largest_today=fnum(f, "largestToday"), largest_trade=fnum(f, "largestTrade"),
            positions=loads_map(f.get("positions")), last_prices=loads_map(f.get("lastPrices")),
            score=fnum(f, "riskScore"), level=f.get("riskLevel", "low"), active=active, acknowledged=acked,
            updated_at=inum(f, "updatedAt"), last_position=inum(f, "lastPosition"),
        )

    def render(self, ks: KeySpace, ref: Ref, s: Any) -> Rendered:
        if ref == CLOCK:
            return render_clock(ks, s)
        r: Risk = s
        main = {
            "userId": r.user_id, "day": r.day, "dailyVolume": num(r.daily_volume),
            "dailyExposure": num(r.daily_exposure), "dailyNet": dumps(r.daily_net),
            "tradesToday": str(r.trades_today), "largestToday": num(r.largest_today),
            "largestTrade": num(r.largest_trade), "positions": dumps(r.positions),
            "lastPrices": dumps(r.last_prices), "exposure": dumps(r.exposure),
            "concentration": num(r.concentration), "riskScore": num(r.score), "riskLevel": r.level,
            "activeAlerts": dumps({k: v.to_json() for k, v in r.active.items()}),
            "acknowledgedAlerts": dumps({"items": [a.to_json() for a in r.acknowledged]}),
            "updatedAt": str(r.updated_at), "lastPosition": str(r.last_position),
        }
        return Rendered(
            owned={ks.user_risk(r.user_id): main},
            zsets={
                ks.user_risk_scores(): {r.user_id: r.score},
                ks.user_daily_exposure(): {r.user_id: r.daily_exposure},
                ks.risk_alerts(): {a.alert_id: float(a.raised_at) for a in r.active.values()},
            },
            hfields={ks.risk_alert_details(): {a.alert_id: dumps(a.to_json()) for a in r.active.values()}},
        )

    appends = staticmethod(no_appends)


MODEL = RiskModel()
