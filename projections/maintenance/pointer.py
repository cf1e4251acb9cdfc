"""The generation pointer as the maintenance engines read it (the projector reads its own in ``runner``)."""
from __future__ import annotations

import redis

from projections import keys
from projections.codec import text


def live_generation(client: redis.Redis, projection: str) -> int:
    """The live generation of ``projection`` (1 before any flip)."""
    return int(text(client.get(keys.generation_pointer(projection))) or 1)
