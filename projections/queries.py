"""The read side the console uses: plain dataclasses, one or two Redis round trips each.

Views never read Redis directly (DESIGN invariant 8). Every query resolves the
projection's live generation through its pointer key (cached for a second so
a query stays one round trip) and validates user ids and pairs before they
reach a key name (:class:`~projections.errors.InvalidIdentifier`).
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from projections import keys
from projections.errors import InvalidIdentifier
from projections.events import is_identifier, is_pair
from projections.keys import KeySpace
from projections.readmodels.portfolio import MODEL as PORTFOLIO
from projections.readmodels.portfolio import Portfolio, value_of
from projections.readmodels.risk import HIGH_RISK_DAILY_EXPOSURE
from projections.writer import text

GENERATION_CACHE_S = 1.0


def check_user(user_id: object) -> str:
    if not is_identifier(user_id):
        raise InvalidIdentifier("user id", user_id, "1-64 chars of [A-Za-z0-9_.-]")
    return str(user_id)


def check_pair(pair: object) -> str:
    if not is_pair(pair):
        raise InvalidIdentifier("pair", pair, "BASE-QUOTE, e.g. BTC-USD")
    return str(pair)


def check_projection(name: object) -> str:
    if name not in keys.PROJECTIONS:
        raise InvalidIdentifier("projection", name, " | ".join(keys.PROJECTIONS))
    return str(name)


def _f(value: Any, default: float = 0.0) -> float:
    return default if value in (None, "", b"") else float(text(value))


def _i(value: Any, default: int = 0) -> int:
    return default if value in (None, "", b"") else int(text(value))


def _j(value: Any) -> Any:
    return json.loads(text(value)) if value not in (None, "", b"") else {}


def _tm(fields: Mapping[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in fields.items()}


@dataclass(frozen=True)
class Ranked:
    id: str
    score: float
    rank: int
    extra: dict[str, Any] = field(default_factory=dict)


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
    recent_history: list[dict[str, Any]]


@dataclass(frozen=True)
class RiskProfile:
    user_id: str
    day: str
    daily_volume: float
    daily_exposure: float
    trades_today: int
    largest_today: float
    largest_trade: float
    exposure: dict[str, float]
    concentration: float
    score: float
    level: str
    rank: int | None
    active_alerts: list[dict[str, Any]]
    acknowledged_alerts: list[dict[str, Any]]


@dataclass(frozen=True)
class MarketOverview:
    gainers: list[Ranked]
    losers: list[Ranked]
    volume_leaders: list[Ranked]
    exchanges: list[Ranked]
    latest_prices: dict[str, dict[str, dict[str, float]]]  # pair -> exchange -> quote
    arbitrage: list[dict[str, Any]]


@dataclass(frozen=True)
class ProjectionStatus:
    projection: str
    state: str
    alive: bool
    heartbeat_age: float | None
    generation: int
    checkpoint: int
    head: int
    lag_seconds: float
    events_behind: int
    events_behind_bounded: bool
    throughput: float
    applied: int
    parked: int
    last_error: str
    last_error_event: str
    projector: str
    updated_at: float


def _rank(zero_based: Any) -> int | None:
    return None if zero_based is None else int(zero_based) + 1


def _ranked(rows: list[tuple[Any, float]], start: int = 1) -> list[Ranked]:
    return [Ranked(text(m), float(s), start + i) for i, (m, s) in enumerate(rows)]


class Queries:
    """Queries over one Redis client (thread-safe; cheap to keep for the process)."""

    def __init__(self, client: redis.Redis) -> None:
        # redis-py types every reply as "Awaitable | value" (sync and async share stubs);
        # this is a sync client, so replies are plain values.
        self.client: Any = client
        self._generations: dict[str, tuple[float, int]] = {}

    def ks(self, projection: str) -> KeySpace:
        """The live generation's key space (pointer read at most once a second)."""
        cached = self._generations.get(projection)
        now = time.monotonic()
        if cached is None or now - cached[0] > GENERATION_CACHE_S:
            cached = (now, _i(self.client.get(keys.generation_pointer(projection)), 1))
            self._generations[projection] = cached
        return KeySpace(projection, cached[1])

    # -- portfolio and leaderboards ----------------------------------------------------

    def portfolio_summary(self, user_id: str, history: int = 10) -> PortfolioSummary | None:
        user = check_user(user_id)
        ks = self.ks("portfolio")
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(ks.portfolio(user))
        pipe.zrevrange(ks.portfolio_history(user), 0, history - 1)
        pipe.hgetall(ks.marks())
        pipe.zrevrank(ks.portfolio_values(), user)
        main, entries, marks, rank = pipe.execute()
        if not main:
            return None
        p: Portfolio = PORTFOLIO.parse(("user", user), _tm(main))
        live = value_of(p, {text(k): float(text(v)) for k, v in marks.items()})  # marked to the newest prices
        return PortfolioSummary(
            user, dict(p.positions), p.cost_basis, p.market_value, live, p.realized_pnl, p.trade_count,
            p.last_trade_id, p.last_trade_at, _rank(rank), [json.loads(text(e)) for e in entries],
        )

    def top_portfolios(self, limit: int = 10) -> list[Ranked]:
        ks = self.ks("portfolio")
        rows = self.client.zrevrange(ks.portfolio_values(), 0, limit - 1, withscores=True)
        pipe = self.client.pipeline(transaction=False)
        for member, _ in rows:
            pipe.hlen(ks.portfolio_positions(text(member)))
        counts = pipe.execute() if rows else []
        return [Ranked(r.id, r.score, r.rank, {"positions": int(c)}) for r, c in zip(_ranked(rows), counts)]

    def leaderboard_day(self) -> str:
        """'Today' for the leaderboards: the UTC day of the newest trade applied."""
        return text(self.client.hget(self.ks("leaderboards").clock(), "day"))

    def daily_volume_leaders(self, day: str | None = None, limit: int = 10) -> list[Ranked]:
        ks = self.ks("leaderboards")
        day = day or self.leaderboard_day()
        if not day:
            return []
        return _ranked(self.client.zrevrange(ks.daily_volume_leaders(day), 0, limit - 1, withscores=True))

    def strategy_performance(self, limit: int = 10) -> list[Ranked]:
        ks = self.ks("leaderboards")
        rows = self.client.zrevrange(ks.strategy_performance(), 0, limit - 1, withscores=True)
        pipe = self.client.pipeline(transaction=False)
        for member, _ in rows:
            pipe.hmget(ks.strategy(text(member)), "trades", "volume", "realizedPnl")
        details = pipe.execute() if rows else []
        return [Ranked(r.id, r.score, r.rank, {"trades": _i(d[0]), "volume": _f(d[1]), "realizedPnl": _f(d[2])})
                for r, d in zip(_ranked(rows), details)]

    def user_rank(self, user_id: str) -> dict[str, Any]:
        """A user's ranks: portfolio value, today's volume, risk score (None when unranked)."""
        user = check_user(user_id)
        day = self.leaderboard_day()
        lb, pf, rk = self.ks("leaderboards"), self.ks("portfolio"), self.ks("risk")
        pipe = self.client.pipeline(transaction=False)
        pipe.zrevrank(pf.portfolio_values(), user)
        pipe.zrevrank(lb.daily_volume_leaders(day or "-"), user)
        pipe.zscore(lb.daily_volume_leaders(day or "-"), user)
        pipe.zrevrank(rk.user_risk_scores(), user)
        pv, vol, volume, risk = pipe.execute()
        return {"userId": user, "day": day, "portfolioRank": _rank(pv), "volumeRank": _rank(vol),
                "dailyVolume": _f(volume), "riskRank": _rank(risk)}

    # -- risk -----------------------------------------------------------------------

    def risk_profile(self, user_id: str) -> RiskProfile | None:
        user = check_user(user_id)
        ks = self.ks("risk")
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(ks.user_risk(user))
        pipe.zrevrank(ks.user_risk_scores(), user)
        main, rank = pipe.execute()
        if not main:
            return None
        f = _tm(main)
        active = sorted(_j(f.get("activeAlerts")).values(), key=lambda a: (-a["raisedAt"], a["alertId"]))
        return RiskProfile(
            user, f.get("day", ""), _f(f.get("dailyVolume")), _f(f.get("dailyExposure")), _i(f.get("tradesToday")),
            _f(f.get("largestToday")), _f(f.get("largestTrade")), _j(f.get("exposure")), _f(f.get("concentration")),
            _f(f.get("riskScore")), f.get("riskLevel", "low"), None if rank is None else int(rank) + 1,
            active, list(_j(f.get("acknowledgedAlerts")).get("items", [])),
        )

    def high_risk_users(self, limit: int = 50, threshold: float = HIGH_RISK_DAILY_EXPOSURE) -> list[dict[str, Any]]:
        """Users whose daily exposure, on the risk projection's newest day, exceeds ``threshold``."""
        ks = self.ks("risk")
        pipe = self.client.pipeline(transaction=False)
        pipe.zrevrangebyscore(ks.user_daily_exposure(), "+inf", f"({threshold}", start=0, num=limit, withscores=True)
        pipe.hget(ks.clock(), "day")
        rows, today = pipe.execute()
        pipe = self.client.pipeline(transaction=False)
        for member, _ in rows:
            pipe.hmget(ks.user_risk(text(member)), "day", "riskScore", "riskLevel", "largestTrade", "dailyVolume")
        details = pipe.execute() if rows else []
        out = []
        for (member, exposure), d in zip(rows, details):
            if text(d[0]) != text(today):
                continue  # exposure of an earlier day: not high-risk today
            out.append({"userId": text(member), "dailyExposure": float(exposure), "day": text(d[0]), "riskScore": _f(d[1]),
                        "riskLevel": text(d[2]), "largestTrade": _f(d[3]), "dailyVolume": _f(d[4])})
        return sorted(out, key=lambda u: (-u["riskScore"], -u["dailyExposure"], u["userId"]))

    def active_alerts(self, limit: int = 50) -> list[dict[str, Any]]:
        """Active (unacknowledged) risk alerts, newest first by event time."""
        ks = self.ks("risk")
        ids = [text(m) for m in self.client.zrevrange(ks.risk_alerts(), 0, limit - 1)]
        if not ids:
            return []
        return [json.loads(text(d)) for d in self.client.hmget(ks.risk_alert_details(), ids) if d is not None]

    # -- market ---------------------------------------------------------------------

    def market_overview(self, limit: int = 10, now_ms: int | None = None) -> MarketOverview:
        """Movers, volume leaders, exchanges, latest prices and unexpired arbitrage (one round trip)."""
        ks = self.ks("market")
        pipe = self.client.pipeline(transaction=False)
        pipe.zrevrangebyscore(ks.price_changes_1h(), "+inf", "(0", start=0, num=limit, withscores=True)
        pipe.zrangebyscore(ks.price_changes_1h(), "-inf", "(0", start=0, num=limit, withscores=True)
        pipe.zrevrange(ks.volume_24h(), 0, limit - 1, withscores=True)
        pipe.zrevrange(ks.exchange_liquidity(), 0, limit - 1, withscores=True)
        pipe.hgetall(ks.latest_prices())
        pipe.hgetall(ks.arbitrage())
        gainers, losers, volume, exchanges, prices, arbitrage = pipe.execute()
        latest: dict[str, dict[str, dict[str, float]]] = {}
        for name, quote in prices.items():
            exchange, _, pair = text(name).partition(":")
            latest.setdefault(pair, {})[exchange] = json.loads(text(quote))
        now = int(time.time() * 1000) if now_ms is None else now_ms
        live = [o for o in (json.loads(text(v)) for v in arbitrage.values()) if o["expiresAt"] > now]
        return MarketOverview(_ranked(gainers), _ranked(losers), _ranked(volume), _ranked(exchanges), latest,
                              sorted(live, key=lambda o: (-o["spread"], o["pair"])))

    def pair_detail(self, pair: str) -> dict[str, Any] | None:
        p = check_pair(pair)
        main = self.client.hgetall(self.ks("market").market_pair(p))
        if not main:
            return None
        f = _tm(main)
        return {"pair": p, "lastPrice": _f(f.get("lastPrice")), "lastAt": _i(f.get("lastAt")), "change1h": _f(f.get("change1h")),
                "volatility": _f(f.get("volatility")), "volume24h": _f(f.get("volume24h")), "quotes": _j(f.get("quotes")),
                "arbitrage": _j(f.get("arbitrage")) or None}

    # -- operations -----------------------------------------------------------------

    def projection_status(self, projection: str | None = None) -> list[ProjectionStatus]:
        """Status of one or every projection, in one round trip."""
        names = [check_projection(projection)] if projection else list(keys.PROJECTIONS)
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(keys.status(name))
            pipe.get(keys.heartbeat(name))
            pipe.hlen(keys.parked(name))
            pipe.get(keys.generation_pointer(name))
        replies = pipe.execute()
        out = []
        for i, name in enumerate(names):
            status, beat, parked, generation = replies[4 * i : 4 * i + 4]
            out.append(_status(name, _tm(status), beat, int(parked), _i(generation, 1)))
        return out

    def parked_events(self, projection: str, limit: int = 100) -> list[dict[str, Any]]:
        """Parked events of ``projection``, oldest position first."""
        name = check_projection(projection)
        ids = [text(m) for m in self.client.zrange(keys.parked_index(name), 0, limit - 1)]
        if not ids:
            return []
        return [json.loads(text(r)) for r in self.client.hmget(keys.parked(name), ids) if r is not None]


def _status(name: str, f: dict[str, str], beat: Any, parked: int, generation: int) -> ProjectionStatus:
    heartbeat = json.loads(text(beat)) if beat else None
    age = None if heartbeat is None else max(0.0, time.time() - float(heartbeat["at"]))
    # ``alive`` (heartbeat present) is what tells a dead projector; ``state`` is its last word.
    return ProjectionStatus(
        name, f.get("state") or "stopped", heartbeat is not None, age, generation, _i(f.get("checkpoint")), _i(f.get("head")),
        _f(f.get("lagSeconds")), _i(f.get("eventsBehind")), f.get("eventsBehindBounded") == "1", _f(f.get("throughput")),
        _i(f.get("applied")), parked, f.get("lastError", ""), f.get("lastErrorEvent", ""), f.get("projector", ""),
        _f(f.get("updatedAt")),
    )
