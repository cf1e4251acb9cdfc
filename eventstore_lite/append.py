"""The write RPCs: ``Append``, ``BatchAppend``, ``Delete`` and ``Tombstone``.

Contract (as EventStoreDB):
- ``Append``: options first, then one proposed message per event; success carries
  the last event's position; a wrong expected version is a *response*
  (``wrong_expected_version`` with ``current_revision`` or ``current_no_stream``);
  other failures are RPC errors (deleted stream, size, missing metadata).
- ``BatchAppend``: a request stream of chunks keyed by ``correlation_id``; each
  chunk ending in ``is_final`` gets one response; errors are ``Status`` values
  whose ``details`` pack the typed error.  Each batch is held to the append size
  limit as its chunks arrive, and a call may have at most ``max_open_batches``
  unfinished batches: opening one more is answered with RESOURCE_EXHAUSTED.
- ``Delete``/``Tombstone``: errors are FAILED_PRECONDITION with the server's text.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import grpc
from esdbclient.protos.Grpc import shared_pb2, status_pb2, streams_pb2
from google.protobuf import any_pb2, empty_pb2

from eventstore_lite.errors import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    BadRequest,
    HandlerException,
    LimitReached,
    MaxAppendSizeExceeded,
    StoreError,
    StreamDeleted,
    WrongExpectedVersion,
    invalid_oneof,
    missing_metadata,
)
from eventstore_lite.stream_writer import JSON, OCTET_STREAM, Proposed, Writer

_EXPECTED_CASES = {"any": ANY, "no_stream": NO_STREAM, "stream_exists": STREAM_EXISTS}
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ONEOF_TYPE = "EventStore.Client.Streams.{}+Types+Options+ExpectedStreamRevisionOneofCase"


def stream_name(identifier: Any) -> str:
    """Decode a ``StreamIdentifier`` (invalid UTF-8 replaced, as .NET does)."""
    name = str(identifier.stream_name.decode("utf-8", errors="replace"))
    if not name:
        raise BadRequest("Stream name cannot be empty.")
    return name


def expected_version(options: Any, oneof: str, exact_field: str, request_type: str) -> int:
    """The expected version of an options message as the server's int encoding."""
    which = options.WhichOneof(oneof)
    if which == exact_field:
        return min(int(getattr(options, exact_field)), 2**63 - 2)
    if which in _EXPECTED_CASES:
        return _EXPECTED_CASES[which]
    raise invalid_oneof(_ONEOF_TYPE.format(request_type))


def event_id(message: Any) -> str:
    """The canonical string of a ``UUID`` message (string or structured form)."""
    which = message.WhichOneof("value")
    try:
        if which == "string":
            text = message.string
            if _CANONICAL_UUID.fullmatch(text):
                return str(text)
            return str(uuid.UUID(text))
        if which == "structured":
            raw = (message.structured.most_significant_bits & (2**64 - 1)).to_bytes(8, "big")
            raw += (message.structured.least_significant_bits & (2**64 - 1)).to_bytes(8, "big")
            return str(uuid.UUID(bytes=raw))
    except ValueError:
        pass
    raise HandlerException("Unrecognized Guid format.")


def proposed(message: Any) -> Proposed:
    """Validate a proposed message into a :class:`Proposed` event."""
    metadata = message.metadata
    if "type" not in metadata:
        raise missing_metadata("type")
    if "content-type" not in metadata:
        raise missing_metadata("content-type")
    content_type = JSON if metadata["content-type"] == JSON else OCTET_STREAM
    return Proposed(event_id(message.id), metadata["type"], content_type, message.custom_metadata, message.data)


def event_size(event: Proposed) -> int:
    """Size counted against the max append size (data + metadata + type)."""
    return len(event.data) + len(event.metadata) + len(event.type.encode())


