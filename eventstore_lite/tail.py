"""The newest committed events of ``$all``, kept in memory for live subscriptions.

A live subscription wakes after every commit and needs just the events that
commit wrote; the writer hands them over here, so the subscription need not query
SQLite for them.

Contract:
- :meth:`Tail.extend` takes rows of one *committed* transaction, in position order,
  all beyond those already held (the writer calls it before waking anyone);
- the tail holds every committed event with a position greater than :attr:`floor`
  (at most ``max_rows`` rows and about ``max_bytes`` of data and metadata; the
  oldest go first, raising the floor);
- :meth:`Tail.after` returns the held rows after a position, or None when the
  tail no longer covers it (the caller then reads SQLite).
Not thread-safe by itself: :class:`~eventstore_lite.live.Live` guards it.
"""

from __future__ import annotations

from collections import deque
from typing import Iterable

from eventstore_lite.codec import DATA, METADATA, POSITION, Row

MAX_ROWS = 4096
MAX_BYTES = 8 * 1024 * 1024


class Tail:
    """A bounded, position-ordered window of the newest committed rows."""

    def __init__(self, floor: int, max_rows: int = MAX_ROWS, max_bytes: int = MAX_BYTES) -> None:
        self.floor = floor  # every committed event after it is held
        self._rows: deque[Row] = deque()
        self._bytes = 0
        self._max_rows = max_rows
        self._max_bytes = max_bytes

    def extend(self, rows: Iterable[Row]) -> None:
        """Add the rows of a commit (newer than all held ones); drop the oldest beyond the bounds."""
        held = self._rows
        for row in rows:
            held.append(row)
            self._bytes += len(row[DATA]) + len(row[METADATA])
        while held and (len(held) > self._max_rows or self._bytes > self._max_bytes):
            oldest = held.popleft()
            self._bytes -= len(oldest[DATA]) + len(oldest[METADATA])
            self.floor = oldest[POSITION]

    def after(self, position: int, limit: int) -> list[Row] | None:
        """Up to ``limit`` held rows with positions after ``position``; None if not covered."""
        if position < self.floor:
            return None
        held = self._rows
        start = len(held)
        while start > 0 and held[start - 1][POSITION] > position:
            start -= 1
        if start == len(held):
            return []
        if start == 0 and limit >= len(held):
            return list(held)
        return [held[i] for i in range(start, min(len(held), start + limit))]
