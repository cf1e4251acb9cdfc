"""The ``Streams/Read`` RPC: reads of a stream or ``$all`` and catch-up subscriptions.

Yields serialized ``ReadResp`` messages (bytes).  Contract, as the real server:
- reads: events then end, or a single ``stream_not_found``; a tombstoned stream
  fails with FAILED_PRECONDITION "Event stream 'x' is deleted.";
- forward reads include the given revision/position, backward ``$all`` reads
  exclude the given position, backward stream reads include the revision;
- subscriptions: ``confirmation`` first, catch-up events, then (filtered ``$all``
  only) a checkpoint every ``max x multiplier`` events considered plus one at the
  end of catch-up, then ``caught_up``, then live events as they are committed;
  they start *after* the given position or revision.

Generators here are blocking (SQLite) and run on worker threads (a live ``$all``
subscription's step may run on the event loop when :meth:`Wait.ready` says it needs
neither SQLite nor a timed filter match), but never wait for new events themselves: a subscription that has sent everything yields a :class:`Wait`
naming the position it waits beyond, and the server awaits that on its event loop
(:meth:`Store.wait_beyond`) before asking for more, so an idle subscription holds no
thread.  Nor does a scan: a read or subscription of ``$all`` yields :data:`PAUSE` after each
page it scanned, and the server hands the worker back (after a few pages without enough to
send) before asking for more, so a filter that matches nothing cannot hold a worker for the
whole store.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterator

from esdbclient.protos.Grpc import shared_pb2, streams_pb2

from eventstore_lite import codec
from eventstore_lite.codec import POSITION, REVISION, Row
from eventstore_lite.errors import BadRequest, StreamDeleted
from eventstore_lite.filters import EventFilter, build_filter
from eventstore_lite.storage import MAX_REVISION, PAGE_SIZE, Store, StreamState

Encoder = Callable[[Row], bytes]


class Wait:
    """Yielded by a subscription that has sent all there is: resume it once the head of
    ``$all`` passes ``position``.

    :meth:`ready` is asked on the event loop once the head has moved: True when the events the
    subscription sends next are in memory and need no timed filter match, so its next step may run
    on the loop itself (no hand-off to a worker thread and back, see :mod:`eventstore_lite.service`).
    The rows it checked are kept in :attr:`rows` for that step, so it sends exactly what was checked."""

    __slots__ = ("position", "rows", "_check")

    def __init__(self, position: int, check: Callable[[], list[Row] | None] | None = None) -> None:
        self.position = position
        self.rows: list[Row] | None = None
        self._check = check

    def ready(self) -> bool:
        """True if the next step needs neither SQLite nor a timed regex match (see the class docstring)."""
        if self._check is None:
            return False
        self.rows = self._check()
        return self.rows is not None


@dataclass(frozen=True, slots=True)
class Pause:
    """Yielded after each page of ``$all`` a read has scanned: a point where the server may hand the worker
    thread back to the pool and resume the read later (see the module docstring)."""


PAUSE = Pause()
Message = bytes | Wait | Pause

_CAUGHT_UP: bytes = streams_pb2.ReadResp(caught_up=streams_pb2.ReadResp.CaughtUp()).SerializeToString()
_VALID = {
    ("Stream", "Count", "Forwards", "NoFilter"),
    ("Stream", "Count", "Backwards", "NoFilter"),
    ("All", "Count", "Forwards", "NoFilter"),
    ("All", "Count", "Forwards", "Filter"),
    ("All", "Count", "Backwards", "NoFilter"),
    ("All", "Count", "Backwards", "Filter"),
    ("Stream", "Subscription", "Forwards", "NoFilter"),
    ("All", "Subscription", "Forwards", "NoFilter"),
    ("All", "Subscription", "Forwards", "Filter"),
}
_CASE_NAMES = {
    "stream": "Stream", "all": "All", "count": "Count", "subscription": "Subscription",
    "filter": "Filter", "no_filter": "NoFilter", None: "None",
}


def handle_read(store: Store, request: Any) -> Iterator[Message]:
    """Dispatch a ``ReadReq`` to a read or a subscription (see module docstring)."""
    options = request.options
    combination = _combination(options)
    if combination not in _VALID:
        raise BadRequest(f"The combination of ({', '.join(combination)}) is invalid.")
    structured = options.uuid_option.WhichOneof("content") == "structured"
    id_encoder = codec.uuid_structured if structured else codec.uuid_string

    def encode(row: Row) -> bytes:
        return codec.read_resp_event(row, id_encoder)

    forwards = combination[2] == "Forwards"
    event_filter = build_filter(options.filter) if combination[3] == "Filter" else None
    if combination[1] == "Subscription":
        if combination[0] == "Stream":
            return _subscribe_stream(store, options.stream, encode)
        return _subscribe_all(store, options.all, event_filter, encode)
    if combination[0] == "Stream":
        return _read_stream(store, options.stream, forwards, options.count, encode)
    return _read_all(store, options.all, forwards, options.count, event_filter, encode)


def _combination(options: Any) -> tuple[str, str, str, str]:
    direction = "Backwards" if options.read_direction == streams_pb2.ReadReq.Options.Backwards else "Forwards"
    return (
        _CASE_NAMES[options.WhichOneof("stream_option")],
        _CASE_NAMES[options.WhichOneof("count_option")],
        direction,
        _CASE_NAMES[options.WhichOneof("filter_option")],
    )


def _stream_name(stream_options: Any) -> str:
    return str(stream_options.stream_identifier.stream_name.decode("utf-8", errors="replace"))


def _clamp(value: int) -> int:
    return min(value, MAX_REVISION)


def readable_state(store: Store, stream: str) -> StreamState:
    """The stream's state; raise StreamDeleted if it (or, for ``$$x``, ``x``) is tombstoned."""
    state = store.stream_state(stream)
    if state.tombstoned or (stream.startswith("$$") and store.stream_state(stream[2:]).tombstoned):
        raise StreamDeleted(stream)
    return state


