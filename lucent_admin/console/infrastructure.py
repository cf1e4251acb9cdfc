"""What the Infrastructure page's widgets show: Redis memory, operation latency, read-model update rates and
the event store's head and append rate, now and over the last hour.

"Now" comes from the read side at render time (latencies are measured from this web process then); the
hour comes from the samples beat records (``projections/infrastructure.py``). A chart is the ``data-trend``
JSON that ``static/js/charts.js`` draws with uPlot: x in epoch seconds, raw values (bytes, seconds, events
a second) and the ``kind`` that formats them, the same number filter the page's figures use.
"""
from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings

from lucent_admin.bootstrap import queries as q
from projections import infrastructure as infra
from projections.keys import INFRA_HISTORY_MS
from projections.readmodels import PROJECTIONS
from projections.status import ProjectionState

Params = Any


def _chart(series: dict[str, str], kind: str, now_ms: int) -> str:
    """The data-trend JSON of ``series`` (series name -> label) over the last hour; '' when it has no sample."""
    history = q().infra_history(list(series), now_ms)
    xs = sorted({at for points in history.values() for at, _ in points})
    if not xs:
        return ""
    values = {name: dict(points) for name, points in history.items()}
    return json.dumps({
        "from": (now_ms - INFRA_HISTORY_MS) // 1000, "to": now_ms // 1000, "kind": kind, "x": [at // 1000 for at in xs],
        "series": {label: [values[name].get(at) for at in xs] for name, label in series.items()},
    })


def _every() -> dict[str, Any]:
    return {"every": settings.LUCENT_INFRA_SAMPLE_SECONDS}


def memory(params: Params) -> dict[str, Any]:
    now = int(time.time() * 1000)
    used = q().redis_memory()
    estimate = q().projection_memory()
    rows = [{"p": p, "share": p.bytes / used.used_bytes * 100 if used.used_bytes else None}
            for p in [*estimate.projections.values(), estimate.other]]
    series = {infra.REDIS_USED: "used (all of Redis)", **{infra.memory_series(n): n for n in PROJECTIONS}}
    return {"used": used, "estimate": estimate, "rows": rows, "chart": _chart(series, "bytes", now),
            "fragmentation_chart": _chart({infra.REDIS_FRAGMENTATION: "fragmentation"}, "ratio", now), **_every()}


def nodes(params: Params) -> dict[str, Any]:
    found = q().redis_nodes()
    return {"nodes": found, "cluster": any(n.slots for n in found)}


def latency(params: Params) -> dict[str, Any]:
    now = int(time.time() * 1000)
    series = {infra.PING_P50: "PING p50", infra.PING_P99: "PING p99", infra.QUERY_P50: "query p50",
              infra.QUERY_P99: "query p99"}
    return {"ping": q().redis_latency(), "query": q().query_latency(), "chart": _chart(series, "millis", now), **_every()}


def rates(params: Params) -> dict[str, Any]:
    now = int(time.time() * 1000)
    rows = [{"s": s, "dead": s.effective_state in (ProjectionState.DEAD, ProjectionState.NOT_STARTED)}
            for s in q().projection_status()]
    return {"rows": rows, "chart": _chart({infra.rate_series(n): n for n in PROJECTIONS}, "rate", now), **_every()}


def store(params: Params) -> dict[str, Any]:
    now = int(time.time() * 1000)
    history = q().infra_history([infra.STORE_HEAD, infra.APPEND_RATE], now)
    head = history[infra.STORE_HEAD][-1] if history[infra.STORE_HEAD] else None
    rate = history[infra.APPEND_RATE][-1] if history[infra.APPEND_RATE] else None
    return {"head": head and {"position": int(head[1]), "at_ms": head[0]}, "rate": rate and rate[1],
            "chart": _chart({infra.APPEND_RATE: "appends"}, "rate", now), **_every()}
