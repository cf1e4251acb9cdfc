"""Hand-off of subscription items from the reader thread to the runner's loop.

One producer, one consumer: a deque (append/popleft are atomic) plus an event
for wake-ups is several times cheaper per item than ``queue.Queue``, which
matters at catch-up rates. The producer blocks while ``limit`` items are
pending, so memory stays bounded however far behind the projection is.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

EMPTY = object()
END = object()


class Feed:
    def __init__(self, limit: int) -> None:
        self.items: deque[Any] = deque()
        self.ready = threading.Event()
        self.limit = limit
        self.closed = False

    def put(self, item: Any) -> None:
        while len(self.items) >= self.limit and not self.closed:
            time.sleep(0.0005)
        self.items.append(item)
        self.ready.set()

    def offer(self, item: Any) -> bool:
        """Add ``item`` unless ``limit`` items are pending (False: it was not added)."""
        if len(self.items) >= self.limit:
            return False
        self.items.append(item)
        self.ready.set()
        return True

    def push(self, item: Any) -> None:
        """Add ``item`` even past ``limit`` (an error that must reach the consumer after what is pending)."""
        self.items.append(item)
        self.ready.set()

    def get(self, timeout: float) -> Any:
        """The next item, or EMPTY after ``timeout`` seconds without one."""
        try:
            return self.items.popleft()
        except IndexError:
            pass
        self.ready.clear()
        try:  # re-check: an item may have landed between the miss and the clear
            return self.items.popleft()
        except IndexError:
            pass
        if timeout <= 0 or not self.ready.wait(timeout):
            return EMPTY
        try:
            return self.items.popleft()
        except IndexError:
            return EMPTY

    def reset(self) -> None:
        """Drop every pending item (the consumer starts again from a position of its own)."""
        self.items.clear()

    def close(self) -> None:
        """Release a producer blocked on a full feed (the items are dropped)."""
        self.closed = True
        self.items.clear()


def pump(source: Iterable[Any], feed: Feed) -> None:
    """Reader thread body: every item, then END; an exception is handed over as an item."""
    try:
        for item in source:
            if feed.closed:
                return
            feed.put(item)
        feed.put(END)
    except BaseException as exc:  # noqa: BLE001 - handed to the loop, which decides
        feed.put(exc)
