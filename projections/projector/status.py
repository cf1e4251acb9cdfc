"""Observability of a running projection: the status hash and the heartbeat.

A reporter thread refreshes, every ``interval`` seconds, the heartbeat key
(with a TTL: a dead projector shows as dead, not as "0 lag") and the status
hash: state, checkpoint, head, lag seconds (head event's recorded time minus
the last applied event's), events behind (a count bounded by ``bound``),
throughput, last error with its failing event and the parked count. It talks
to the event store for the head, so the batch path never waits on it.

The heartbeat is only refreshed while the runner's loop keeps ticking: a
runner stuck for longer than three intervals stops beating.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis

from projections import keys
from projections.events import Envelope
from projections.eventstore import EventStore
from projections.health import HealthSample
from projections.status import ProjectionState, failing_event_to_json

log = logging.getLogger(__name__)


@dataclass
class RunStatus:
    """Mutable figures the runner updates and the reporter publishes (single writer each)."""

    projection: str
    token: str
    generation: int = 1
    state: ProjectionState = ProjectionState.STARTING
    checkpoint: int = 0
    last_event_at: int = 0  # recorded time (ms) of the last applied event
    applied: int = 0
    parked: int = 0
    last_error: str = ""
    failing_event: Envelope | None = None
    sessions: int = 0  # subscriptions started: one, plus one per retry or resync
    healed: int = 0  # users whose vanished keys this runner rebuilt before writing to them (projector/vanished.py)
    started_at: float = field(default_factory=time.time)
    tick: float = field(default_factory=time.monotonic)

    cold_start_at: int = 0  # epoch ms this runner found its checkpoint gone or behind what it committed
    cold_start_from: int = 0  # the checkpoint it had committed then

    def fail(self, state: ProjectionState, error: str, event: Envelope | None = None) -> None:
        self.state, self.last_error, self.failing_event = state, error, event

    def cold_start(self, had: int) -> None:
        """Redis lost the read models under this runner (emptied, failed over): it projects them again."""
        self.cold_start_at, self.cold_start_from = int(time.time() * 1000), had
        log.warning("projection %s: its checkpoint went back from %s (Redis emptied or failed over); projecting "
                    "the history again", self.projection, had)


class Reporter(threading.Thread):
    """Publishes :class:`RunStatus` to Redis until ``stop`` is set (see module doc)."""

    def __init__(
        self,
        status: RunStatus,
        client: redis.Redis,
        store_factory: Callable[[], EventStore],
        event_types: Sequence[str],
        interval: float = 1.0,
        bound: int = 1000,
    ) -> None:
        super().__init__(name=f"status-{status.projection}", daemon=True)
        self.status = status
        self.client = client
        self.store_factory = store_factory
        self.event_types = tuple(event_types)
        self.interval = interval
        self.bound = bound
        self.halt = threading.Event()
        self._store: EventStore | None = None
        self._last = (time.monotonic(), 0)
        self._reports = 0
        self._behind: int | None = None

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            try:
                self.publish()
            except Exception as exc:  # noqa: BLE001 - observability must never kill the projector
                log.debug("status of %s not published: %s", self.status.projection, exc)
                self._store = None

    def stop(self) -> None:
        """Publish the final status once the thread's own publish (if one is in flight) is done.

        Joining first matters: a periodic publish landing after the final one would
        bring back the heartbeat of a stopped projector and an old checkpoint.
        """
        self.halt.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=5)  # bounded: a publish stuck on a dead Redis must not hang the stop
        try:
            self.publish(final=True)
        except Exception:  # noqa: BLE001
            pass

    def _lag(self) -> dict[str, str]:
        p = self.status
        if self._store is None:
            self._store = self.store_factory()
        head = self._store.head(self.event_types)
        if head is None or head.position <= p.checkpoint:
            return {"head": str(head.position if head else 0), "lagSeconds": "0", "eventsBehind": "0",
                    "eventsBehindBounded": "0"}  # every field, so no earlier report's figure lingers
        # Counting reads up to ``bound`` events from the store: cheap when live, a real
        # load while catching up, so then only every tenth report refreshes it.
        self._reports += 1
        if p.state is ProjectionState.LIVE or self._reports % 10 == 1 or self._behind is None:
            self._behind = self._store.count_after(p.checkpoint, self.event_types, self.bound)
        behind = self._behind
        lag = max(0.0, (head.recorded_at - p.last_event_at) / 1000) if p.last_event_at else 0.0
        return {"head": str(head.position), "lagSeconds": f"{lag:.3f}", "eventsBehind": str(behind),
                "eventsBehindBounded": "1" if behind >= self.bound else "0"}

    def publish(self, final: bool = False) -> None:
        p = self.status
        now = time.monotonic()
        then, applied_then = self._last
        self._last = (now, p.applied)
        fields = {
            "projection": p.projection, "projector": p.token, "generation": str(p.generation), "state": p.state,
            "checkpoint": str(p.checkpoint), "lastEventAt": str(p.last_event_at), "applied": str(p.applied),
            "throughput": f"{(p.applied - applied_then) / max(now - then, 1e-6):.1f}", "parked": str(p.parked), "sessions": str(p.sessions),
            "healed": str(p.healed),
            "lastError": p.last_error,
            "failingEvent": failing_event_to_json(p.failing_event) if p.failing_event else "",
            "startedAt": f"{p.started_at:.3f}", "updatedAt": f"{time.time():.3f}",
            "coldStartAt": str(p.cold_start_at), "coldStartFrom": str(p.cold_start_from),
        }
        try:  # the final report too: a paused projection still shows how far behind it is
            fields.update(self._lag())
        except Exception as exc:  # noqa: BLE001 - the store being down is itself a status
            fields["lastError"] = fields["lastError"] or f"event store: {exc}"
            self._store = None
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(keys.status(p.projection), mapping=fields)
        if "eventsBehind" in fields:  # the health window's sample (no figure when the store did not answer)
            sample = HealthSample(int(time.time() * 1000), p.checkpoint, float(fields["lagSeconds"]),
                                  int(fields["eventsBehind"]))
            pipe.lpush(keys.health_samples(p.projection), sample.encode())
            pipe.ltrim(keys.health_samples(p.projection), 0, keys.HEALTH_SAMPLES - 1)
        alive = now - p.tick < 3 * max(self.interval, 0.5)
        if final:
            pipe.delete(keys.heartbeat(p.projection))
        elif alive:
            # PEXPIRE first: it is not a deny-OOM command, so with Redis out of memory (every other write here
            # refused) the heartbeat stays and the projector shows stalled with the reason, not dead
            pipe.pexpire(keys.heartbeat(p.projection), max(2, int(self.interval * 5)) * 1000)
            beat = json.dumps({"projector": p.token, "at": time.time(), "state": p.state})
            pipe.set(keys.heartbeat(p.projection), beat, ex=max(2, int(self.interval * 5)))
        pipe.execute()
