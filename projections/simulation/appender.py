"""Appending a simulated market to the event store: in bulk, or live at a rate.

esdbclient appends to one stream per call, so bulk appends group the events
of a window (``window`` consecutive events) by stream, keep each stream's
order, and send each group as one append of at most ``batch_size`` events.
Order across streams inside a window is not kept; read models use event time.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

from projections.errors import EventStoreUnavailable
from projections.eventstore import EventStore, ProposedEvent
from projections.simulation.market import Market

__all__ = ["append_events", "plan_appends", "run_live"]

log = logging.getLogger(__name__)

OnAppended = Callable[[int], None]  # called with the number of events appended so far
RETRY_SECONDS = 1.0


def plan_appends(
    items: Iterable[tuple[str, ProposedEvent]], batch_size: int = 100, window: int | None = None
) -> Iterator[tuple[str, list[ProposedEvent]]]:
    """Group ``(stream, event)`` items into ``(stream, events)`` appends, per-stream order kept."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    size = window or batch_size * 10
    source = iter(items)
    while chunk := list(itertools.islice(source, size)):
        groups: dict[str, list[ProposedEvent]] = {}
        for stream, event in chunk:
            groups.setdefault(stream, []).append(event)
        for stream, events in groups.items():
            for start in range(0, len(events), batch_size):
                yield stream, events[start : start + batch_size]


def append_events(
    store: EventStore,
    items: Iterable[tuple[str, ProposedEvent]],
    batch_size: int = 100,
    on_appended: OnAppended | None = None,
    window: int | None = None,
) -> int:
    """Append every item, batched per stream; return how many events were appended."""
    appended = 0
    for stream, events in plan_appends(items, batch_size, window):
        store.append(stream, events)
        appended += len(events)
        if on_appended is not None:
            on_appended(appended)
    return appended


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _append_until_done(store: EventStore, stream: str, events: list[ProposedEvent], stop: threading.Event) -> bool:
    """Append, retrying while the store is away; False if stopped first."""
    while True:
        try:
            store.append(stream, events)
            return True
        except EventStoreUnavailable as exc:
            log.warning("simulator: %s; retrying in %.0fs", exc, RETRY_SECONDS)
            if stop.wait(RETRY_SECONDS):
                return False


def run_live(
    store: EventStore,
    market: Market,
    rate: float,
    stop: threading.Event,
    batch_size: int = 100,
    limit: int | None = None,
    on_appended: OnAppended | None = None,
) -> int:
    """Append ``rate`` events a second, stamped with the wall clock, until ``stop`` is set.

    Stops after ``limit`` events if given. Paced by the monotonic clock; between
    events it waits on ``stop``, so setting it ends the run at once. If the store
    is slower than ``rate``, the backlog is capped at one second and dropped.
    Returns the number of events appended.
    """
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    started, sent = time.monotonic(), 0
    while not stop.is_set() and (limit is None or sent < limit):
        elapsed = time.monotonic() - started
        due = int(elapsed * rate) + 1 - sent  # event k is due at started + k / rate
        if due <= 0:
            stop.wait(sent / rate - elapsed)
            continue
        if due > rate + 1:  # too far behind: drop the backlog rather than burst
            started = time.monotonic() - sent / rate
            due = 1
        take = min(due, batch_size * 10) if limit is None else min(due, batch_size * 10, limit - sent)
        for stream, events in plan_appends(market.events(take, clock=_wall_clock), batch_size):
            if not _append_until_done(store, stream, events, stop):
                return sent
            sent += len(events)
            if on_appended is not None:
                on_appended(sent)
    return sent
