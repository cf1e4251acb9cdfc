"""The freshness widget's context: each projection's canary figures, or why it has none.

A projection is *fresh* when its live projector committed a canary in the window and not longer
ago than OVERDUE_PERIODS canary periods (at least OVERDUE_MIN_MS). Otherwise the widget says "no
canary for N s" with the reason in words — never a misleading figure.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from lucent_admin.bootstrap import queries as q
from projections.queries import CANARY_WINDOW_MS, CanaryAppend, CanaryFreshness
from projections.readmodels import PROJECTIONS
from projections.status import ProjectionState, ProjectionStatus

OVERDUE_PERIODS = 3
OVERDUE_MIN_MS = 10_000


@dataclass(frozen=True)
class CanaryRow:
    projection: str
    freshness: CanaryFreshness | None
    fresh: bool
    reason: str  # why it is not fresh ("" when it is)

    @property
    def seconds(self) -> dict[str, float | None]:
        """The figures in seconds, for the ``millis`` format (one format per kind)."""
        f = self.freshness
        if f is None:
            return {"last": None, "p50": None, "p99": None, "gap": None}
        return {"last": f.last_ms / 1000, "p50": _s(f.p50_ms), "p99": _s(f.p99_ms), "gap": f.age_ms / 1000}


def _s(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def overdue_ms(every_s: int) -> int:
    return max(OVERDUE_MIN_MS, OVERDUE_PERIODS * every_s * 1000)


def why_none(status: ProjectionStatus, appended: CanaryAppend | None, every_s: int, now: int) -> str:
    """Why a projection has no recent canary, in words."""
    if not every_s:
        return "canaries are off (LUCENT_CANARY_EVERY_S=0)"
    if appended is None:
        return "no canary has been appended yet: beat appends one every few seconds (is beat running, and a worker?)"
    quiet = now - appended.appended_at_ms
    if quiet > overdue_ms(every_s):
        return f"no canary appended for {quiet / 1000:.1f} s: is beat running, and a worker?"
    state = status.effective_state
    if state in (ProjectionState.NOT_STARTED, ProjectionState.DEAD):
        return f"its projector is {state}: no heartbeat"
    if state in (ProjectionState.FAILED, ProjectionState.STALLED, ProjectionState.PAUSED):
        return f"its projector is {state}" + (f": {status.last_error}" if status.last_error else "")
    if state is ProjectionState.CATCHING_UP:
        return f"its projector is catching up ({status.events_behind:,} events behind)"
    return f"its projector has committed none of the canaries appended since (the newest {quiet / 1000:.1f} s ago)"


def row(status: ProjectionStatus, freshness: CanaryFreshness | None, appended: CanaryAppend | None, every_s: int,
        now: int) -> CanaryRow:
    fresh = bool(every_s) and freshness is not None and freshness.count > 0 and freshness.age_ms <= overdue_ms(every_s)
    return CanaryRow(status.projection, freshness, fresh, "" if fresh else why_none(status, appended, every_s, now))


def freshness(params: Any) -> dict[str, Any]:
    now = int(time.time() * 1000)
    every_s = int(settings.LUCENT_CANARY_EVERY_S)
    appended = q().canary_appended()
    statuses = {s.projection: s for s in q().projection_status()}
    rows = [row(statuses[p], q().canary(p, now), appended, every_s, now) for p in PROJECTIONS]
    return {"rows": rows, "every_s": every_s, "window_min": CANARY_WINDOW_MS // 60_000}
