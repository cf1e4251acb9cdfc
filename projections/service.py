"""Running several projections in one process, and the operator functions the CLI calls.

Decision: one thread per projection, each with its own subscription,
checkpoint and lease. Projections stay independent (one can be stopped by a
bad event, rebuilt or moved to another process without touching the others),
and a thread spends its time waiting on gRPC and Redis, where the GIL is
released. A crashed thread does not take the others down; the call returns
when all have returned, and raises the first fatal error, if any.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import redis

from projections import keys
from projections.errors import NotStoppedOn
from projections.keys import PROJECTIONS
from projections.queries import Queries
from projections.parking import request_retry
from projections.runner import Notifier, Runner, RunnerConfig

log = logging.getLogger(__name__)


def build_runners(
    names: Sequence[str],
    base: RunnerConfig,
    policies: Mapping[str, Mapping[str, Any]],
    notifier_for: Callable[[str], Notifier] | None = None,
) -> list[Runner]:
    """One runner per projection name (all when ``names`` is empty), from plain settings values."""
    chosen = list(names) or list(PROJECTIONS)
    runners = []
    for name in chosen:
        policy = str(policies.get(name, {}).get("on_bad_event", "park"))
        config = replace(base, projection=name, on_bad_event=policy)
        runners.append(Runner(config, notifier_for(name) if notifier_for else None))
    return runners


def run_all(runners: Sequence[Runner], stop: threading.Event) -> None:
    """Run ``runners`` in threads until they return or ``stop`` is set; re-raise the first failure."""
    failures: list[BaseException] = []

    def target(runner: Runner) -> None:
        try:
            runner.run()
        except BaseException as exc:  # noqa: BLE001 - reported below, after the others stopped
            failures.append(exc)

    threads = [threading.Thread(target=target, args=(r,), name=f"projector-{r.config.projection}") for r in runners]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        if stop.wait(0.2):
            for runner in runners:
                runner.stop()
        for thread in threads:
            thread.join(timeout=0.01)
    if failures:
        raise failures[0]


def status_rows(client: redis.Redis) -> list[dict[str, Any]]:
    """Every projection's status as plain dicts (for ``manage.py projections status``)."""
    return [vars(s) for s in Queries(client).projection_status()]


def parked_rows(client: redis.Redis, projection: str | None) -> list[dict[str, Any]]:
    names = [projection] if projection else list(PROJECTIONS)
    queries = Queries(client)
    return [{"projection": name, **row} for name in names for row in queries.parked_events(name)]


def retry_parked(client: redis.Redis, projection: str, event_id: str) -> bool:
    """Ask the running projector of ``projection`` to retry parked event ``event_id``."""
    return request_retry(client, projection, event_id)


def park_bad_event(client: redis.Redis, projection: str, event_id: str) -> None:
    """Decide to park the bad event a ``stop``-policy projection stopped on; the projector resumes past it.

    Raises NotStoppedOn unless the projection's status says it is stopped on ``event_id``.
    """
    rows = Queries(client).projection_status(projection)
    status = rows[0] if rows else None
    stopped_on = status.last_error_event.split(" ", 1)[0] if status and status.state == "failed" else ""
    if stopped_on != event_id:
        now = f"it is stopped on {stopped_on}" if stopped_on else f"it is {status.state if status else 'not running'}"
        raise NotStoppedOn(f"projection {projection!r} is not stopped on event {event_id!r} ({now}); nothing to park")
    client.sadd(keys.park_requests(projection), event_id)
