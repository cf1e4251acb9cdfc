"""Start-up checks of the long-running processes: a bad setting stops start-up in one line."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import NoReturn, TypeVar

import redis
from django.conf import settings

from lucent_admin.embedded import wait_for_redis
from projections.errors import ConfigurationError, EventStoreUnavailable
from projections.eventstore import EventStore

T = TypeVar("T")


def fail(error: ConfigurationError) -> NoReturn:
    """Print the one-line configuration error and exit with status 2."""
    print(f"lucent: configuration error: {error}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def guarded(load: Callable[[], T]) -> T:
    """Run ``load``; a ConfigurationError, or Redis refusing connections, becomes a one-line exit."""
    try:
        return load()
    except ConfigurationError as error:
        fail(error)
    except redis.ConnectionError as exc:
        fail(_unreachable_redis(exc))


def _unreachable_redis(exc: Exception) -> ConfigurationError:
    return ConfigurationError(
        "REDIS_URL",
        f"cannot reach {settings.REDIS_URL} ({exc}); start Redis there or point REDIS_URL at a running one",
    )


def check_redis() -> None:
    """Stop start-up unless REDIS_URL answers within LUCENT_STARTUP_WAIT seconds."""
    try:
        wait_for_redis(settings.REDIS_URL, timeout=settings.LUCENT_STARTUP_WAIT)
    except redis.RedisError as exc:
        fail(_unreachable_redis(exc))


def check_eventstore() -> None:
    """Stop start-up unless EVENTSTORE_URI answers within LUCENT_STARTUP_WAIT seconds."""
    deadline = time.monotonic() + settings.LUCENT_STARTUP_WAIT
    store = EventStore(settings.EVENTSTORE_URI, timeout=2.0)
    try:
        while True:
            try:
                store.ping(timeout=2.0)
                return
            except EventStoreUnavailable as exc:
                if time.monotonic() >= deadline:
                    fail(ConfigurationError(
                        "EVENTSTORE_URI",
                        f"cannot reach {settings.EVENTSTORE_URI} ({exc.__cause__ or exc}); "
                        "start the event store or point EVENTSTORE_URI at a running one",
                    ))
                time.sleep(0.2)
    finally:
        store.close()
