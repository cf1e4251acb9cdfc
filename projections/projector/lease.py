"""The fencing lease of a projection: at most one projector applies its events.

The lease is a Redis key holding the projector's token with a TTL. The commit
script refuses a batch unless the lease still holds the committer's token, so
a projector that lost its lease (paused too long, network split) can never
interleave its writes with the one that took over.
"""
from __future__ import annotations

import os
import socket
import threading
import time
import uuid

import redis

from projections import keys
from projections.errors import Fenced

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def new_token() -> str:
    """A readable, unique projector identity: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    def __init__(self, client: redis.Redis, projection: str, token: str, ttl_ms: int, key: str | None = None) -> None:
        """The lease of ``projection`` (``key``: of something else, e.g. a job, named ``projection`` in messages)."""
        self.client = client
        self.projection = projection
        self.token = token
        self.ttl_ms = ttl_ms
        self.key = key or keys.lease(projection)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return None if value is None else value.decode() if isinstance(value, bytes) else str(value)

    def acquire(self, wait_ms: int, stop: threading.Event) -> bool:
        """Take the lease, waiting up to ``wait_ms`` for a dead holder's lease to expire.

        Returns False if ``stop`` was set meanwhile; raises Fenced if a live
        projector keeps renewing the lease for that long.
        """
        deadline = time.monotonic() + wait_ms / 1000
        while True:
            if self.client.set(self.key, self.token, nx=True, px=self.ttl_ms) or self.holder() == self.token:
                return True
            if stop.is_set():
                return False
            if time.monotonic() >= deadline:
                raise Fenced(
                    f"projection {self.projection!r} is already run by projector {self.holder()!r} "
                    f"(lease {self.key}); this projector stops — run one projector per projection"
                )
            stop.wait(min(0.2, self.ttl_ms / 4000))

    def renew(self) -> bool:
        """Extend the lease; False if it is no longer ours."""
        return bool(self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.token])
