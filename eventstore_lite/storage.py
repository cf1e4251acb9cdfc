"""SQLite persistence: schema, reader connections, paged reads, and the head signal.

Contract:
- ``events.position`` is the event's commit (= prepare) position in ``$all``:
  strictly increasing, > 0, assigned by the single writer.
- ``streams`` holds per-stream state: last revision (-1: none), tombstoned flag,
  and ``truncate_before`` (the ``$tb`` of the stream's latest metadata, or NULL).
- Readers use their own connections (WAL lets them run beside the writer) and only
  ever see whole committed batches.
- :meth:`Store.wait_beyond` waits (on the event loop) until the head of ``$all`` passes a position;
  the writer publishes each commit (and its rows, which :meth:`Store.recent_after`
  then serves from memory) right after it is durable, and before acknowledging it
  gives live subscriptions a bounded head start (see :mod:`eventstore_lite.live`).
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from dataclasses import dataclass
from typing import Hashable, Iterable, Iterator

from eventstore_lite.codec import Row
from eventstore_lite.live import Live
from eventstore_lite.trace import Trace

MAX_REVISION = 2**63 - 1  # EventNumber.DeletedStream: the tombstone's revision and $tb
PAGE_SIZE = 500
DELIVERY_WAIT = 0.010  # seconds acknowledgements may wait for live subscriptions to send

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    revision INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    content_type TEXT NOT NULL,
    created INTEGER NOT NULL,
    metadata BLOB NOT NULL,
    data BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_stream ON events (stream, revision);
CREATE INDEX IF NOT EXISTS events_by_stream_event ON events (stream, event_id);
CREATE TABLE IF NOT EXISTS streams (
    name TEXT PRIMARY KEY,
    last_revision INTEGER NOT NULL,
    tombstoned INTEGER NOT NULL DEFAULT 0,
    truncate_before INTEGER
) WITHOUT ROWID;
"""

_COLUMNS = "position, stream, revision, event_id, type, content_type, created, metadata, data"


@dataclass(frozen=True, slots=True)
class StreamState:
    """A stream's committed state; ``last`` is -1 for a stream without events."""

    last: int = -1
    tombstoned: bool = False
    truncate_before: int | None = None

    @property
    def soft_deleted(self) -> bool:
        return self.truncate_before == MAX_REVISION

    @property
    def first_visible(self) -> int:
        """Lowest revision reads may return (``$tb`` or 0)."""
        return self.truncate_before or 0

    @property
    def readable(self) -> bool:
        """True when a read finds the stream (not "stream not found")."""
        return self.last >= 0 and self.first_visible <= self.last


def connect(path: str, cache_kib: int = 16384) -> sqlite3.Connection:
    """Open a connection in WAL mode with full fsync on commit (bounded page cache)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
    return conn


class Store:
    """The database file plus the in-process signal of new commits."""

    def __init__(self, path: str, trace: Trace | None = None) -> None:
        """``trace``: where the append path's timings go (None, the default: nowhere)."""
        self.path = path
        self.trace = trace
        self.writer_conn = connect(path, cache_kib=32768)
        self.writer_conn.executescript(_SCHEMA)
        row = self.writer_conn.execute("SELECT MAX(position) FROM events").fetchone()
        self._live = Live(row[0] or 0, trace)
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all_readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    # -- head and notification (see eventstore_lite.live) ----------------------

    @property
    def head(self) -> int:
        """Position of the last committed event (0 for an empty store)."""
        return self._live.head

    @property
    def closed(self) -> bool:
        return self._live.closed

    def publish(self, head: int, rows: Iterable[Row] = ()) -> None:
        """Called by the writer after a commit, with every row it wrote: advance the head, wake waiters."""
        self._live.publish(head, rows)

    def await_delivery(self, timeout: float = DELIVERY_WAIT) -> None:
        """Called by the writer after :meth:`publish`: let live subscriptions send first (bounded)."""
        self._live.await_delivery(timeout)

    def recent_after(self, position: int, limit: int) -> list[Row] | None:
        """Up to ``limit`` committed events after ``position`` from memory; None if not held."""
        return self._live.recent_after(position, limit)

    async def wait_beyond(self, position: int, reader: Hashable) -> bool:
        """Wait on the event loop, holding no thread, until ``head > position``; False once closed.

        ``reader`` tells live readers apart (a subscription's own object)."""
        return await self._live.wait_beyond(position, reader)

    def shutdown(self) -> None:
        """Refuse further waits and wake every waiter (first phase of closing)."""
        self._live.shutdown()

    def close(self) -> None:
        """Close every connection; call after :meth:`shutdown` and after handlers ended."""
        self.shutdown()
        with self._readers_lock:
            for conn in self._all_readers:
                conn.close()
            self._all_readers.clear()
        self.writer_conn.close()
        if self.trace is not None:
            self.trace.close()

    # -- reads -----------------------------------------------------------------

    @contextlib.contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """Borrow a reader connection for one query."""
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            conn = connect(self.path, cache_kib=8192)
            with self._readers_lock:
                self._all_readers.append(conn)
        try:
            yield conn
        finally:
            if not self.closed:
                self._readers.put(conn)

    def all_page(self, position: int, forwards: bool, inclusive: bool, limit: int) -> list[Row]:
        """Up to ``limit`` events of ``$all`` from ``position`` in the given direction."""
        if forwards:
            op, order = (">=" if inclusive else ">"), "ASC"
        else:
            op, order = ("<=" if inclusive else "<"), "DESC"
        sql = f"SELECT {_COLUMNS} FROM events WHERE position {op} ? ORDER BY position {order} LIMIT ?"
        with self.reader() as conn:
            return conn.execute(sql, (position, limit)).fetchall()

    def stream_page(self, stream: str, revision: int, forwards: bool, limit: int) -> list[Row]:
        """Up to ``limit`` events of one stream from ``revision`` (inclusive)."""
        op, order = (">=", "ASC") if forwards else ("<=", "DESC")
        sql = (
            f"SELECT {_COLUMNS} FROM events WHERE stream = ? AND revision {op} ? "
            f"AND revision < {MAX_REVISION} ORDER BY revision {order} LIMIT ?"
        )
        with self.reader() as conn:
            return conn.execute(sql, (stream, revision, limit)).fetchall()

    def stream_state(self, stream: str) -> StreamState:
        """The committed state of ``stream`` (a fresh read, not the writer's cache)."""
        with self.reader() as conn:
            row = conn.execute(
                "SELECT last_revision, tombstoned, truncate_before FROM streams WHERE name = ?",
                (stream,),
            ).fetchone()
        return state_from_row(row)


def state_from_row(row: tuple[int, int, int | None] | None) -> StreamState:
    """Build a :class:`StreamState` from a ``streams`` row (None: never written)."""
    if row is None:
        return StreamState()
    return StreamState(last=row[0], tombstoned=bool(row[1]), truncate_before=row[2])
