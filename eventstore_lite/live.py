"""The head of ``$all`` and its live readers: publication, waiting, and delivery first.

Contract:
- :meth:`Live.publish` is called by the writer after each commit, with every row
  that commit wrote; it advances the head, keeps the rows (see
  :mod:`eventstore_lite.tail`) and wakes every reader awaiting
  :meth:`Live.wait_beyond` at once (readers wait on their event loop, holding no
  thread, so idle subscriptions cannot take the worker threads);
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
Thread-safe; readers are told apart by a token they pass (a subscription's own object).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from typing import Hashable, Iterable

from eventstore_lite.codec import Row
from eventstore_lite.tail import Tail
from eventstore_lite.trace import Trace

SLOW_FOR = 1.0  # longest back-off, in seconds, for a reader that keeps missing deadlines
_MAX_SLOW = 1024


class Live:
    """Head position, recent rows and the readers waiting for what comes next."""

    def __init__(self, head: int, trace: Trace | None = None) -> None:
        self._trace = trace
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # guards everything below
        self._delivered = threading.Condition(lock)  # the writer waits here for readers
        self._waiters: set[asyncio.Future[bool]] = set()  # readers' futures, resolved on publish
        self._head = head
        self._tail = Tail(head)
        self._closed = False
        self._waiting: set[Hashable] = set()  # readers awaiting wait_beyond
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
            self._wake(True)

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

    async def wait_beyond(self, position: int, reader: Hashable) -> bool:
        """Wait, on the caller's event loop, until ``head > position``; False once closed.

        No thread is held while waiting: an idle subscription costs a future, not a
        worker.  Coming back with ``position`` at the head counts as having consumed
        the last publication; a cancelled wait (the RPC ended) is not waited for again.
        """
        if self._trace is not None:
            self._trace.sent(position, time.time())
        with self._cond:
            if position >= self._head:
                self._back(reader)
            if self._closed:
                return False
            if self._head > position:
                return True
            future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._waiters.add(future)
            self._waiting.add(reader)
        try:
            return await future
        except asyncio.CancelledError:
            with self._cond:
                self._back(reader)  # leaving for good: not to be waited for
            raise
        finally:
            with self._cond:
                self._waiting.discard(reader)
                self._waiters.discard(future)

    def _back(self, reader: Hashable) -> None:
        """``reader`` consumed the last publication (call with the lock held)."""
        if reader in self._owing:
            self._owing.discard(reader)
            self._misses.pop(reader, None)  # back in time
            if not self._owing:
                self._delivered.notify_all()

    def shutdown(self) -> None:
        """Refuse further waits; wake every waiter and a writer awaiting delivery."""
        with self._cond:
            self._closed = True
            self._owing.clear()
            self._wake(False)
            self._delivered.notify_all()

    def _wake(self, result: bool) -> None:
        """Resolve every waiting future with ``result``, one call per event loop (lock held)."""
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[bool]]] = defaultdict(list)
        for future in self._waiters:
            by_loop[future.get_loop()].append(future)
        self._waiters = set()
        for loop, futures in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, futures, result)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass


def _resolve(futures: list[asyncio.Future[bool]], result: bool) -> None:
    for future in futures:
        if not future.done():
            future.set_result(result)
