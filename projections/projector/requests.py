"""What operators and jobs ask of a running projector between two batches: a resync, a flip.

* **Resync** (``keys.resync_request``, set by ``projections.actions.request_resync``):
  consumed once; the runner drops its state and resubscribes from its checkpoint.
* **Flip** (``keys.flip``, asked by ``projections/maintenance/generations.py``): the live
  projector stops applying at its checkpoint, says where (state ``paused``, ``at``), and waits,
  renewing its lease, until the job flips the pointer (then it resubscribes on the new
  generation) or aborts — or ``FLIP_PAUSE_S`` passes, when it aborts the flip itself and goes on.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from projections import keys
from projections.errors import Fenced, ResyncRequested
from projections.projector.lease import Lease
from projections.writer import text

log = logging.getLogger(__name__)

FLIP_PAUSE_S = 5.0  # the longest the live projector waits for a flip it paused for
FLIP_POLL_S = 0.002  # how often it looks, paused (the pause is what readers feel)
POLL_S = 0.5  # how often a running projector looks for a request


class Requests:
    def __init__(self, client: redis.Redis, projection: str, lease: Lease, lease_ms: int, stop: threading.Event,
                 tick: Callable[[], None]) -> None:
        self.client, self.projection, self.lease, self.lease_ms = client, projection, lease, lease_ms
        self.stop, self.tick = stop, tick

    def resync_asked(self) -> bool:
        """True (once: the request is consumed) if an operator asked this projection to resync."""
        try:
            return bool(self.client.getdel(keys.resync_request(self.projection)))
        except redis.RedisError:
            return False

    def back_off(self, seconds: float) -> None:
        """Wait ``seconds`` before a retry, cut short by a stop or by a resync request."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.stop.wait(min(left, POLL_S)) or self.resync_asked():
                return

    def act(self, generation: int, checkpoint: str, live: bool) -> None:
        """Act on a resync (ResyncRequested), or, for the live projector, on a flip of ``generation``."""
        if self.resync_asked():
            raise ResyncRequested("an operator asked for a resync: state dropped, resubscribing from the checkpoint")
        if not live:
            return
        stored: dict[Any, Any] = self.client.hgetall(keys.flip(self.projection))  # type: ignore[assignment]
        flip = {text(k): text(v) for k, v in stored.items()}
        if flip.get("state") == "requested" and flip.get("from") == str(generation):
            self._pause_for_flip(flip, checkpoint)

    def _pause_for_flip(self, flip: dict[str, str], checkpoint: str) -> None:
        """Raises ResyncRequested once flipped (continue on the new generation); returns if aborted."""
        key = keys.flip(self.projection)
        self.client.hset(key, mapping={"state": "paused", "at": checkpoint})
        log.info("projection %s: paused at %s for a flip to generation %s", self.projection, checkpoint, flip.get("to"))
        deadline = renewed = time.monotonic()
        deadline += FLIP_PAUSE_S
        while not self.stop.wait(FLIP_POLL_S):
            self.tick()
            now = time.monotonic()
            state = text(self.client.hget(key, "state"))
            if state == "done":
                raise ResyncRequested(f"flipped to generation {flip.get('to')}: continuing there")
            if state != "paused" or now > deadline:
                if state == "paused":
                    self.client.hset(key, mapping={"state": "aborted", "reason": f"not flipped within {FLIP_PAUSE_S:g} s"})
                log.warning("projection %s: flip to %s aborted (%s); going on", self.projection, flip.get("to"),
                            state or "request withdrawn")
                return
            if now - renewed > self.lease_ms / 3000:
                renewed = now
                if not self.lease.renew():
                    raise Fenced(f"projection {self.projection!r}: lease lost during a flip")
