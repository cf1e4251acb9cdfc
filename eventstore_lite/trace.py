"""Timings of the append path, for benchmarks: off unless a file is named (``--trace``).

When on, the store writes one JSON array per line to the file (wall-clock seconds,
``time.time()``, so that other processes' timestamps compare with them):

- ``["group", began, written, committed, acknowledged, [[submitted, position], ...]]`` per
  group commit: the transaction began, its operations and stream states were written,
  ``COMMIT`` returned (durable per the durability setting), the acknowledgements were
  handed to the event loop (after the delivery-first wait); then, per operation, when it
  was submitted and the position it wrote (``-1``: none, or refused);
- ``["sent", position, at]`` when a live reader (a subscription) came back for more
  having sent everything up to ``position`` (whether or not more was committed meanwhile).

Contract: recording costs the caller a list append under a lock, never I/O; lines are
encoded and written by a thread of the trace's own, 4,096 records at a time, and every
record is in the file once :meth:`Trace.close` returns.  With tracing off the store holds
no :class:`Trace` at all, and its append path takes no timestamps.
"""

from __future__ import annotations

import json
import queue
import threading
from typing import Sequence

FLUSH_EVERY = 4096  # records handed to the writing thread at a time


class Trace:
    """A buffered writer of append-path timings to ``path`` (appended to; see the module docstring)."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()
        self._records: list[list[object]] = []
        self._batches: queue.SimpleQueue[list[list[object]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write_batches, name="eventstore_lite-trace", daemon=True)
        self._thread.start()

    def group(self, began: float, written: float, committed: float, acknowledged: float,
              ops: Sequence[tuple[float, int]]) -> None:
        """Record one group commit (see the module docstring)."""
        self._add(["group", began, written, committed, acknowledged, [list(op) for op in ops]])

    def sent(self, position: int, at: float) -> None:
        """Record that a live reader had sent everything up to ``position`` at ``at``."""
        self._add(["sent", position, at])

    def close(self) -> None:
        """Write what is buffered, stop the writing thread and close the file (idempotent)."""
        with self._lock:
            records, self._records = self._records, []
            if self._file.closed:
                return
        self._batches.put(records)
        self._batches.put(None)
        self._thread.join()
        self._file.close()

    def _add(self, record: list[object]) -> None:
        with self._lock:
            self._records.append(record)
            if len(self._records) < FLUSH_EVERY:
                return
            records, self._records = self._records, []
        self._batches.put(records)

    def _write_batches(self) -> None:
        while (records := self._batches.get()) is not None:
            self._file.write("".join(json.dumps(record) + "\n" for record in records))
            self._file.flush()