class Appender:
    """Handlers for the write RPCs, sharing one :class:`Writer`."""

    def __init__(self, writer: Writer, max_append_size: int, max_open_batches: int, max_append_events: int) -> None:
        self.writer = writer
        self.max_append_size = max_append_size
        self.max_open_batches = max_open_batches
        self.max_append_events = max_append_events

    # -- Append ------------------------------------------------------------------

    async def append(self, requests: AsyncIterator[Any]) -> Any:
        """Take the call's messages as they arrive: the size and event-count limits refuse an append as soon
        as its running totals pass them, so no more than the limits (plus one message) is ever held."""
        first = await anext(requests, None)
        if first is None or first.WhichOneof("content") != "options":
            raise HandlerException("the first AppendReq must carry options")
        options = first.options
        stream = stream_name(options.stream_identifier)
        expected = expected_version(options, "expected_stream_revision", "revision", "AppendReq")
        events: list[Proposed] = []
        size = 0
        async for request in requests:
            if request.WhichOneof("content") != "proposed_message":
                raise HandlerException("AppendReq after options must carry a proposed message")
            event = proposed(request.proposed_message)
            size += event_size(event)
            if size > self.max_append_size:
                raise MaxAppendSizeExceeded(self.max_append_size)
            if len(events) >= self.max_append_events:
                raise too_many_events(self.max_append_events)
            events.append(event)
        try:
            result = await self.writer.append_async(stream, expected, events)
        except WrongExpectedVersion as exc:
            return streams_pb2.AppendResp(wrong_expected_version=_wrong_version(options, exc))
        success = streams_pb2.AppendResp.Success()
        _set_revision(success, result.revision)
        if events:
            success.position.commit_position = result.position
            success.position.prepare_position = result.position
        else:
            success.no_position.SetInParent()
        return streams_pb2.AppendResp(success=success)

    # -- BatchAppend ---------------------------------------------------------------

    async def batch_step(self, pending: dict[bytes, _PendingBatch], request: Any) -> Any | None:
        """Take one ``BatchAppendReq`` of a call (``pending``: the call's open batches, by
        correlation id); return the response once its batch is final, else None."""
        key = request.correlation_id.SerializeToString()
        try:
            if request.HasField("options"):
                if key not in pending and len(pending) >= self.max_open_batches:  # those stay open
                    limit = LimitReached("open batches in one BatchAppend call", self.max_open_batches, "--max-open-batches")
                    return _batch_error(request, limit)
                pending[key] = self._open_batch(request.options)
            batch = pending.get(key)
            if batch is None:
                return None
            for message in request.proposed_messages:
                batch.add(proposed(message), self.max_append_size, self.max_append_events)
            if not request.is_final:
                return None
            del pending[key]
            return await self._write_batch(request, batch)
        except StoreError as exc:
            pending.pop(key, None)
            return _batch_error(request, exc)

    def _open_batch(self, options: Any) -> _PendingBatch:
        stream = stream_name(options.stream_identifier)
        which = options.WhichOneof("expected_stream_position")
        if which == "stream_position":
            expected = min(int(options.stream_position), 2**63 - 2)
        elif which in _EXPECTED_CASES:
            expected = _EXPECTED_CASES[which]
        else:
            raise invalid_oneof("EventStore.Client.Streams.BatchAppendReq+Types+Options+ExpectedStreamPositionOneofCase")
        if options.WhichOneof("deadline_option") == "deadline":
            if options.deadline.seconds < 0 or (options.deadline.seconds == 0 and options.deadline.nanos <= 0):
                raise _BatchTimeout("Timeout")
        return _PendingBatch(stream, expected)

    async def _write_batch(self, request: Any, batch: _PendingBatch) -> Any:
        result = await self.writer.append_async(batch.stream, batch.expected, batch.events)
        success = streams_pb2.BatchAppendResp.Success()
        _set_revision(success, result.revision)
        if batch.events:
            success.position.commit_position = result.position
            success.position.prepare_position = result.position
        else:
            success.no_position.SetInParent()
        return streams_pb2.BatchAppendResp(
            correlation_id=request.correlation_id,
            stream_identifier=shared_pb2.StreamIdentifier(stream_name=batch.stream.encode()),
            success=success,
        )

    # -- Delete / Tombstone ------------------------------------------------------------

    def delete(self, request: Any) -> Any:
        options = request.options
        stream = stream_name(options.stream_identifier)
        expected = expected_version(options, "expected_stream_revision", "revision", "DeleteReq")
        position = self.writer.delete(stream, expected)
        return streams_pb2.DeleteResp(
            position=streams_pb2.DeleteResp.Position(commit_position=position, prepare_position=position)
        )

    def tombstone(self, request: Any) -> Any:
        options = request.options
        stream = stream_name(options.stream_identifier)
        expected = expected_version(options, "expected_stream_revision", "revision", "TombstoneReq")
        position = self.writer.tombstone(stream, expected)
        return streams_pb2.TombstoneResp(
            position=streams_pb2.TombstoneResp.Position(commit_position=position, prepare_position=position)
        )


