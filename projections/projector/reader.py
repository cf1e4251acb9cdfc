"""A catch-up subscription read by a child process, so reading and folding run on two cores.

Why: esdbclient receives one gRPC message per event, and each one costs a
hand-off between gRPC's threads and ours — about as much CPU time as folding
the event. In one process (one GIL) the two add up; with the reading in a
child process they overlap, and a long catch-up runs close to the speed of a
bare ``read_all``. Live, events arrive one by one and the in-process
subscription is used instead (see :mod:`projections.projector.runner`).

Contract of :class:`ReaderProcess`: iterating yields the same items as
:meth:`projections.eventstore.EventStore.subscribe` — :class:`Recorded` events
and :class:`Marker` checkpoints / caught-up markers, in ``$all`` order, after
commit position ``after``. The child sends them in chunks (up to ``chunk``
items; at once when the caught-up marker or ``flush_at`` is reached). If the
child fails or dies, iteration raises
:class:`~projections.errors.EventStoreUnavailable`; ``stop()`` ends the child.

The child is ``python -m projections.projector.reader`` speaking pickle over its stdout
(our own process on both ends; nothing else writes to that pipe).
"""
from __future__ import annotations

import fcntl
import json
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from projections.errors import EventStoreUnavailable
from projections.events import Envelope, Recorded
from projections.eventstore import CAUGHT_UP, EventStore, Marker

CHUNK = 200
PIPE_BYTES = 1 << 20


class ReaderProcess:
    def __init__(self, uri: str, after: int | None, event_types: Sequence[str], window: int, flush_at: int, chunk: int = CHUNK) -> None:
        request = {"uri": uri, "after": after, "types": list(event_types), "window": window, "flush_at": flush_at, "chunk": chunk}
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "projections.projector.reader", json.dumps(request)],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
        )
        assert self._process.stdout is not None
        _widen(self._process.stdout.fileno())

    def __iter__(self) -> Iterator[Recorded | Marker]:
        pipe = self._process.stdout
        assert pipe is not None
        while True:
            try:
                chunk = pickle.load(pipe)
            except (EOFError, pickle.UnpicklingError, OSError, ValueError) as exc:
                code = self._process.poll()
                raise EventStoreUnavailable(f"the reader process ended (exit code {code}): {exc or 'no more data'}") from None
            for item in chunk:
                if item.__class__ is tuple:
                    event_id, stream, position, type_, recorded_ms, data = item
                    yield Recorded(Envelope(event_id, stream, position, type_, recorded_ms), data)
                elif item is None:
                    yield CAUGHT_UP
                elif item.__class__ is int:
                    yield Marker(item)
                else:
                    raise EventStoreUnavailable(f"the reader process failed: {item['error']}")

    def stop(self) -> None:
        """End the child (safe to call twice, and from another thread)."""
        stop_child(self._process)


def stop_child(process: subprocess.Popen[bytes]) -> None:
    """Terminate a reader child (killed if it does not end within 5 s) and close its pipe; safe to call twice."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _widen(fd: int) -> None:
    """Let the child run a few batches ahead: a pipe holds 64 KiB (one chunk) by default, so
    the child would wait on every batch the projector folds and commits."""
    try:
        limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, min(PIPE_BYTES, limit))
    except (OSError, ValueError, AttributeError):
        pass  # not Linux, or not allowed: the default pipe still works, only slower


def forward(request: dict[str, Any], out: IO[bytes]) -> None:
    """The child's loop: subscribe, and pickle the items to ``out`` in chunks."""
    buffer: list[Any] = []
    flush_at = int(request["flush_at"])
    chunk = int(request["chunk"])
    live = False
    try:
        with EventStore(request["uri"]) as store:
            sub = store.subscribe(request["after"], request["types"], int(request["window"]))
            for item in sub.wire_items():
                buffer.append(item)
                if item.__class__ is tuple:
                    due = live or item[2] >= flush_at
                elif item is None:  # caught up: from now on every item goes at once
                    due = live = True
                else:
                    due = live or item > flush_at  # type: ignore[operator]
                if due or len(buffer) >= chunk:
                    pickle.dump(buffer, out, pickle.HIGHEST_PROTOCOL)
                    out.flush()
                    buffer = []
    except BrokenPipeError:
        return  # the parent stopped reading
    except Exception as exc:  # noqa: BLE001 - handed to the parent, which retries
        buffer.append({"error": f"{type(exc).__name__}: {exc}"})
        pickle.dump(buffer, out, pickle.HIGHEST_PROTOCOL)
        out.flush()


def exit_with_parent(parent: int) -> None:
    """A parent killed with -9 cannot stop its reader child: the child notices and exits (run in a thread)."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=exit_with_parent, args=(os.getppid(),), daemon=True).start()
    try:
        forward(json.loads(sys.argv[1]), sys.stdout.buffer)
    except (BrokenPipeError, KeyboardInterrupt):
        pass
