"""The only module that imports esdbclient: the engine's port to EventStoreDB.

Everything else in Lucent talks to the event store through these functions,
so the embedded store and a real KurrentDB/EventStoreDB cluster are reached
by the same code.
"""
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from esdbclient import EventStoreDBClient, NewEvent, RecordedEvent, StreamState
from esdbclient.connection_spec import ConnectionSpec
from esdbclient.exceptions import CancelledByClient, EventStoreDBClientException, GrpcError, StreamIsDeleted

from projections.errors import ConfigurationError, EventStoreUnavailable, StreamDeleted, redact
from projections.events import Envelope, Recorded

__all__ = [
    "EventStore",
    "ProposedEvent",
    "RecordedEvent",
    "validate_uri",
    "Head",
    "Marker",
    "Subscription",
    "type_filter",
]

ANY = StreamState.ANY


def validate_uri(uri: str, variable: str = "EVENTSTORE_URI") -> None:
    """Raise ConfigurationError unless ``uri`` is an esdb:// or esdb+discover:// URI."""
    if not uri.startswith(("esdb://", "esdb+discover://", "kurrentdb://", "kdb://")):
        raise ConfigurationError(
            variable,
            f"{uri!r} is not an EventStoreDB URI; use esdb://host:2113?Tls=false "
            "or esdb+discover://cluster-host:2113",
        )
    try:
        spec = ConnectionSpec(uri)
    except (ValueError, EventStoreDBClientException) as exc:
        raise ConfigurationError(variable, f"{uri!r} is malformed ({exc}); use esdb://host:2113?Tls=false") from exc
    if not spec.targets or not all(":" in t and t.rsplit(":", 1)[1].isdigit() for t in spec.targets):
        raise ConfigurationError(variable, f"{uri!r} has no host:port target; use esdb://host:2113?Tls=false")


@dataclass(frozen=True)
class ProposedEvent:
    """An event to append: its type, JSON data, JSON metadata and a stable id."""

    type: str
    data: Mapping[str, Any]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    # Bytes sent verbatim instead of ``data`` (fault drills append non-JSON data).
    raw_data: bytes | None = None

    def to_new_event(self) -> NewEvent:
        return NewEvent(
            type=self.type,
            data=self.raw_data if self.raw_data is not None else json.dumps(self.data, separators=(",", ":")).encode(),
            metadata=json.dumps(self.metadata, separators=(",", ":")).encode(),
            content_type="application/json",
            id=self.id,
        )


STREAM_PAGE = 4096  # events of a stream read per call (each call has its own deadline)


