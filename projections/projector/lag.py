"""Lag history: periodic samples of each projection's lag, for the console's chart.

Celery beat calls :func:`record_samples` every few seconds; the overview reads
them through ``Queries.lag_history``. Samples older than ``keys.LAG_HISTORY_MS``
are trimmed on each write. This is observability, not a read model: it is
written outside the projector's transaction on purpose (a lost sample costs a
point on a chart).
"""
from __future__ import annotations

from collections.abc import Iterable

import redis

from projections import keys


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
        pipe.zremrangebyscore(keys.lag_history(name), "-inf", now_ms - keys.LAG_HISTORY_MS)
    pipe.execute()
    return recorded

