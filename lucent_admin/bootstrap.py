"""Wiring in one place: the Django side's Redis clients, event store and read side.

The job runner hands :func:`services` to the engines (they never fetch a client themselves), the projector
command hands the runners their settings; views and actions ask here. Each is built once per process from
settings and shared (redis-py's pool and
esdbclient's channel are thread-safe); settings tests that swap REDIS_URL or
EVENTSTORE_URI get a client of the new URL, since the caches are keyed by it.
Nothing else on the Django side builds a Redis client.
"""
from __future__ import annotations

import atexit
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings

from projections.connection import connect
from projections.eventstore import EventStore
from projections.projector.runner import RunnerConfig
from projections.published import SignificantMove
from projections.queries import Queries


@lru_cache(maxsize=16)
def _redis(url: str, timeout: float) -> redis.Redis:
    return connect(url, timeout, min(timeout, 2.0), health_check_interval=30)


def redis_client(url: str | None = None, timeout: float = 5.0) -> redis.Redis:
    """The shared client of ``url`` (default REDIS_URL) whose calls give up after ``timeout`` seconds."""
    return _redis(url or settings.REDIS_URL, timeout)


@lru_cache(maxsize=4)
def _store(uri: str) -> EventStore:
    store = EventStore(uri)
    atexit.register(store.close)  # close before interpreter teardown, not in esdbclient's __del__
    return store


def event_store() -> EventStore:
    """The shared client of EVENTSTORE_URI."""
    return _store(settings.EVENTSTORE_URI)


def runner_config(projection: str, exit_when_caught_up: bool = False) -> RunnerConfig:
    """The projector's settings for ``projection`` (the live projector's and a rebuild's)."""
    return RunnerConfig(
        projection=projection, redis_url=settings.REDIS_URL, eventstore_uri=settings.EVENTSTORE_URI,
        on_bad_event=str(settings.LUCENT_PROJECTIONS.get(projection, {}).get("on_bad_event", "park")),
        batch_size=int(settings.LUCENT_BATCH_SIZE), live_flush_ms=int(settings.LUCENT_LIVE_FLUSH_MS),
        reader_process_after=int(settings.LUCENT_READER_PROCESS_AFTER),
        state_cache_entries=int(settings.LUCENT_STATE_CACHE_ENTRIES), exit_when_caught_up=exit_when_caught_up,
        publish_events=bool(settings.LUCENT_PUBLISH_EVENTS),  # a rebuild's runner never publishes, whatever this says
        significant_move=SignificantMove(settings.LUCENT_PUBLISH_MOVE_PCT / 100, float(settings.LUCENT_PUBLISH_MOVE_USD)),
    )


@lru_cache(maxsize=4)
def _queries(url: str) -> Queries:
    return Queries(_redis(url, 5.0))


def queries() -> Queries:
    """The read side over REDIS_URL (views read through it, never raw Redis)."""
    return _queries(settings.REDIS_URL)


@dataclass(frozen=True)
class Services:
    """What an engine is handed: the shared clients, the projector's settings per projection, the URLs a child
    process connects with (Redis, the event store), and the engines' settings."""

    redis: redis.Redis
    store: EventStore
    runner_config: Callable[[str], RunnerConfig]
    urls: tuple[str, str]
    diff_budget: int  # differences a rebuild's or rollback's sample may show before it waits for an operator
    max_lag_s: float  # how far behind the live projector may be for a flip to wait on it
    partitions: int = 1  # how many partitions a user-keyed projection's new generation is split into
    rebuild_workers: int = 1  # how many job workers fold one rebuild's partitions at once


def services() -> Services:
    """The engines' services, built from settings (the composition root's one call per job run)."""
    return Services(redis_client(), event_store(), runner_config, (settings.REDIS_URL, settings.EVENTSTORE_URI),
                    int(settings.LUCENT_REBUILD_DIFF_BUDGET), float(settings.LUCENT_REBUILD_MAX_LAG_S),
                    int(settings.LUCENT_PARTITIONS), int(settings.LUCENT_REBUILD_WORKERS))