@dataclass(slots=True)
class _PendingBatch:
    stream: str
    expected: int
    events: list[Proposed] = field(default_factory=list)
    size: int = 0

    def add(self, event: Proposed, max_size: int, max_events: int) -> None:
        self.size += event_size(event)
        if self.size > max_size:
            raise MaxAppendSizeExceeded(max_size)
        if len(self.events) >= max_events:
            raise too_many_events(max_events)
        self.events.append(event)


def too_many_events(limit: int) -> LimitReached:
    """The refusal of an append past the event-count limit: the byte limit alone would let a call carry
    millions of empty events (a real server has no such count; this store's own limit)."""
    return LimitReached("events in one append", limit, "--max-append-events")


class _BatchTimeout(StoreError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


def _set_revision(success: Any, revision: int) -> None:
    if revision < 0:
        success.no_stream.SetInParent()
    else:
        success.current_revision = revision


def _wrong_version(options: Any, exc: WrongExpectedVersion) -> Any:
    wev = streams_pb2.AppendResp.WrongExpectedVersion()
    if exc.actual < 0:
        wev.current_no_stream.SetInParent()
        wev.no_stream_20_6_0.SetInParent()
    else:
        wev.current_revision = exc.actual
        wev.current_revision_20_6_0 = exc.actual
    if exc.expected == ANY:
        wev.expected_any.SetInParent()
        wev.any_20_6_0.SetInParent()
    elif exc.expected == STREAM_EXISTS:
        wev.expected_stream_exists.SetInParent()
        wev.stream_exists_20_6_0.SetInParent()
    elif exc.expected == NO_STREAM:
        wev.expected_no_stream.SetInParent()
        wev.expected_revision_20_6_0 = 2**64 - 1
    else:
        wev.expected_revision = exc.expected
        wev.expected_revision_20_6_0 = exc.expected
    return wev


def _batch_error(request: Any, exc: StoreError) -> Any:
    """A ``BatchAppendResp`` whose ``error`` is the server's ``Status`` for ``exc``."""
    code, message, details = _status_parts(request, exc)
    packed = any_pb2.Any()
    packed.Pack(details)
    return streams_pb2.BatchAppendResp(
        correlation_id=request.correlation_id,
        stream_identifier=request.options.stream_identifier if request.HasField("options") else None,
        error=status_pb2.Status(code=code, message=message, details=packed),  # type: ignore[arg-type]
    )


def _status_parts(request: Any, exc: StoreError) -> tuple[int, str, Any]:
    if isinstance(exc, WrongExpectedVersion):
        details = shared_pb2.WrongExpectedVersion()
        if exc.actual < 0:
            details.current_no_stream.SetInParent()
        else:
            details.current_stream_revision = exc.actual
        if exc.expected == ANY:
            details.expected_any.SetInParent()
        elif exc.expected == STREAM_EXISTS:
            details.expected_stream_exists.SetInParent()
        elif exc.expected == NO_STREAM:
            details.expected_no_stream.SetInParent()
        else:
            details.expected_stream_position = exc.expected
        return grpc.StatusCode.ALREADY_EXISTS.value[0], "WrongExpectedVersion", details
    if isinstance(exc, StreamDeleted):
        deleted = shared_pb2.StreamDeleted(stream_identifier=shared_pb2.StreamIdentifier(stream_name=exc.stream.encode()))
        return grpc.StatusCode.NOT_FOUND.value[0], "StreamDeleted", deleted
    if isinstance(exc, MaxAppendSizeExceeded):
        size = shared_pb2.MaximumAppendSizeExceeded(maxAppendSize=exc.max_size)
        return grpc.StatusCode.INVALID_ARGUMENT.value[0], "MaximumAppendSizeExceeded", size
    if isinstance(exc, LimitReached):
        return grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], exc.message, shared_pb2.BadRequest(message=exc.message)
    if isinstance(exc, _BatchTimeout):
        return grpc.StatusCode.DEADLINE_EXCEEDED.value[0], "Timeout", shared_pb2.Timeout()
    if isinstance(exc, (BadRequest, HandlerException)):
        message = exc.detail if isinstance(exc, HandlerException) else exc.message
        return grpc.StatusCode.INVALID_ARGUMENT.value[0], "BadRequest", shared_pb2.BadRequest(message=message)
    return grpc.StatusCode.UNKNOWN.value[0], "Unknown", empty_pb2.Empty()
