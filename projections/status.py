"""A projection's status: what it is doing (:class:`ProjectionState`), the record the read side shows
(:class:`ProjectionStatus`) and its codec — the status hash the projector writes (``projector/status.py``) read
back. Below both the projector and the read side (``queries/``), so neither imports the other.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from projections.codec import as_float as _f
from projections.codec import as_int as _i
from projections.codec import text
from projections.events import Envelope


class ProjectionState(StrEnum):
    """What a projection is doing. The projector reports the first seven in its status hash;
    the read side adds the last two: no status at all, or a status without a heartbeat."""

    STARTING = "starting"
    CATCHING_UP = "catching up"
    LIVE = "live"
    STALLED = "stalled"
    REBUILDING = "rebuilding"
    PAUSED = "paused"
    FAILED = "failed"
    NOT_STARTED = "not started"
    DEAD = "dead"


@dataclass(frozen=True)
class ProjectionStatus:
    projection: str
    state: ProjectionState  # the projector's last word (NOT_STARTED if it never reported)
    alive: bool  # its heartbeat is present: what tells a dead projector
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
    failing_event: Envelope | None  # the event a failed projection stopped on
    projector: str
    updated_at: float
    sessions: int = 0  # subscriptions the projector started (retries and resyncs start new ones)
    cold_start_at: int = 0  # epoch ms its projector found Redis had lost its read models (0: never)
    cold_start_from: int = 0  # the checkpoint it had committed before
    healed: int = 0  # users whose vanished keys this projector rebuilt before writing to them
    partitions: int = 1  # how many partitions these figures sum (see :func:`combine`)
    worst: str = ""  # the partition whose state and error are shown, when there are several

    @property
    def effective_state(self) -> ProjectionState:
        """DEAD when the last word is not backed by a heartbeat, else the reported state."""
        if not self.alive and self.state is not ProjectionState.NOT_STARTED:
            return ProjectionState.DEAD
        return self.state

    @property
    def stopped_on(self) -> Envelope | None:
        """The bad event a ``stop``-policy projection failed on, if it did (alive, it waits for an
        operator's decision; dead, it meets the event again when it restarts)."""
        return self.failing_event if self.state is ProjectionState.FAILED else None


def failing_event_from_json(value: str) -> Envelope | None:
    """The failing event recorded in a status hash (see ``projector/status.py``), or None."""
    if not value:
        return None
    try:
        d = json.loads(value)
        return Envelope(d["eventId"], d["stream"], int(d["position"]), d["type"], int(d.get("recordedAt", 0)))
    except (ValueError, KeyError, TypeError):
        return None


def failing_event_to_json(envelope: Envelope) -> str:
    return json.dumps({"eventId": envelope.event_id, "stream": envelope.stream, "position": envelope.position,
                       "type": envelope.type, "recordedAt": envelope.recorded_at}, sort_keys=True)


def parse_state(value: str) -> ProjectionState:
    try:
        return ProjectionState(value) if value else ProjectionState.NOT_STARTED
    except ValueError:
        return ProjectionState.NOT_STARTED


def parse_status(name: str, f: dict[str, str], beat: Any, parked: int, generation: int) -> ProjectionStatus:
    heartbeat = json.loads(text(beat)) if beat else None
    age = None if heartbeat is None else max(0.0, time.time() - float(heartbeat["at"]))
    return ProjectionStatus(
        name, parse_state(f.get("state", "")), heartbeat is not None, age, generation, _i(f.get("checkpoint")),
        _i(f.get("head")), _f(f.get("lagSeconds")), _i(f.get("eventsBehind")), f.get("eventsBehindBounded") == "1",
        _f(f.get("throughput")), _i(f.get("applied")), parked, f.get("lastError", ""),
        failing_event_from_json(f.get("failingEvent", "")), f.get("projector", ""), _f(f.get("updatedAt")),
        _i(f.get("sessions")), _i(f.get("coldStartAt")), _i(f.get("coldStartFrom")), _i(f.get("healed")),
    )


# How bad a state is, for naming a projection's worst partition (the first is the worst).
_SEVERITY = [ProjectionState.FAILED, ProjectionState.DEAD, ProjectionState.STALLED, ProjectionState.NOT_STARTED,
             ProjectionState.STARTING, ProjectionState.CATCHING_UP, ProjectionState.REBUILDING, ProjectionState.PAUSED,
             ProjectionState.LIVE]


def combine(name: str, parts: list[tuple[str, ProjectionStatus]]) -> ProjectionStatus:
    """One projection's status from its partitions' (label, status): the worst partition's state, error and
    failing event (named in ``worst``), the furthest-behind checkpoint and lag, and the sums of the counts."""
    if len(parts) == 1:
        return replace(parts[0][1], projection=name)
    label, worst = min(parts, key=lambda p: (_SEVERITY.index(p[1].effective_state), -p[1].lag_seconds,
                                             p[1].checkpoint))
    statuses = [p for _, p in parts]
    ages = [p.heartbeat_age for p in statuses if p.heartbeat_age is not None]
    return replace(
        worst, projection=name, alive=all(p.alive for p in statuses), heartbeat_age=max(ages) if ages else None,
        checkpoint=min(p.checkpoint for p in statuses), head=max(p.head for p in statuses),
        lag_seconds=max(p.lag_seconds for p in statuses), events_behind=sum(p.events_behind for p in statuses),
        events_behind_bounded=any(p.events_behind_bounded for p in statuses),
        throughput=sum(p.throughput for p in statuses), applied=sum(p.applied for p in statuses),
        parked=sum(p.parked for p in statuses), sessions=sum(p.sessions for p in statuses),
        healed=sum(p.healed for p in statuses), partitions=len(parts), worst=label,
    )
