"""Errors the store raises, each knowing the gRPC status a real server would send.

Messages copy EventStoreDB's (``RpcExceptions.cs``) because esdbclient matches on
their text: "is deleted", "WrongExpectedVersion", "Actual version: -1".
"""

from __future__ import annotations

import grpc

ANY = -2
NO_STREAM = -1
STREAM_EXISTS = -4


class StoreError(Exception):
    """Base class: ``code`` and ``message`` are what the RPC fails with."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def trailers(self) -> tuple[tuple[str, str], ...]:
        """Trailing metadata the real server attaches (``exception`` key etc.)."""
        return ()


class StreamDeleted(StoreError):
    """The stream is tombstoned (or soft-deleted where the operation forbids it)."""

    code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, stream: str) -> None:
        super().__init__(f"Event stream '{stream}' is deleted.")
        self.stream = stream

    def trailers(self) -> tuple[tuple[str, str], ...]:
        return (("exception", "stream-deleted"), ("stream-name", self.stream))


class WrongExpectedVersion(StoreError):
    """The expected version did not hold; ``actual`` is the stream's last revision.

    ``actual`` is -1 when the stream has no events.
    """

    code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, stream: str, expected: int, actual: int, op: str = "Append") -> None:
        super().__init__(
            f"{op} failed due to WrongExpectedVersion. Stream: {stream}, "
            f"Expected version: {expected}, Actual version: {actual}"
        )
        self.stream = stream
        self.expected = expected
        self.actual = actual

    def trailers(self) -> tuple[tuple[str, str], ...]:
        return (
            ("exception", "wrong-expected-version"),
            ("stream-name", self.stream),
            ("expected-version", str(self.expected)),
            ("actual-version", str(self.actual)),
        )


class MaxAppendSizeExceeded(StoreError):
    """The events of one append add up to more than the configured maximum."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, max_size: int) -> None:
        super().__init__(f"Maximum Append Size of {max_size} Exceeded.")
        self.max_size = max_size

    def trailers(self) -> tuple[tuple[str, str], ...]:
        return (
            ("exception", "maximum-append-size-exceeded"),
            ("maximum-append-size", str(self.max_size)),
        )


class BadRequest(StoreError):
    """A malformed request the real server rejects with INVALID_ARGUMENT."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class LimitReached(StoreError):
    """A limit of this store (not of EventStoreDB) refused the request; the message names
    the limit and the option and environment variable that set it."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, what: str, limit: int, option: str) -> None:
        env = "EVENTSTORE_LITE_" + option.removeprefix("--").replace("-", "_").upper()
        super().__init__(
            f"Too many {what}: the limit of {limit} {what} is reached "
            f"(raise it with eventstore_lite {option} or {env})."
        )


class HandlerException(StoreError):
    """What ASP.NET gRPC answers for an unhandled exception in the real server.

    ``detail`` is logged, never sent: the real server does not send it either.
    """

    code = grpc.StatusCode.UNKNOWN

    def __init__(self, detail: str) -> None:
        super().__init__("Exception was thrown by handler.")
        self.detail = detail


def missing_metadata(name: str) -> BadRequest:
    """The error for a proposed event lacking a required metadata key."""
    return BadRequest(f"Required Metadata Property '{name}' is missing")


def invalid_oneof(type_name: str) -> BadRequest:
    """The error for an unset expected-revision oneof (``RpcExceptions.InvalidArgument``)."""
    return BadRequest(f"'None' is not a valid {type_name}")
