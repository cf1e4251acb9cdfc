"""gRPC wiring: generic method handlers for Streams and PersistentSubscriptions.

Handlers are registered by hand (not through the generated ``add_*_to_server``) so
that ``Read`` can stream pre-encoded bytes.  Every handler runs inside a guard that
turns :class:`~eventstore_lite.errors.StoreError` into the RPC status a real server
sends and any other exception into UNKNOWN "Exception was thrown by handler.",
so no client input can crash the server.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any, Callable, Iterator, NoReturn

import grpc
from esdbclient.protos.Grpc import persistent_pb2, streams_pb2

from eventstore_lite.append import Appender
from eventstore_lite.errors import HandlerException, StoreError
from eventstore_lite.read import handle_read
from eventstore_lite.storage import Store

log = logging.getLogger(__name__)

STREAMS_SERVICE = "event_store.client.streams.Streams"
PERSISTENT_SERVICE = "event_store.client.persistent_subscriptions.PersistentSubscriptions"


def _abort(context: grpc.ServicerContext, exc: BaseException, store: Store) -> NoReturn:
    if isinstance(exc, sqlite3.Error) and store.closed:
        context.abort(grpc.StatusCode.UNAVAILABLE, "Server Is Not Ready")
    if not isinstance(exc, StoreError):
        log.exception("unexpected error in handler")
        exc = HandlerException(repr(exc))
    elif isinstance(exc, HandlerException):
        log.warning("rejected request: %s", exc.detail)
    if exc.trailers():
        context.set_trailing_metadata(exc.trailers())
    context.abort(exc.code, exc.message)
    raise AssertionError("context.abort returned")


def _guard_unary(store: Store, fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def handler(request: Any, context: Any) -> Any:
        try:
            return fn(request, context)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            if not context.is_active():
                return None  # the client went away (cancelled, deadline): nothing to answer
            _abort(context, exc, store)

    return handler


def _guard_stream(store: Store, fn: Callable[[Any, Any], Iterator[Any]]) -> Callable[[Any, Any], Iterator[Any]]:
    def handler(request: Any, context: Any) -> Iterator[Any]:
        try:
            yield from fn(request, context)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            if context.is_active():
                _abort(context, exc, store)

    return handler


def _identity(message: bytes) -> bytes:
    return message


def streams_handler(store: Store, appender: Appender) -> grpc.GenericRpcHandler:
    """The ``Streams`` service on ``store``."""

    def read(request: Any, context: Any) -> Iterator[bytes]:
        return handle_read(store, request, context)

    handlers = {
        "Read": grpc.unary_stream_rpc_method_handler(
            _guard_stream(store, read),
            request_deserializer=streams_pb2.ReadReq.FromString,
            response_serializer=_identity,
        ),
        "Append": grpc.stream_unary_rpc_method_handler(
            _guard_unary(store, appender.append),
            request_deserializer=streams_pb2.AppendReq.FromString,
            response_serializer=streams_pb2.AppendResp.SerializeToString,
        ),
        "BatchAppend": grpc.stream_stream_rpc_method_handler(
            _guard_stream(store, appender.batch_append),
            request_deserializer=streams_pb2.BatchAppendReq.FromString,
            response_serializer=streams_pb2.BatchAppendResp.SerializeToString,
        ),
        "Delete": grpc.unary_unary_rpc_method_handler(
            _guard_unary(store, appender.delete),
            request_deserializer=streams_pb2.DeleteReq.FromString,
            response_serializer=streams_pb2.DeleteResp.SerializeToString,
        ),
        "Tombstone": grpc.unary_unary_rpc_method_handler(
            _guard_unary(store, appender.tombstone),
            request_deserializer=streams_pb2.TombstoneReq.FromString,
            response_serializer=streams_pb2.TombstoneResp.SerializeToString,
        ),
    }
    return grpc.method_handlers_generic_handler(STREAMS_SERVICE, handlers)


def persistent_handler() -> grpc.GenericRpcHandler:
    """PersistentSubscriptions with only ``List``, answering NOT_FOUND (none exist)."""

    def list_subscriptions(request: Any, context: Any) -> NoReturn:
        context.abort(grpc.StatusCode.NOT_FOUND, "Subscription group  on stream $all does not exist.")
        raise AssertionError("context.abort returned")

    handlers = {
        "List": grpc.unary_unary_rpc_method_handler(
            list_subscriptions,
            request_deserializer=persistent_pb2.ListReq.FromString,
            response_serializer=persistent_pb2.ListResp.SerializeToString,
        ),
    }
    return grpc.method_handlers_generic_handler(PERSISTENT_SERVICE, handlers)
