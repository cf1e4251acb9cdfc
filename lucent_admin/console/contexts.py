"""What each widget shows: thin adapters from projections.queries to template contexts.

Values stay typed (the read side's dataclasses) and raw (floats, epoch ms as
datetimes); templates format them with the ``numbers`` filters, one format per
kind of value.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from django.conf import settings

from lucent_admin.bootstrap import queries as q
from lucent_admin.console.charts import sparkline
from lucent_admin.console.jobs import job_row, latest_scores
from lucent_admin.operations.models import Job
from lucent_admin.operations.queue import GENERATION_KINDS
from lucent_admin.operations.recovery import ProjectionHealth, projection_health
from projections.health import HealthState
from projections.inventory import Role
from projections.readmodels.risk import HIGH_RISK_DAILY_EXPOSURE, Alert
from projections.status import ProjectionState, ProjectionStatus

Params = Any


def now_ms() -> int:
    return int(time.time() * 1000)


def when(ms: int | float | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc) if ms else None


# -- overview and projections ----------------------------------------------------------

STATE_CLASS = {
    ProjectionState.LIVE: "live", ProjectionState.CATCHING_UP: "catching-up",
    ProjectionState.REBUILDING: "catching-up", ProjectionState.STARTING: "catching-up",
}


def failing_event_text(s: ProjectionStatus) -> str:
    e = s.failing_event
    return f"{e.event_id} ({e.type} in {e.stream} at {e.position})" if e else ""


PARKED_SHOWN = 10  # parked events listed per projection on the page (the newest; the command line lists all)

HEALTH_CLASS = {
    HealthState.OK: "ok", HealthState.WARN: "warn", HealthState.REBUILDING: "catching-up",
    HealthState.STALLED: "bad", HealthState.STOPPED: "bad", HealthState.DEAD: "bad",
}


def _common(s: ProjectionStatus, ph: ProjectionHealth) -> dict[str, Any]:
    health = ph.health
    alarm = health.reason if health.alarming else ""
    return {
        "name": s.projection, "state": s.effective_state, "alarm": alarm, "status": s,
        "state_class": "bad" if alarm else STATE_CLASS.get(s.state, "warn"),
        "health": health, "health_class": HEALTH_CLASS[health.state], "cold_start": ph.cold_start,
        "escalated": ph.escalated,
        "events_behind": f"{s.events_behind:,}{'+' if s.events_behind_bounded else ''}",
    }


def projection_tiles(params: Params) -> dict[str, Any]:
    now = now_ms()
    tiles = []
    scores = latest_scores()
    for name, ph in projection_health().items():
        s = ph.status
        spark, lag_max = sparkline(q().lag_history(name, now), now)
        tiles.append({**_common(s, ph), "spark": spark, "lag_max": lag_max, "consistency": scores.get(name)})
    return {"tiles": tiles}


def projection_details(params: Params) -> dict[str, Any]:
    out = []
    for ph in projection_health().values():
        s = ph.status
        state = s.effective_state
        job = Job.objects.filter(kind__in=GENERATION_KINDS, target=s.projection).first()
        out.append({
            **_common(s, ph),
            "shown_state": f"dead (last: {s.state})" if state is ProjectionState.DEAD else str(state),
            "failing_event": failing_event_text(s),
            "stopped_on": s.stopped_on.event_id if s.stopped_on else "",
            "parked": q().parked_events(s.projection, PARKED_SHOWN, newest=True),
            **generation_rows(s.projection),
            "generation_job": job,
            "generation_job_row": job_row(job) if job else None,
        })
    return {"projections": out}


def generation_rows(projection: str) -> dict[str, Any]:
    """Every generation of ``projection`` present in Redis (``queries.generations``) with its role in words: the
    job writing or dropping it (a generation job names its generation), until when a kept one is kept, and whether
    an operator may drop it (neither live nor being written nor being dropped already)."""
    retention_ms = int(settings.LUCENT_GENERATION_RETENTION_HOURS) * 3_600_000
    active = Job.objects.filter(kind__in=GENERATION_KINDS, target=projection, state__in=ACTIVE_STATES)
    by_generation = {int(j.params.get("generation") or 0): j for j in active}
    rows, kept = [], None
    for g in q().generations(projection):
        job = by_generation.get(g.generation)
        role = str(g.role)
        if job is not None and g.role is not Role.LIVE:
            role = "dropping" if job.kind == Job.Kind.DROP_GENERATION else str(Role.WRITING)
        if g.role is Role.KEPT:
            kept = g
        rows.append({"g": g, "role": role, "job": job, "droppable": role in (Role.KEPT, Role.ORPHAN),
                     "until": when(g.kept_since_ms + retention_ms) if g.role is Role.KEPT else None})
    return {"generations": rows, "kept": kept}


ACTIVE_STATES = (Job.State.QUEUED, Job.State.RUNNING)


# -- leaderboards --------------------------------------------------------------------------

def top_portfolios(params: Params) -> dict[str, Any]:
    return {"rows": q().top_portfolios(10)}


def volume_leaders(params: Params) -> dict[str, Any]:
    return {"day": q().leaderboard_day(), "rows": q().daily_volume_leaders(limit=10)}


def strategies(params: Params) -> dict[str, Any]:
    return {"rows": q().strategy_performance(10)}


def user_rank(user_id: str) -> dict[str, Any]:
    return {"user": user_id, "ranks": q().user_rank(user_id)}


# -- risk ----------------------------------------------------------------------------------

ALERTS_SHOWN = 50  # the newest; the badge counts them all
HIGH_RISK_SHOWN = 50  # by score; the heading counts them all
RISK_RANKING_SHOWN = 20  # the seed's risk dashboard shows 20


def _alert(a: Alert) -> dict[str, Any]:
    return {"alert": a, "reasons": a.reasons or (f"risk level rose to {a.level}",), "raised_at": when(a.raised_at)}


def alerts(params: Params) -> dict[str, Any]:
    return {"alerts": [_alert(a) for a in q().active_alerts(ALERTS_SHOWN)], "count": q().active_alert_count()}


def high_risk(params: Params) -> dict[str, Any]:
    users = q().high_risk_users(HIGH_RISK_SHOWN)
    return {"day": users.day, "rows": users.rows, "total": users.total, "more": users.total - len(users.rows),
            "threshold": HIGH_RISK_DAILY_EXPOSURE}


def risk_ranking(params: Params) -> dict[str, Any]:
    ranking = q().risk_ranking(RISK_RANKING_SHOWN)
    return {"day": ranking.day, "rows": ranking.rows, "total": ranking.total}


# -- market ----------------------------------------------------------------------------------

def _time_left(ms: int) -> str:
    seconds = max(0, ms // 1000)
    return f"{seconds // 60}:{seconds % 60:02d}"


def prices(params: Params) -> dict[str, Any]:
    overview = q().market_overview()
    exchanges = sorted({x for quotes in overview.latest_prices.values() for x in quotes})
    rows = [{"pair": pair, "cells": [quotes[x].price if x in quotes else None for x in exchanges],
             "change_1h": overview.changes_1h.get(pair)} for pair, quotes in sorted(overview.latest_prices.items())]
    return {"exchanges": exchanges, "rows": rows, "unknown_change": any(r["change_1h"] is None for r in rows)}


def movers(params: Params) -> dict[str, Any]:
    overview = q().market_overview(limit=5)
    return {"gainers": overview.gainers, "losers": overview.losers, "volume_leaders": overview.volume_leaders,
            "changes_known": bool(overview.changes_1h), "priced": bool(overview.latest_prices)}


def arbitrage(params: Params) -> dict[str, Any]:
    now = now_ms()
    return {"rows": [{"o": o, "spread_pct": o.spread * 100, "time_left": _time_left(o.expires_at - now)}
                     for o in q().market_overview(now_ms=now).arbitrage]}


# -- user ------------------------------------------------------------------------------------

def user_portfolio(params: Params) -> dict[str, Any]:
    user = params["user"]
    summary = q().portfolio_summary(user, history=15)
    if summary is None:
        return {"user": user, "found": False}
    return {
        "user": user, "found": True, "p": summary, "last_trade_at": when(summary.last_trade_at),
        "positions": sorted(summary.positions.items()),
        "history": [{"at": when(h.at), "entry": h} for h in summary.recent_history],
    }


def user_risk(params: Params) -> dict[str, Any]:
    profile = q().risk_profile(params["user"])
    if profile is None:
        return {"found": False}
    return {"found": True, "r": profile, "concentration_pct": profile.concentration * 100,
            "alerts": [_alert(a) for a in [*profile.active_alerts, *profile.acknowledged_alerts]]}
