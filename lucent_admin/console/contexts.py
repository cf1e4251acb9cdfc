"""What each widget shows: thin adapters from projections.queries to template contexts.

Connections are per process: one Redis client (thread-safe pool) and one event
store client for the whole web process.
"""
from __future__ import annotations

import atexit
import time
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings

from projections import lag, queries
from projections.errors import ProjectionError
from projections.eventstore import EventStore
from projections.service import park_bad_event as decide_park
from projections.service import retry_parked as request_retry

Params = Any


@lru_cache(maxsize=4)
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, health_check_interval=30)


def client() -> redis.Redis:
    return _redis(settings.REDIS_URL)


@lru_cache(maxsize=4)
def _store(uri: str) -> EventStore:
    store = EventStore(uri)
    atexit.register(store.close)  # close before interpreter teardown, not in esdbclient's __del__
    return store


def event_store() -> EventStore:
    return _store(settings.EVENTSTORE_URI)


class NotParked(ProjectionError):
    pass


def retry_parked(projection: str, event_id: str) -> None:
    """Ask the running projector to retry a parked event; NotParked if it is not parked."""
    if not request_retry(client(), projection, event_id):
        raise NotParked(f"event {event_id} is not parked in the {projection} projection")


def park_bad_event(projection: str, event_id: str) -> None:
    """Park the bad event a stop-policy projection stopped on; NotStoppedOn if it is not stopped on it."""
    decide_park(client(), projection, event_id)


def now_ms() -> int:
    return int(time.time() * 1000)


def when(ms: int | float | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc) if ms else None


@lru_cache(maxsize=4)
def _queries(url: str) -> queries.Queries:
    return queries.Queries(_redis(url))


def q() -> queries.Queries:
    return _queries(settings.REDIS_URL)


# -- overview and projections ----------------------------------------------------------

STATE_CLASS = {"live": "live", "catching up": "catching-up", "rebuilding": "catching-up", "starting": "catching-up"}


def _alarm(s: queries.ProjectionStatus) -> str:
    """Why a projection needs attention, in words; empty when it does not."""
    if not s.alive:
        if s.state == "stopped":
            return "No projector has run: start `manage.py run_projector`."
        return f"Projector dead: no heartbeat (last state {s.state!r})."
    if s.state in {"failed", "stalled"}:
        return f"{s.state.capitalize()}: {s.last_error or 'no error recorded'}" + (
            f" (event {s.last_error_event})" if s.last_error_event else "")
    return ""


def _tile(s: queries.ProjectionStatus, now: int) -> dict[str, Any]:
    alarm = _alarm(s)
    spark, lag_max = lag.sparkline(lag.history(client(), s.projection, now), now)
    return {
        "name": s.projection, "state": s.state if s.alive else "dead",
        "state_class": "bad" if alarm else STATE_CLASS.get(s.state, "warn"), "alarm": alarm,
        "lag_seconds": s.lag_seconds, "throughput": s.throughput, "parked": s.parked,
        "events_behind": f"{s.events_behind}{'+' if s.events_behind_bounded else ''}",
        "heartbeat_age": s.heartbeat_age, "checkpoint": s.checkpoint, "spark": spark, "lag_max": lag_max,
    }


def projection_tiles(params: Params) -> dict[str, Any]:
    now = now_ms()
    return {"tiles": [_tile(s, now) for s in q().projection_status()]}


def projection_details(params: Params) -> dict[str, Any]:
    out = []
    for s in q().projection_status():
        parked = q().parked_events(s.projection)
        fields = [
            ("State", s.state if s.alive else f"dead (last: {s.state})"), ("Projector", s.projector or "—"),
            ("Generation", s.generation), ("Checkpoint", s.checkpoint), ("Head", s.head),
            ("Lag", f"{s.lag_seconds:.1f} s"),
            ("Events behind", f"{s.events_behind}{'+' if s.events_behind_bounded else ''}"),
            ("Throughput", f"{s.throughput:.0f} ev/s"), ("Applied", s.applied),
            ("Heartbeat", "none" if s.heartbeat_age is None else f"{s.heartbeat_age:.1f} s ago"),
            ("Last error", s.last_error or "—"), ("Failing event", s.last_error_event or "—"),
        ]
        out.append({
            "name": s.projection, "state": s.state if s.alive else "dead", "alarm": _alarm(s),
            "state_class": "bad" if _alarm(s) else STATE_CLASS.get(s.state, "warn"), "fields": fields,
            "parked_count": s.parked,
            "stopped_on": s.last_error_event.split(" ", 1)[0] if s.state == "failed" and s.last_error_event else "",
            "parked": [{"event_id": p["eventId"], "stream": p["stream"], "type": p["type"], "position": p["position"],
                        "reason": f"{p['field']}: {p['reason']}"} for p in parked],
        })
    return {"projections": out}


# -- leaderboards --------------------------------------------------------------------------

