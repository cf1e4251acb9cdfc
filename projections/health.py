"""A projection's health, classified over a sliding window of its status samples.

In the spirit of Kafka's Burrow: a single lag figure says little (a big lag that
falls is a healthy catch-up; a small one that only grows is trouble), so the
projector's status reporter records a sample every second (checkpoint, head, lag,
events behind; ``projector/status.py``) and :func:`classify` reads the window:

* **DEAD**: no heartbeat — no projector is running it (or it is stuck hard);
* **STOPPED**: it stopped on a bad event (policy ``stop``) and waits for a decision;
* **STALLED**: events are waiting and the checkpoint has not moved for ``stall_s``,
  or the projector itself reports it cannot reach the store or Redis;
* **REBUILDING**: it is projecting its history again — a cold start after Redis lost
  its read models, or a rebuild job filling a new generation;
* **WARN**: the lag grew across the whole window and is above ``warn_lag_s``, or no
  canary reached it for ``canary_stale_s`` while canaries are being appended;
* **OK**: caught up, or catching up (the checkpoint moving, the lag not growing).

A projection with nothing to do is OK, never a false alarm. Pure: no I/O, the
caller passes the samples, the status and the time.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class HealthState(StrEnum):
    OK = "ok"
    WARN = "warn"
    STALLED = "stalled"
    STOPPED = "stopped"
    DEAD = "dead"
    REBUILDING = "rebuilding"


@dataclass(frozen=True, slots=True)
class HealthSample:
    """One status report of the live projector (see ``projector/status.py``)."""

    at_ms: int
    checkpoint: int
    lag_seconds: float
    events_behind: int

    def encode(self) -> str:
        return f"{self.at_ms}:{self.checkpoint}:{self.lag_seconds:.3f}:{self.events_behind}"

    @classmethod
    def decode(cls, value: str) -> HealthSample | None:
        try:
            at, checkpoint, lag, behind = value.split(":")
            return cls(int(at), int(checkpoint), float(lag), int(behind))
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Thresholds:
    """How the window is read; the console's Settings page sets them (defaults here)."""

    window_s: float = 30.0  # the sliding window the lag trend is judged over
    warn_lag_s: float = 5.0  # a growing lag below this is jitter, not a warning
    stall_s: float = 20.0  # events waiting and the checkpoint still for this long: stalled
    canary_stale_s: float = 30.0  # no canary for this long, while canaries are appended: warn


@dataclass(frozen=True, slots=True)
class Health:
    state: HealthState
    reason: str  # in words, for the tile and the page

    @property
    def alarming(self) -> bool:
        return self.state in (HealthState.STALLED, HealthState.STOPPED, HealthState.DEAD)


@dataclass(frozen=True, slots=True)
class Observed:
    """What the classification needs besides the samples (from the status hash and the read side)."""

    alive: bool  # the heartbeat is present
    started: bool  # a projector ever reported
    stopped_on: str  # the bad event a stop-policy projection waits on ("" if none)
    stall_error: str  # the projector's own "cannot reach the store / Redis" ("" if none)
    events_behind: int
    lag_seconds: float
    rebuilding: str = ""  # why it is projecting its history again ("" if it is not)
    behind_bounded: bool = False  # events_behind is the count's bound: there are more
    canary_age_s: float | None = None  # since the last canary reached it; None: canaries are off


def classify(observed: Observed, samples: Sequence[HealthSample], now_ms: int,
             thresholds: Thresholds = Thresholds()) -> Health:
    """The projection's health (module doc); ``samples`` in any order."""
    o, t = observed, thresholds
    if not o.started:
        return Health(HealthState.DEAD, "No projector has run: start `manage.py run_projector`.")
    if not o.alive:
        return Health(HealthState.DEAD, "Projector dead: no heartbeat — it is not running, or is stuck.")
    if o.stopped_on:
        return Health(HealthState.STOPPED, f"Stopped on bad event {o.stopped_on}: park it to resume.")
    window = sorted((s for s in samples if s.at_ms >= now_ms - t.window_s * 1000), key=lambda s: s.at_ms)
    if o.stall_error:
        return Health(HealthState.STALLED, f"Cannot go on: {o.stall_error}")
    still = _still_for(samples, now_ms)
    if o.events_behind > 0 and still >= t.stall_s:
        return Health(HealthState.STALLED,
                      f"{_behind(o)} waiting; the checkpoint has not moved for {still:.0f} s.")
    if o.rebuilding:
        return Health(HealthState.REBUILDING, o.rebuilding)
    growing = _lag_growing(window, t)
    if growing:
        return Health(HealthState.WARN, growing)
    if o.canary_age_s is not None and o.canary_age_s >= t.canary_stale_s:
        return Health(HealthState.WARN, f"No canary has reached it for {o.canary_age_s:.0f} s, "
                                        "though its lag looks fine.")
    if o.events_behind > 0:
        return Health(HealthState.OK, f"Catching up: {_behind(o)} behind, lag {o.lag_seconds:.1f} s.")
    return Health(HealthState.OK, "Caught up.")


def _behind(o: Observed) -> str:
    plus = "+" if o.behind_bounded else ""
    return f"{o.events_behind:,}{plus} event{'' if o.events_behind == 1 and not plus else 's'}"  # as the tiles show it


def _still_for(samples: Sequence[HealthSample], now_ms: int) -> float:
    """Seconds the checkpoint has stood where the newest sample has it, with events behind all along
    (0 when the newest sample has none behind)."""
    ordered = sorted(samples, key=lambda s: s.at_ms, reverse=True)
    if not ordered or ordered[0].events_behind == 0:
        return 0.0
    newest, since = ordered[0], ordered[0].at_ms
    for s in ordered[1:]:
        if s.checkpoint != newest.checkpoint or s.events_behind == 0:
            break
        since = s.at_ms
    return max(0.0, (now_ms - since) / 1000) if since < newest.at_ms else 0.0


def _lag_growing(window: Sequence[HealthSample], t: Thresholds) -> str:
    """Why the lag counts as growing over ``window`` (oldest first), or "" (Burrow's rule, made robust to
    the jitter of one-second samples of a batching projector: it rose overall, from one sample to the next
    at least three times in four and never fell below where the window began, spans most of the window,
    and ends above the floor)."""
    if len(window) < 3:
        return ""
    first, last = window[0], window[-1]
    if (last.at_ms - first.at_ms) < t.window_s * 1000 * 0.6 or last.lag_seconds < t.warn_lag_s:
        return ""
    steps = list(zip(window, window[1:]))
    rises = sum(1 for a, b in steps if b.lag_seconds >= a.lag_seconds)
    held = all(s.lag_seconds >= first.lag_seconds for s in window)
    if rises * 4 < len(steps) * 3 or not held or last.lag_seconds <= first.lag_seconds:
        return ""
    span = (last.at_ms - first.at_ms) / 1000
    return f"Lag growing: {first.lag_seconds:.1f} s → {last.lag_seconds:.1f} s over the last {span:.0f} s."


def worst_window(windows: list[list[HealthSample]]) -> list[HealthSample]:
    """The health window of a projection split into partitions: its worst partition's — one that never reported
    (an empty window), else the one whose newest sample is furthest behind (lag, then events behind)."""
    if any(not window for window in windows):
        return []
    return max(windows, key=lambda w: (w[0].lag_seconds, w[0].events_behind))
