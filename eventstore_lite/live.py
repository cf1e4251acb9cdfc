"""The head of ``$all`` and its live readers: publication, waiting, and delivery first.

Contract:
- :meth:`Live.publish` is called by the writer after each commit, with every row
  that commit wrote; it advances the head, keeps the rows (see
  :mod:`eventstore_lite.tail`) and wakes every thread blocked in
  :meth:`Live.wait_beyond` at once;
- :meth:`Live.await_delivery` lets the writer hold back its acknowledgements until
  the live readers just woken have come back to :meth:`Live.wait_beyond` having
  consumed the new head (for a subscription: sent the new events), for at most
  ``timeout`` seconds.  Live subscriptions are thus served before the appenders'
  threads compete with them for the interpreter.  A reader that misses the
  deadline is not waited for during a back-off that doubles with each miss in a
  row (from twice ``timeout`` up to :data:`SLOW_FOR` seconds) and is forgotten
  once it is back in time, so a passing hiccup costs it little and a stalled
  client costs writers at most one ``timeout`` per :data:`SLOW_FOR`.  Durability
  is untouched: nothing is published before it is committed.
Thread-safe; readers are told apart by a token they pass (a subscription's own
object), by default their thread.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Hashable, Iterable

from eventstore_lite.codec import Row
from eventstore_lite.tail import Tail

SLOW_FOR = 1.0  # longest back-off, in seconds, for a reader that keeps missing deadlines
_MAX_SLOW = 1024


class Live:
    """Head position, recent rows and the threads waiting for what comes next."""

    def __init__(self, head: int) -> None:
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # readers wait here for a new head
        self._delivered = threading.Condition(lock)  # the writer waits here for readers
        self._head = head
        self._tail = Tail(head)
        self._closed = False
        self._waiting: set[Hashable] = set()  # readers blocked in wait_beyond
        self._owing: set[Hashable] = set()  # woken by the last publish, not back yet
        self._slow: dict[Hashable, float] = {}  # reader -> monotonic time until which it is not waited for
        self._misses: dict[Hashable, int] = {}  # reader -> deadlines missed in a row

    @property
    def head(self) -> int:
        return self._head

    @property
    def closed(self) -> bool:
        return self._closed

    def publish(self, head: int, rows: Iterable[Row]) -> None:
        """Advance the head to ``head`` (``rows``: all the commit wrote); wake every waiter."""
        with self._cond:
            self._tail.extend(rows)
            self._head = head
            if self._slow:
                now = time.monotonic()
                self._owing = {t for t in self._waiting if self._slow.get(t, 0.0) <= now}
            else:
                self._owing = set(self._waiting)
            self._cond.notify_all()

    def await_delivery(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until the readers woken by the last publish are back."""
        with self._cond:
            if not self._owing:
                return
            if not self._delivered.wait_for(lambda: not self._owing or self._closed, timeout):
                now = time.monotonic()
                if len(self._slow) > _MAX_SLOW:
                    self._slow.clear()
                    self._misses.clear()
                for reader in self._owing:
                    misses = self._misses[reader] = self._misses.get(reader, 0) + 1
                    self._slow[reader] = now + min(SLOW_FOR, timeout * 2**misses)
                self._owing.clear()

    def recent_after(self, position: int, limit: int) -> list[Row] | None:
        """Up to ``limit`` committed rows after ``position`` from memory; None if not held."""
        with self._cond:
            return self._tail.after(position, limit)

    def wait_beyond(self, position: int, is_active: Callable[[], bool], reader: Hashable | None = None) -> bool:
        """Block until ``head > position``; False if closed or ``is_active()`` turned False.

        Coming back with ``position`` at the head counts as having consumed the
        last publication.  The 5 s timeout is only a safety net for a missed
        RPC-termination callback (:meth:`wake_all`).
        """
        me = threading.get_ident() if reader is None else reader
        with self._cond:
            if position >= self._head:
                self._back(me)
            self._waiting.add(me)
            try:
                while self._head <= position:
                    if self._closed or not is_active():
                        self._back(me)  # leaving for good: not to be waited for
                        return False
                    self._cond.wait(timeout=5.0)
            finally:
                self._waiting.discard(me)
            return not self._closed

    def _back(self, reader: Hashable) -> None:
        """``reader`` consumed the last publication (call with the lock held)."""
        if reader in self._owing:
            self._owing.discard(reader)
            self._misses.pop(reader, None)  # back in time
            if not self._owing:
                self._delivered.notify_all()

    def wake_all(self) -> None:
        """Wake every waiter so it re-checks its liveness (RPC cancelled, stop)."""
        with self._cond:
            self._cond.notify_all()

    def shutdown(self) -> None:
        """Refuse further waits; wake every waiter and a writer awaiting delivery."""
        with self._cond:
            self._closed = True
            self._owing.clear()
            self._cond.notify_all()
            self._delivered.notify_all()