def top_portfolios(params: Params) -> dict[str, Any]:
    return {"rows": [{"rank": r.rank, "user_id": r.id, "value": r.score} for r in q().top_portfolios(10)]}


def volume_leaders(params: Params) -> dict[str, Any]:
    return {"day": q().leaderboard_day(),
            "rows": [{"rank": r.rank, "user_id": r.id, "volume": r.score} for r in q().daily_volume_leaders(limit=10)]}


def strategies(params: Params) -> dict[str, Any]:
    rows = q().strategy_performance(10)
    return {
        "columns": [{"label": "Score"}, {"label": "Trades"}, {"label": "Volume (USD)"}, {"label": "Realized P&L (USD)"}],
        "rows": [{"rank": r.rank, "strategy_id": r.id, "values": [
            f"{r.score:,.2f}", r.extra["trades"], f"{r.extra['volume']:,.2f}", f"{r.extra['realizedPnl']:,.2f}"]}
            for r in rows],
    }


def user_rank(user_id: str) -> dict[str, Any]:
    ranks = q().user_rank(user_id)
    return {"user": user_id, "found": ranks["portfolioRank"] is not None or ranks["volumeRank"] is not None,
            "value_rank": ranks["portfolioRank"], "volume_rank": ranks["volumeRank"]}


# -- risk ----------------------------------------------------------------------------------

def _alert(a: dict[str, Any]) -> dict[str, Any]:
    return {"alert_id": a["alertId"], "user_id": a["userId"], "level": a["level"], "score": a["score"],
            "reasons": a.get("reasons") or [f"risk level rose to {a['level']}"], "raised_at": when(a["raisedAt"]),
            "acknowledged_by": a.get("acknowledgedBy", "")}


def alerts(params: Params) -> dict[str, Any]:
    return {"alerts": [_alert(a) for a in q().active_alerts(50)]}


def high_risk(params: Params) -> dict[str, Any]:
    rows = [{"user_id": u["userId"], "daily_exposure": u["dailyExposure"], "score": u["riskScore"],
             "level": u["riskLevel"]} for u in q().high_risk_users(50)]
    return {"rows": rows, "threshold": queries.HIGH_RISK_DAILY_EXPOSURE}


# -- market ----------------------------------------------------------------------------------

def _time_left(ms: int) -> str:
    seconds = max(0, ms // 1000)
    return f"{seconds // 60}:{seconds % 60:02d}"


def prices(params: Params) -> dict[str, Any]:
    overview = q().market_overview()
    exchanges = sorted({x for quotes in overview.latest_prices.values() for x in quotes})
    changes = {r.id: r.score for r in [*overview.gainers, *overview.losers]}
    rows = [{"pair": pair, "cells": [quotes[x]["price"] if x in quotes else None for x in exchanges],
             "change_1h": changes.get(pair, 0.0)} for pair, quotes in sorted(overview.latest_prices.items())]
    return {"exchanges": exchanges, "rows": rows}


def movers(params: Params) -> dict[str, Any]:
    overview = q().market_overview(limit=5)
    return {"gainers": [{"pair": r.id, "change": r.score} for r in overview.gainers],
            "losers": [{"pair": r.id, "change": r.score} for r in overview.losers],
            "volume_leaders": [{"pair": r.id, "volume": r.score} for r in overview.volume_leaders]}


def arbitrage(params: Params) -> dict[str, Any]:
    now = now_ms()
    return {"rows": [{"pair": o["pair"], "buy": o["buyExchange"], "sell": o["sellExchange"],
                      "spread_pct": o["spread"] * 100, "time_left": _time_left(o["expiresAt"] - now)}
                     for o in q().market_overview(now_ms=now).arbitrage]}


# -- user ------------------------------------------------------------------------------------

def user_portfolio(params: Params) -> dict[str, Any]:
    user = params["user"]
    summary = q().portfolio_summary(user, history=15)
    if summary is None:
        return {"user": user, "found": False}
    return {
        "user": user, "found": True, "rank": summary.rank, "market_value": summary.market_value,
        "cost_basis": summary.cost_basis, "trade_count": summary.trade_count,
        "last_trade_id": summary.last_trade_id, "last_trade_at": when(summary.last_trade_at),
        "positions": [{"pair": p, "amount": a} for p, a in sorted(summary.positions.items())],
        "history": [{"at": when(h["at"]), "kind": h["event"], "pair": h["pair"], "amount": h["amount"]}
                    for h in summary.recent_history],
    }


def user_risk(params: Params) -> dict[str, Any]:
    profile = q().risk_profile(params["user"])
    if profile is None:
        return {"found": False}
    alerts_ = [_alert(a) for a in [*profile.active_alerts, *profile.acknowledged_alerts]]
    return {
        "found": True, "score": profile.score, "level": profile.level, "daily_exposure": profile.daily_exposure,
        "daily_volume": profile.daily_volume, "trades_today": profile.trades_today,
        "largest_trade": profile.largest_trade, "concentration_pct": profile.concentration * 100, "alerts": alerts_,
    }
