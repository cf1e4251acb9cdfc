"""Probes: /healthz (the process is up) and /readyz (its dependencies answer)."""
from __future__ import annotations

from collections.abc import Callable

import redis
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from lucent_admin.bootstrap import event_store, redis_client
from projections.errors import EventStoreUnavailable


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_redis() -> None:
    redis_client(timeout=1.0).ping()


def _check_eventstore() -> None:
    event_store().ping(timeout=2.0)


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


CHECKS: dict[str, Callable[[], None]] = {
    "redis": _check_redis,
    "eventstore": _check_eventstore,
    "database": _check_database,
}


def _run(check: Callable[[], None]) -> dict[str, object]:
    try:
        check()
    except (redis.RedisError, EventStoreUnavailable, Exception) as exc:  # noqa: BLE001 - a probe reports, never raises
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True}


@login_not_required
@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Each dependency reachable or not; HTTP 503 when any is not."""
    results = {name: _run(check) for name, check in CHECKS.items()}
    ready = all(r["ok"] for r in results.values())
    return JsonResponse({"ready": ready, "checks": results}, status=200 if ready else 503)
