"""Probes: /healthz (the process is up) and /readyz (its dependencies answer).

/readyz is open, so it says little: anonymous callers get each dependency's ok flag and the status code;
the errors (which name hosts, database users, URIs) are for staff and the log. One look at the
dependencies serves every probe for ``READY_CACHE_SECONDS``, so probing cannot load the services.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from lucent_admin.bootstrap import event_store, redis_client
from lucent_admin.operations.roles import VIEW_CONSOLE
from projections.errors import EventStoreUnavailable, redact
from projections.queries import Queries
from projections.redis_nodes import RedisNode

log = logging.getLogger(__name__)
READY_CACHE_SECONDS = 1.5


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_redis() -> str:
    """Redis answers; '' or, when it takes no writes (out of memory), why: the console still serves every page, so
    it stays ready, and says so. On a cluster every primary holding slots must answer (a partition on one that does
    not can be neither read nor written; a primary failed over holds none). The servers listed are kept for the look
    to report one by one (:data:`_seen_nodes`)."""
    client = redis_client(timeout=1.0)
    client.ping()
    queries = Queries(client)
    _seen_nodes[:] = queries.redis_nodes()
    down = [n.address for n in _seen_nodes
            if n.role == "primary" and n.slots and (n.link == "failed" or n.used_bytes is None)]
    if down:
        raise redis.ConnectionError(f"primary {', '.join(down)} does not answer: its partitions wait for a failover")
    return queries.write_refusal()


_seen_nodes: list[RedisNode] = []  # the Redis servers the running look listed (written under _looking)


def _check_eventstore() -> None:
    event_store().ping(timeout=2.0)


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


CHECKS: dict[str, Callable[[], object]] = {
    "redis": _check_redis,
    "eventstore": _check_eventstore,
    "database": _check_database,
}


def _run(name: str, check: Callable[[], object]) -> dict[str, object]:
    try:
        warning = check()
    except (redis.RedisError, EventStoreUnavailable, Exception) as exc:  # noqa: BLE001 - a probe reports, never raises
        error = redact(f"{type(exc).__name__}: {exc}")[:300]
        log.warning("readyz: %s is not ready: %s", name, error)
        return {"ok": False, "error": error}
    if isinstance(warning, str) and warning:
        log.warning("readyz: %s: %s", name, warning)
        return {"ok": True, "writable": False, "error": warning}  # the flag for everyone, the words for staff
    return {"ok": True}


_looks: dict[tuple[str, ...], tuple[float, dict[str, dict[str, object]]]] = {}
_looking = threading.Lock()


def _look() -> dict[str, dict[str, object]]:
    """Every check's result, from a look younger than READY_CACHE_SECONDS at the dependencies configured now."""
    key = (settings.REDIS_URL, settings.EVENTSTORE_URI, str(connection.settings_dict.get("NAME")))
    with _looking:  # concurrent probes wait for one look rather than each taking its own
        taken, results = _looks.get(key, (float("-inf"), {}))
        if time.monotonic() - taken >= READY_CACHE_SECONDS:
            _seen_nodes.clear()
            results = {name: _run(name, check) for name, check in CHECKS.items()}
            if _seen_nodes:  # each server: its role, and whether it answers (a replica down leaves the console ready)
                results["redis"]["nodes"] = {n.address: {"role": n.role, "ok": n.used_bytes is not None and
                                                         n.link != "failed"} for n in _seen_nodes}
            _looks.clear()
            _looks[key] = (time.monotonic(), results)
        return results


@login_not_required
@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Each dependency reachable or not, HTTP 503 when any is not; why not only for the console's viewers."""
    results = _look()
    if not request.user.has_perm(VIEW_CONSOLE):
        results = {name: {k: v for k, v in result.items() if k not in ("error", "nodes")} for name, result in results.items()}
    ready = all(r["ok"] for r in results.values())
    return JsonResponse({"ready": ready, "checks": results}, status=200 if ready else 503)