# -- plain reads -------------------------------------------------------------


def _read_stream(store: Store, options: Any, forwards: bool, count: int, encode: Encoder) -> Iterator[bytes]:
    stream = _stream_name(options)
    state = readable_state(store, stream)
    if not state.readable:
        yield _stream_not_found(options.stream_identifier.stream_name)
        return
    which = options.WhichOneof("revision_option")
    if which == "revision":
        revision = _clamp(options.revision)
    elif which == "end":
        revision = state.last + 1 if forwards else state.last
    else:
        revision = 0
    floor = state.first_visible
    if forwards:
        revision = max(revision, floor)
    remaining = count
    while remaining > 0 and revision >= floor:
        rows = store.stream_page(stream, revision, forwards, min(PAGE_SIZE, remaining))
        for row in rows:
            if row[REVISION] < floor:
                return
            yield encode(row)
        if len(rows) < min(PAGE_SIZE, remaining):
            return
        remaining -= len(rows)
        revision = rows[-1][REVISION] + (1 if forwards else -1)


def _read_all(
    store: Store, options: Any, forwards: bool, count: int, event_filter: EventFilter | None, encode: Encoder
) -> Iterator[bytes | Pause]:
    which = options.WhichOneof("all_option")
    if which == "position":
        position, inclusive = _clamp(options.position.commit_position), forwards
    elif which == "end":
        position, inclusive = (MAX_REVISION, True) if not forwards else (MAX_REVISION, False)
    else:
        position, inclusive = (0, True) if forwards else (0, False)
    remaining = count
    while remaining > 0:
        rows = store.all_page(position, forwards, inclusive, PAGE_SIZE)
        for row in rows:
            if event_filter is None or event_filter.matches(row):
                yield encode(row)
                remaining -= 1
                if remaining == 0:
                    return
        if len(rows) < PAGE_SIZE:
            return
        yield PAUSE
        position, inclusive = rows[-1][POSITION], False


def _stream_not_found(name: bytes) -> bytes:
    message = streams_pb2.ReadResp(
        stream_not_found=streams_pb2.ReadResp.StreamNotFound(
            stream_identifier=shared_pb2.StreamIdentifier(stream_name=name)
        )
    )
    return bytes(message.SerializeToString())


# -- subscriptions -------------------------------------------------------------


def _confirmation() -> bytes:
    message = streams_pb2.ReadResp(
        confirmation=streams_pb2.ReadResp.SubscriptionConfirmation(subscription_id=str(uuid.uuid4()))
    )
    return bytes(message.SerializeToString())


def _checkpoint(position: int) -> bytes:
    message = streams_pb2.ReadResp(
        checkpoint=streams_pb2.ReadResp.Checkpoint(commit_position=position, prepare_position=position)
    )
    return bytes(message.SerializeToString())


def _subscribe_all(store: Store, options: Any, event_filter: EventFilter | None, encode: Encoder) -> Iterator[Message]:
    which = options.WhichOneof("all_option")
    if which == "position":
        last = _clamp(options.position.commit_position)
    elif which == "end":
        last = store.head
    else:
        last = 0
    interval = event_filter.checkpoint_interval if event_filter else 0
    considered = 0
    caught_up = False
    yield _confirmation()
    checked: list[Row] | None = None  # rows the server checked after the last wait (see Wait.ready)
    while True:
        rows = checked if checked is not None else store.recent_after(last, PAGE_SIZE)
        checked = None
        if rows is None:  # older than what memory holds
            rows = store.all_page(last, True, False, PAGE_SIZE)
        for row in rows:
            last = row[POSITION]
            if event_filter is None or event_filter.matches(row):
                yield encode(row)
            if interval:
                considered += 1
                if considered >= interval:
                    considered = 0
                    yield _checkpoint(last)
        if len(rows) == PAGE_SIZE:
            yield PAUSE
            continue
        if not caught_up:
            caught_up = True
            if interval:
                yield _checkpoint(last)
            yield _CAUGHT_UP
        wait = Wait(last, partial(_held_and_settled, store, last, event_filter))
        yield wait
        checked = wait.rows


def _held_and_settled(store: Store, last: int, event_filter: EventFilter | None) -> list[Row] | None:
    """The events after ``last`` if all are in memory and none needs a timed filter match; else None."""
    rows = store.recent_after(last, PAGE_SIZE)
    if rows is None or (event_filter is not None and not all(event_filter.settled(row) for row in rows)):
        return None
    return rows


def _subscribe_stream(store: Store, options: Any, encode: Encoder) -> Iterator[bytes | Wait]:
    stream = _stream_name(options)
    state = readable_state(store, stream)
    which = options.WhichOneof("revision_option")
    if which == "revision":
        after = _clamp(options.revision)
    elif which == "end":
        after = state.last
    else:
        after = -1
    caught_up = False
    yield _confirmation()
    while True:
        head = store.head
        state = readable_state(store, stream)
        start = max(after + 1, state.first_visible)
        rows = store.stream_page(stream, start, True, PAGE_SIZE) if start <= state.last else []
        for row in rows:
            after = row[REVISION]
            yield encode(row)
        if len(rows) == PAGE_SIZE:
            continue
        if not caught_up:
            caught_up = True
            yield _CAUGHT_UP
        yield Wait(head)
