"""What operators and jobs ask of a running projector between two batches: a resync, a flip.

* **Resync** (``keys.resync_request``, set by ``projections.actions.request_resync``):
  consumed once; the runner drops its state and resubscribes from its checkpoint.
* **The pointer moved** without a pause this projector saw (it was not beating, or a flip's job stopped between the
  pointer and this partition's copy of it): looked at with the requests, it resubscribes on the live generation.
* **Flip** (``keys.flip``, asked by ``projections/maintenance/generations.py``): the live
  projector stops applying at its checkpoint, says where (state ``paused``, ``at``), and waits,
  renewing its lease, until the job flips the pointer (then it resubscribes on the new
  generation) or aborts — or ``FLIP_PAUSE_S`` passes, when it aborts the flip itself and goes on.
  Each change of the flip's state is a compare-and-set in one script (requested → paused, paused →
  aborted), so a projector that read the flip before a pause of its own never writes over what the
  job wrote meanwhile (a flip done stays done). A flip it never saw (paused past its heartbeat, the
  job flipped without it) is caught by its commit instead: see ``writer.Committer`` (``live``).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from projections import keys
from projections.codec import text
from projections.errors import Fenced, ResyncRequested
from projections.projector.lease import Lease

log = logging.getLogger(__name__)

FLIP_PAUSE_S = 5.0  # the longest the live projector waits for a flip it paused for
FLIP_POLL_S = 0.002  # how often it looks, paused (the pause is what readers feel)
POLL_S = 0.5  # how often a running projector looks for a request

_PAUSE = """
-- KEYS: flip; ARGV: the generation the projector writes, its checkpoint. Paused only if asked for that generation.
if redis.call('HGET', KEYS[1], 'state') == 'requested' and redis.call('HGET', KEYS[1], 'from') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'state', 'paused', 'at', ARGV[2])
  return redis.call('HGET', KEYS[1], 'to') or ''
end
return false
"""
ABORT = """
-- KEYS: flip; ARGV: the states that may be aborted, the reason. A flip done is never undone here.
local state = redis.call('HGET', KEYS[1], 'state') or ''
for i = 1, #ARGV - 1 do
  if state == ARGV[i] then
    redis.call('HSET', KEYS[1], 'state', 'aborted', 'reason', ARGV[#ARGV])
    return 1
  end
end
return 0
"""


class Requests:
    def __init__(self, client: redis.Redis, projection: str, lease: Lease, lease_ms: int, stop: threading.Event,
                 tick: Callable[[], None], pointer: str = "") -> None:
        """``projection``: the partition's tag, where its requests are; ``pointer``: the projection's generation
        pointer (default: the tag's own)."""
        self.client, self.projection, self.lease, self.lease_ms = client, projection, lease, lease_ms
        self.pointer = pointer or keys.generation_pointer(projection)
        self.stop, self.tick = stop, tick
        self._pause = client.register_script(_PAUSE)
        self._abort = client.register_script(ABORT)

    def resync_asked(self) -> bool:
        """True (once: the request is consumed) if an operator asked this projection to resync."""
        try:
            return bool(self.client.getdel(keys.resync_request(self.projection)))
        except redis.RedisError:
            return False

    def back_off(self, seconds: float) -> None:
        """Wait ``seconds`` before a retry, cut short by a stop or by a resync request; the loop stays alive (its
        heartbeat beats: a projector waiting to retry is stalled, not dead)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.tick()
            if self.stop.wait(min(left, POLL_S)) or self.resync_asked():
                return

    def act(self, generation: int, checkpoint: str, live: bool) -> None:
        """Act on a resync (ResyncRequested), or, for the live projector, on a flip of ``generation``."""
        if self.resync_asked():
            raise ResyncRequested("an operator asked for a resync: state dropped, resubscribing from the checkpoint")
        if not live:
            return
        to = self._pause(keys=[keys.flip(self.projection)], args=[str(generation), checkpoint])
        if to is not None:
            self._pause_for_flip(text(to), checkpoint)
        # The pointer itself, looked at as often as the requests: a flip whose job stopped after moving the pointer
        # and before writing this partition's copy (a cluster's stepwise flip) is followed here, not written past.
        live_now = int(text(self.client.get(self.pointer)) or 1)
        if live_now != generation:
            raise ResyncRequested(f"the pointer names generation {live_now}, not {generation}: continuing there")

    def _pause_for_flip(self, to: str, checkpoint: str) -> None:
        """Paused (the flip's state says so): raises ResyncRequested once flipped (continue on the new
        generation); returns if aborted."""
        key = keys.flip(self.projection)
        log.info("projection %s: paused at %s for a flip to generation %s", self.projection, checkpoint, to)
        deadline = renewed = time.monotonic()
        deadline += FLIP_PAUSE_S
        while not self.stop.wait(FLIP_POLL_S):
            self.tick()
            now = time.monotonic()
            state = text(self.client.hget(key, "state"))
            if state == "paused" and now > deadline:  # unless the job flipped meanwhile
                self._abort(keys=[key], args=["paused", f"not flipped within {FLIP_PAUSE_S:g} s"])
                state = text(self.client.hget(key, "state"))
            if state == "done":
                raise ResyncRequested(f"flipped to generation {to}: continuing there")
            if state != "paused":
                log.warning("projection %s: flip to %s aborted (%s); going on", self.projection, to,
                            state or "request withdrawn")
                return
            if now - renewed > self.lease_ms / 3000:
                renewed = now
                if not self.lease.renew():
                    raise Fenced(f"projection {self.projection!r}: lease lost during a flip")
