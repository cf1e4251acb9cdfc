"""Group commit: concurrent write operations share one SQLite transaction and fsync.

Contract of :meth:`GroupCommit.submit`:
- operations run one at a time, in the order they were submitted, on the one writer
  connection inside an open transaction; each sees every write of those before it,
  so the outcome is that of a serial execution in submission order;
- an operation that raises a :class:`~eventstore_lite.errors.StoreError` (a refused
  append) must not have written anything; its caller gets that error and the group
  goes on;
- ``submit`` returns only after the transaction holding the operation's writes has
  committed (with the connection's ``synchronous=FULL``: after the fsync);
- if anything else fails (an SQLite error in an operation or in the commit), the
  whole transaction is rolled back and every caller of that group gets the error:
  nothing of it was acknowledged, nothing of it is kept.
Whoever submits while no commit is in flight leads: it takes every queued operation
(up to ``max_group``) into one transaction; those who arrive meanwhile wait and the
next leader is one of them.  There is no writer thread and no hand-off when alone.

:meth:`GroupCommit.submit_async` is the same for asyncio code: no thread waits for
the operation, so groups whose first operation came that way are led by one
committer thread (started on first use), and each group's results reach each event
loop in a single call.  Thread wake-ups, not SQLite, are what a small append costs
most, so this path has the fewest: loop to committer, committer to loop, per group.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections import defaultdict
from typing import Callable, Generic, Sequence, TypeVar

from eventstore_lite.errors import StoreError

T = TypeVar("T")
MAX_GROUP = 512
# Told of each group when tracing (see eventstore_lite.trace): began, written, committed, acknowledged
# (wall-clock seconds), then each operation's submission time and result (None if it failed).
Observer = Callable[[float, float, float, float, Sequence[tuple[float, object]]], None]


class _Pending(Generic[T]):
    """One submitted operation and, once its group is over, its outcome.

    ``wake`` is held from creation until the operation's thread may go on: either
    its group is over (``done``) or it is to lead the next group.  An operation
    submitted from asyncio has a ``future`` instead, and no thread to wake.
    """

    __slots__ = ("op", "result", "error", "done", "wake", "future", "submitted")

    def __init__(self, op: Callable[[], T], future: asyncio.Future[T] | None = None, timed: bool = False) -> None:
        self.op = op
        self.submitted = time.time() if timed else 0.0
        self.result: T | None = None
        self.error: BaseException | None = None
        self.done = False
        self.future = future
        if future is None:  # an asyncio caller is resolved through its future instead
            self.wake = threading.Lock()
            self.wake.acquire()

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]  # set when error is None


class GroupCommit:
    """Runs write operations in shared transactions on ``conn`` (see module docstring).

    ``before_commit`` runs last inside each transaction (flush deferred state);
    ``after_commit`` runs once it is durable; ``after_rollback`` once it is undone.
    All three run on the leading thread, never concurrently with an operation.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        before_commit: Callable[[], None],
        after_commit: Callable[[], None],
        after_rollback: Callable[[], None],
        max_group: int = MAX_GROUP,
        observer: Observer | None = None,
    ) -> None:
        self._conn = conn
        self._observer = observer
        self._before_commit = before_commit
        self._after_commit = after_commit
        self._after_rollback = after_rollback
        self._max_group = max_group
        self._mutex = threading.Lock()
        self._queue: list[_Pending[object]] = []
        self._leading = False
        self._turn = threading.Condition(self._mutex)  # the committer waits here for its turn to lead
        self._committer_turn = False
        self._committer: threading.Thread | None = None
        self._closed = False

    @property
    def queued(self) -> int:
        """Operations waiting for the next group (for tests and metrics)."""
        with self._mutex:
            return len(self._queue)

    def submit(self, op: Callable[[], T]) -> T:
        """Run ``op`` in the next group; return its result once durable (or raise)."""
        pending: _Pending[T] = _Pending(op, timed=self._observer is not None)
        with self._mutex:
            self._queue.append(pending)  # type: ignore[arg-type]
            follow, self._leading = self._leading, True
        if follow:
            pending.wake.acquire()  # released by a leader: done, or lead the next group
            if pending.done:
                return pending.outcome()
        self._lead()
        return pending.outcome()

    async def submit_async(self, op: Callable[[], T]) -> T:
        """:meth:`submit` for a coroutine: the event loop is never blocked."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        pending: _Pending[T] = _Pending(op, future, timed=self._observer is not None)
        with self._mutex:
            if self._closed:
                raise RuntimeError("GroupCommit is closed")
            if self._committer is None:
                self._committer = threading.Thread(target=self._commit_loop, name="eventstore_lite-commit", daemon=True)
                self._committer.start()
            self._queue.append(pending)  # type: ignore[arg-type]
            if not self._leading:
                self._leading = self._committer_turn = True
                self._turn.notify()
        return await future

    def close(self) -> None:
        """Stop the committer thread (after the group in flight); later async submits raise."""
        with self._mutex:
            self._closed = True
            self._turn.notify()
            committer = self._committer
        if committer is not None:
            committer.join()

    def _commit_loop(self) -> None:
        while True:
            with self._mutex:
                while not self._committer_turn and not self._closed:
                    self._turn.wait()
                if not self._committer_turn:
                    return
                self._committer_turn = False
            self._lead()

    def _lead(self) -> None:
        """Run the next group, hand the lead on, then let the group's callers go on."""
        with self._mutex:
            group = self._queue[: self._max_group]
            del self._queue[: self._max_group]
        try:
            self._run(group)
        finally:
            with self._mutex:
                for item in group:
                    item.done = True
                successor = self._queue[0] if self._queue else None
                self._leading = successor is not None
                if successor is not None and successor.future is not None:
                    self._committer_turn = True
                    self._turn.notify()
            if successor is not None and successor.future is None:
                successor.wake.release()  # it leads the next group at once
            _finish(group)

    def _run(self, group: list[_Pending[object]]) -> None:
        """Run ``group`` in one transaction; record each outcome (never raises)."""
        conn, observer = self._conn, self._observer
        began = written = committed = time.time() if observer is not None else 0.0
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for item in group:
                    try:
                        item.result = item.op()
                    except StoreError as exc:
                        item.error = exc
                self._before_commit()
                if observer is not None:
                    written = time.time()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of the group
            self._after_rollback()
            for item in group:
                item.error, item.result = exc, None
            return
        if observer is not None:
            committed = time.time()
        self._after_commit()
        if observer is not None:
            observer(began, written, committed, time.time(), [(item.submitted, item.result) for item in group])


def _finish(group: list[_Pending[object]]) -> None:
    """Let each caller of ``group`` go on: threads are woken, futures resolved (one call per loop)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Pending[object]]] = defaultdict(list)
    for item in group:
        if item.future is None:
            item.wake.release()
        else:
            by_loop[item.future.get_loop()].append(item)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, items)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


def _resolve(items: list[_Pending[object]]) -> None:
    for item in items:
        future = item.future
        if future is None or future.done():
            continue
        if item.error is not None:
            future.set_exception(item.error)
        else:
            future.set_result(item.result)
