"""The read side's common ground: identifier checks, reply helpers, ranked rows, and the base every subject's
queries share (one Redis client, the live generation resolved through its pointer)."""
from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from projections import infrastructure, inventory, keys
from projections.codec import text
from projections.errors import InvalidIdentifier
from projections.events import is_identifier, is_pair
from projections.keys import KeySpace
from projections.readmodels import PROJECTIONS

GENERATION_CACHE_S = 0.05  # short: after a flip, readers move to the new generation within 50 ms


def check_user(user_id: object) -> str:
    if not is_identifier(user_id):
        raise InvalidIdentifier("user id", user_id, "1-64 chars of [A-Za-z0-9_.-]")
    return str(user_id)


def check_pair(pair: object) -> str:
    if not is_pair(pair):
        raise InvalidIdentifier("pair", pair, "BASE-QUOTE, e.g. BTC-USD")
    return str(pair)


def check_projection(name: object) -> str:
    if name not in PROJECTIONS:
        raise InvalidIdentifier("projection", name, " | ".join(PROJECTIONS))
    return str(name)


def _f(value: Any, default: float = 0.0) -> float:
    return default if value in (None, "", b"") else float(text(value))


def _i(value: Any, default: int = 0) -> int:
    return default if value in (None, "", b"") else int(text(value))


def _tm(fields: Mapping[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in fields.items()}


@dataclass(frozen=True)
class Ranked:
    """A member of a ranking: its id, its score and its 1-based rank."""

    id: str
    score: float
    rank: int


def percentile(values: list[int], pct: float) -> int | None:
    """Nearest-rank percentile (an observed value, never interpolated); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


def _rank(zero_based: Any) -> int | None:
    return None if zero_based is None else int(zero_based) + 1


def _ranked(rows: list[tuple[Any, float]], start: int = 1) -> list[Ranked]:
    return [Ranked(text(m), float(s), start + i) for i, (m, s) in enumerate(rows)]


class QueriesBase:
    """Queries over one Redis client (thread-safe; cheap to keep for the process)."""

    def __init__(self, client: redis.Redis) -> None:
        # redis-py types every reply as "Awaitable | value" (sync and async share stubs);
        # this is a sync client, so replies are plain values.
        self.client: Any = client
        self._generations: dict[str, tuple[float, int]] = {}
        self._memory: infrastructure.MemoryEstimate | None = None
        self._scans: dict[str, tuple[float, dict[int, inventory.Counted], inventory.Probe]] = {}

    def ks(self, projection: str) -> KeySpace:
        """The live generation's key space (pointer read at most once a second)."""
        cached = self._generations.get(projection)
        now = time.monotonic()
        if cached is None or now - cached[0] > GENERATION_CACHE_S:
            cached = (now, _i(self.client.get(keys.generation_pointer(projection)), 1))
            self._generations[projection] = cached
        return KeySpace(projection, cached[1])