class EventStore:
    """A connection to one event store (embedded or a cluster) through esdbclient."""

    def __init__(self, uri: str, timeout: float = 10.0) -> None:
        validate_uri(uri)
        self.uri = uri
        self.timeout = timeout
        self.client = EventStoreDBClient(uri=uri)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(
        self,
        stream: str,
        events: Sequence[ProposedEvent],
        expected_version: int | StreamState = ANY,
    ) -> int:
        """Append ``events`` to ``stream`` atomically; return the last commit position."""
        try:
            return self.client.append_to_stream(
                stream,
                current_version=expected_version,
                events=[e.to_new_event() for e in events],
                timeout=self.timeout,
            )
        except StreamIsDeleted:
            raise StreamDeleted(f"stream {stream!r} is deleted for good (tombstoned); nothing was appended") from None
        except GrpcError as exc:
            raise EventStoreUnavailable(f"append to {stream!r} failed: {exc}") from exc

    def ping(self, timeout: float = 2.0) -> None:
        """Raise EventStoreUnavailable unless the store answers within ``timeout`` seconds."""
        try:
            self.client.get_commit_position(timeout=timeout)
        except (GrpcError, EventStoreDBClientException) as exc:
            raise EventStoreUnavailable(f"event store at {redact(self.uri)} did not answer: {redact(str(exc))}") from exc

    def read_all(self, after: int | None = None, limit: int | None = None) -> Iterator[RecordedEvent]:
        """Events of ``$all`` (system events excluded) after commit position ``after``."""
        position = None if after is None else after + 1
        kwargs: dict[str, Any] = {"commit_position": position}
        if limit is not None:
            kwargs["limit"] = limit
        return iter(self.client.read_all(**kwargs))

    def read_stream(self, stream: str, page: int = STREAM_PAGE) -> Iterator[Recorded]:
        """Every event of ``stream`` in order (none if the stream does not exist), as small
        :class:`~projections.events.Recorded` events built straight from the gRPC messages. Read in pages of
        ``page`` events, each with the client's timeout: a long stream is not cut off by one deadline, a store
        that stops answering still is."""
        return (event for _, event in self.read_stream_from(stream, 0, page))

    def read_stream_from(self, stream: str, revision: int, page: int = STREAM_PAGE) -> Iterator[tuple[int, Recorded]]:
        """The events of ``stream`` from stream revision ``revision`` on, each with its revision (to resume after
        it), read page by page as :meth:`read_stream`. Each page is read whole before it is handed on: a
        consumer as slow as it likes (folding, interleaving streams) never holds a call past its deadline."""
        while True:
            try:
                response = self.client.read_stream(stream, stream_position=revision, limit=page, timeout=self.timeout)
            except (GrpcError, EventStoreDBClientException) as exc:
                raise EventStoreUnavailable(f"reading stream {stream!r} failed: {exc}") from exc
            revisions: list[int] = []
            pairs = [(revisions[-1], event) for event in _read_items(response, f"stream {stream!r}", revisions)]
            yield from pairs
            if len(revisions) < page:
                return
            revision = revisions[-1] + 1

    def first_position(self, stream: str) -> int | None:
        """The commit position of the first event of ``stream`` (None if the stream holds none)."""
        first = next(iter(self.read_stream(stream, page=1)), None)
        return None if first is None else first.envelope.position

    def read_stream_newest(self, stream: str, limit: int) -> list[Recorded]:
        """The newest ``limit`` events of ``stream``, newest first (none if it does not exist)."""
        try:
            response = self.client.read_stream(stream, backwards=True, limit=limit, timeout=self.timeout)
        except (GrpcError, EventStoreDBClientException) as exc:
            raise EventStoreUnavailable(f"reading stream {stream!r} failed: {exc}") from exc
        return list(_read_items(response, f"stream {stream!r}"))

    def stream_length(self, stream: str) -> int:
        """How many events ``stream`` holds (its newest revision + 1; 0 if it does not exist)."""
        try:
            response = self.client.read_stream(stream, backwards=True, limit=1, timeout=self.timeout)
        except (GrpcError, EventStoreDBClientException) as exc:
            raise EventStoreUnavailable(f"reading stream {stream!r} failed: {exc}") from exc
        revisions: list[int] = []
        for _ in _read_items(response, f"stream {stream!r}", revisions):
            pass
        return revisions[-1] + 1 if revisions else 0

    def metadata_at(self, position: int) -> dict[str, Any]:
        """The JSON metadata of the event at commit ``position`` ({} if none is there or it is not JSON)."""
        try:
            found = list(self.client.read_all(commit_position=position, limit=1, timeout=self.timeout))
        except (GrpcError, EventStoreDBClientException) as exc:
            raise EventStoreUnavailable(f"reading the event at {position} failed: {exc}") from exc
        if not found or found[0].commit_position != position:
            return {}
        try:
            value = json.loads(found[0].metadata or b"{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def read_types(self, event_types: Sequence[str], after: int | None = None) -> Iterator[Recorded]:
        """Events of ``event_types`` in ``$all`` after commit position ``after``, oldest first (a plain
        read, no subscription: it ends at the head as the read began)."""
        try:
            response = self.client.read_all(commit_position=after or None, filter_include=type_filter(event_types),
                                            timeout=None)
        except (GrpcError, EventStoreDBClientException) as exc:
            raise EventStoreUnavailable(f"reading $all after {after} failed: {exc}") from exc
        for event in _read_items(response, "$all"):
            if after is None or event.envelope.position > after:
                yield event

    def read_types_before(self, event_types: Sequence[str], before: int, page: int = 16) -> Iterator[Recorded]:
        """Events of ``event_types`` in ``$all`` before commit position ``before``, newest first, read in
        pages of growing size (a caller that stops early has read little more than it used)."""
        while True:
            try:
                response = self.client.read_all(commit_position=before, backwards=True, limit=page,
                                                filter_include=type_filter(event_types), timeout=self.timeout)
            except (GrpcError, EventStoreDBClientException) as exc:
                raise EventStoreUnavailable(f"reading $all backwards from {before} failed: {exc}") from exc
            seen = 0
            for event in _read_items(response, "$all"):
                seen += 1
                if event.envelope.position < before:
                    before = event.envelope.position
                    yield event
            if seen < page:
                return
            page = min(page * 4, 4096)

    def subscribe(self, after: int | None, event_types: Sequence[str], window: int) -> Subscription:
        try:
            inner = self.client.subscribe_to_all(
                commit_position=after or None,
                filter_include=type_filter(event_types),
                include_checkpoints=True,
                include_caught_up=True,
                window_size=window,
                checkpoint_interval_multiplier=5,
            )
        except (GrpcError, EventStoreDBClientException) as exc:
            raise EventStoreUnavailable(f"subscribing to $all after {after} failed: {exc}") from exc
        return Subscription(inner)

    def head(self, event_types: Sequence[str]) -> Head | None:
        try:
            found = list(
                self.client.read_all(backwards=True, limit=1, filter_include=type_filter(event_types), timeout=self.timeout)
            )
        except (GrpcError, EventStoreDBClientException) as exc:
            raise EventStoreUnavailable(f"reading the head of $all failed: {exc}") from exc
        if not found:
            return None
        event = found[0]
        recorded = event.recorded_at
        return Head(int(event.commit_position or 0), int(recorded.timestamp() * 1000) if recorded else 0)

    def newest(self, limit: int) -> list[Head]:
        """The newest ``limit`` events of ``$all`` (system events excluded), newest first: where each sits
        and when it was recorded (the infrastructure sampler's head and append rate; one bounded read)."""
        try:
            response = self.client.read_all(backwards=True, limit=limit, timeout=self.timeout)
        except (GrpcError, EventStoreDBClientException) as exc:
            raise EventStoreUnavailable(f"reading the newest events of $all failed: {exc}") from exc
        return [Head(e.envelope.position, e.envelope.recorded_at) for e in _read_items(response, "$all")]

    def count_after(self, after: int, event_types: Sequence[str], bound: int) -> int:
        """Events of ``event_types`` after ``after``, counting at most ``bound`` (a bounded lag)."""
        try:
            events = self.client.read_all(
                commit_position=after or None, limit=bound + 1, filter_include=type_filter(event_types), timeout=self.timeout
            )
            return min(bound, sum(1 for e in events if int(e.commit_position or 0) > after))
        except (GrpcError, EventStoreDBClientException) as exc:
            raise EventStoreUnavailable(f"counting events after {after} failed: {exc}") from exc


# -- what the projection runner needs (catch-up subscription, head, lag) ----------------


def type_filter(event_types: Sequence[str]) -> list[str]:
    """A server-side filter matching exactly ``event_types`` (esdbclient wraps it in ^…$)."""
    return ["(?:" + "|".join(re.escape(t) for t in event_types) + ")"] if event_types else []


@dataclass(frozen=True)
class Head:
    """The newest event of ``$all`` under a filter: its commit position and recorded time (ms)."""

    position: int
    recorded_at: int


@dataclass(frozen=True, slots=True)
class Marker:
    """A subscription's checkpoint (every event before ``commit_position`` was considered)
    or its caught-up marker (the subscription has reached the head and is now live)."""

    commit_position: int
    is_caught_up: bool = False

    @property
    def is_checkpoint(self) -> bool:
        return not self.is_caught_up


CAUGHT_UP = Marker(0, is_caught_up=True)


class Subscription:
    """A catch-up subscription to ``$all``: events, checkpoints and a caught-up marker.

    Iterating yields :class:`~projections.events.Recorded` events and
    :class:`Marker` checkpoints / caught-up markers, built straight from
    esdbclient's gRPC responses: this loop runs once per event at catch-up
    rates, and esdbclient's own ``RecordedEvent`` (a UUID, a datetime and a
    dataclass per event) would cost more than the whole fold. esdbclient still
    sends the request, maps gRPC errors and cancels the call. ``stop()`` may be
    called from any thread and ends the iteration.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[Recorded | Marker]:
        for item in self.wire_items():
            if item.__class__ is tuple:
                fields: RecordedFields = item
                yield Recorded(Envelope(*fields[:5]), fields[5])
            elif item is None:
                yield CAUGHT_UP
            else:
                yield Marker(item)  # type: ignore[arg-type]

    def wire_items(self) -> Iterator[RecordedFields | int | None]:
        """The same items as plain values (what :mod:`projections.projector.reader` pickles): an event's
        :data:`RecordedFields`, a checkpoint's commit position, or None for caught-up."""
        next_response = self._inner._get_next_read_resp  # esdbclient 1.1.7: one ReadResp, errors mapped
        try:
            while True:
                try:
                    response = next_response()
                except CancelledByClient:
                    return
                kind = response.WhichOneof("content")
                if kind == "event":
                    fields = recorded_fields(response.event)
                    if fields is not None:
                        yield fields
                elif kind == "checkpoint":
                    yield int(response.checkpoint.commit_position)
                elif kind == "caught_up":
                    yield None
        except (GrpcError, EventStoreDBClientException) as exc:
            self.stop()
            raise EventStoreUnavailable(f"subscription to $all failed: {exc}") from exc

    def stop(self) -> None:
        try:
            self._inner.stop()
        except Exception:  # noqa: BLE001 - stopping a dead stream must not raise
            pass


def _read_items(response: Any, what: str, revisions: list[int] | None = None) -> Iterator[Recorded]:
    """The events of a read's gRPC responses (esdbclient 1.1.7 maps errors; a missing stream is none);
    ``revisions`` gets each message's stream revision (empty slots too), for paging."""
    next_response = response._get_next_read_resp
    try:
        while True:
            try:
                message = next_response()
            except (StopIteration, CancelledByClient):
                return
            kind = message.WhichOneof("content")
            if kind == "event":
                if revisions is not None:
                    revisions.append(message.event.event.stream_revision)
                fields = recorded_fields(message.event)
                if fields is not None:
                    yield Recorded(Envelope(*fields[:5]), fields[5])
            elif kind == "stream_not_found":
                return
    except (GrpcError, EventStoreDBClientException) as exc:
        raise EventStoreUnavailable(f"reading {what} failed: {exc}") from exc
    finally:
        response.stop()


RecordedFields = tuple[str, str, int, str, int, bytes]  # event id, stream, position, type, recorded ms, data


def recorded_fields(read_event: Any) -> RecordedFields | None:
    """The fields of a ReadResp.ReadEvent, in Envelope's order then the data; None for an empty slot."""
    event = read_event.event
    event_id = event.id.string.lower()  # what str(UUID) gives, as esdbclient's RecordedEvent.id
    if not event_id:
        return None
    metadata = event.metadata
    created = metadata.get("created", "")  # .NET ticks: 100 ns since the Unix epoch
    return (
        event_id,
        event.stream_identifier.stream_name.decode("utf-8", "replace"),  # any bytes: never an exception
        event.commit_position,
        metadata.get("type", ""),
        int(created) // 10_000 if created.isascii() and created.isdigit() else 0,  # "²".isdigit(), yet int() refuses it
        event.data,
    )
