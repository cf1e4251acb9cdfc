"""Lag history: periodic samples of each projection's lag, for the console's sparklines.

Celery beat calls :func:`record_samples` every few seconds; the overview reads
:func:`history`. Samples older than the window are trimmed on each write. This
is observability, not a read model: it is written outside the projector's
transaction on purpose (a lost sample costs a point on a chart).
"""
from __future__ import annotations

from collections.abc import Iterable

import redis

from projections import keys

WINDOW_MS = 3600_000


def record_samples(client: redis.Redis, projections: Iterable[str], now_ms: int) -> dict[str, float]:
    """Append the current lag (seconds) of each projection at ``now_ms``; return what was recorded.

    A projection without a live heartbeat records no sample: a dead projector has
    no lag figure, and the overview says it is dead instead.
    """
    names = list(projections)
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hget(keys.status(name), "lagSeconds")
        pipe.exists(keys.heartbeat(name))
    replies = pipe.execute()
    recorded: dict[str, float] = {}
    pipe = client.pipeline(transaction=False)
    for i, name in enumerate(names):
        lag, alive = replies[2 * i], replies[2 * i + 1]
        if lag is None or not alive:
            continue
        recorded[name] = float(lag)
        pipe.zadd(keys.lag_history(name), {f"{now_ms}:{float(lag):.3f}": now_ms})
        pipe.zremrangebyscore(keys.lag_history(name), "-inf", now_ms - WINDOW_MS)
    pipe.execute()
    return recorded


def history(client: redis.Redis, projection: str, now_ms: int) -> list[tuple[int, float]]:
    """(at ms, lag seconds) samples of the last hour, oldest first."""
    members: list[bytes | str] = client.zrangebyscore(  # type: ignore[assignment]  # sync client
        keys.lag_history(projection), now_ms - WINDOW_MS, "+inf")
    samples = []
    for member in members:
        at, _, lag = (member.decode() if isinstance(member, bytes) else member).partition(":")
        samples.append((int(at), float(lag)))
    return samples


def sparkline(samples: list[tuple[int, float]], now_ms: int, width: int = 240, height: int = 40) -> tuple[str, float]:
    """SVG polyline points of ``samples`` over the last hour, and the max lag shown."""
    if not samples:
        return "", 0.0
    top = max(lag for _, lag in samples) or 1.0
    start = now_ms - WINDOW_MS
    points = [
        f"{(at - start) * width / WINDOW_MS:.1f},{height - 2 - (lag / top) * (height - 4):.1f}" for at, lag in samples
    ]
    return " ".join(points), max(lag for _, lag in samples)
