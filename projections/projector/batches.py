"""Cutting the subscription's items into batches: catch-up (read directly) and live (from the feed).

Both return ``(events, checkpoint marker, caught-up seen, stream ended)``. A
checkpoint at commit position P says every event before P was considered (P
itself may come next), so the marker is P - 1: the checkpoint may move there
even when no event of the projection's types came.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from projections.errors import EventStoreUnavailable
from projections.events import Recorded
from projections.eventstore import Marker
from projections.projector.feed import EMPTY, END, Feed

Collected = tuple[list[Any], int, bool, bool]


def collect_direct(stream: Iterator[Recorded | Marker], size: int, target: int) -> Collected:
    """Up to ``size`` events read from ``stream`` itself; a batch also ends at position ``target``."""
    batch: list[Recorded] = []
    marker = 0
    for item in stream:
        if isinstance(item, Recorded):
            batch.append(item)
            if len(batch) >= size or item.envelope.position >= target:
                return batch, marker, False, False
        elif item.is_caught_up:
            return batch, marker, True, False
        else:
            marker = max(marker, item.commit_position - 1)
            if marker >= target:
                return batch, marker, False, False
    return batch, marker, False, True


def collect_live(feed: Feed, size: int, quiet: float, oldest: float | None) -> Collected:
    """Up to ``size`` events from the reader thread's feed.

    Waits at most 0.25 s for the first item (so the loop keeps renewing its
    lease and noticing the stop flag). Then it takes what is there; when the
    feed runs dry, ``quiet`` seconds without an item close the batch, and
    (live) a batch never stays open longer than ``oldest`` seconds in all, for
    freshness under a steady trickle that is never quiet.
    """
    batch: list[Any] = []
    marker = 0
    item = feed.get(0.25)
    started = time.monotonic()
    while item is not EMPTY:
        if item is END:
            return batch, marker, False, True
        if isinstance(item, BaseException):
            raise EventStoreUnavailable(f"subscription to $all failed: {item}") from item
        if item.is_caught_up:
            return batch, marker, True, False
        if item.is_checkpoint:
            marker = max(marker, int(item.commit_position or 0) - 1)
        else:
            batch.append(item)
        if len(batch) >= size:
            break
        if oldest is not None and time.monotonic() - started > oldest:
            break
        item = feed.get(0)
        if item is EMPTY:
            item = feed.get(quiet)
    return batch, marker, False, False
