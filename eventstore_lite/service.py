"""gRPC wiring: asyncio method handlers for Streams and PersistentSubscriptions.

The server is ``grpc.aio``: the gRPC work of every call (receiving, decoding,
validating, answering) runs on one event loop, with no thread hand-off per
message.  Appends go to the group commit's committer thread (two hand-offs per
group, see :mod:`eventstore_lite.group`); the rest of the storage work is
blocking (reads, deletes, waiting for live events) and runs on the worker threads
of ``executor``: one hand-off per call, and per *chunk* of a read's messages.

Handlers are registered by hand (not through the generated ``add_*_to_server``) so
that ``Read`` can stream pre-encoded bytes.  Every handler turns
:class:`~eventstore_lite.errors.StoreError` into the RPC status a real server
sends and any other exception into UNKNOWN "Exception was thrown by handler.",
so no client input can crash the server.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from concurrent.futures import Executor
from typing import Any, AsyncIterator, Callable, Iterator, NoReturn, TypeVar

import grpc
from esdbclient.protos.Grpc import persistent_pb2, streams_pb2

from eventstore_lite.append import Appender
from eventstore_lite.errors import HandlerException, StoreError
from eventstore_lite.read import WAIT, handle_read
from eventstore_lite.storage import Store

log = logging.getLogger(__name__)

STREAMS_SERVICE = "event_store.client.streams.Streams"
PERSISTENT_SERVICE = "event_store.client.persistent_subscriptions.PersistentSubscriptions"
READ_CHUNK = 256  # messages a read produces on a worker thread per hand-off to the loop

T = TypeVar("T")


async def _abort(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException, store: Store) -> NoReturn:
    if isinstance(exc, sqlite3.Error) and store.closed:
        await context.abort(grpc.StatusCode.UNAVAILABLE, "Server Is Not Ready")
    if not isinstance(exc, StoreError):
        log.error("unexpected error in handler", exc_info=exc)
        exc = HandlerException(repr(exc))
    elif isinstance(exc, HandlerException):
        log.warning("rejected request: %s", exc.detail)
    if exc.trailers():
        context.set_trailing_metadata(exc.trailers())
    await context.abort(exc.code, exc.message)
    raise AssertionError("context.abort returned")


class _Liveness:
    """A read's view of its RPC (see :class:`eventstore_lite.read.Liveness`); its identity is the
    subscription's, whichever worker thread runs it."""

    def __init__(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self._ended = threading.Event()
        self._callbacks: list[Callable[[], None]] = []
        context.add_done_callback(self._on_done)

    def _on_done(self, context: object) -> None:
        self._ended.set()
        for callback in self._callbacks:
            callback()

    def is_active(self) -> bool:
        return not self._ended.is_set()

    def add_callback(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)


def _take(messages: Iterator[bytes | None], limit: int) -> tuple[list[bytes], bool]:
    """Up to ``limit`` messages, fewer if the read is about to wait; and whether it ended."""
    chunk: list[bytes] = []
    for message in messages:
        if message is WAIT:
            if chunk:
                return chunk, False
            continue
        chunk.append(message)
        if len(chunk) >= limit:
            return chunk, False
    return chunk, True


class _Handlers:
    """The RPCs of the Streams service on ``store``, storage work on ``executor``."""

    def __init__(self, store: Store, appender: Appender, executor: Executor) -> None:
        self.store, self.appender, self.executor = store, appender, executor

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def read(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[bytes]:
        liveness = _Liveness(context)
        try:
            messages = handle_read(self.store, request, liveness)
            ended = False
            while not ended:
                chunk, ended = await self._run(_take, messages, READ_CHUNK)
                for message in chunk:
                    yield message
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            if liveness.is_active():
                await _abort(context, exc, self.store)

    async def append(self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            received = [request async for request in requests]
            return await self.appender.append(iter(received))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            if not context.cancelled():
                await _abort(context, exc, self.store)
            return None

    async def batch_append(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        pending: dict[bytes, Any] = {}
        try:
            async for request in requests:
                response = await self.appender.batch_step(pending, request)
                if response is not None:
                    yield response
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            if not context.cancelled():
                await _abort(context, exc, self.store)

    def unary(self, fn: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
        async def handler(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                return await self._run(fn, request)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a status
                if not context.cancelled():
                    await _abort(context, exc, self.store)
                return None

        return handler


def _identity(message: bytes) -> bytes:
    return message


def streams_handler(store: Store, appender: Appender, executor: Executor) -> grpc.GenericRpcHandler:
    """The ``Streams`` service on ``store``; blocking storage work runs on ``executor``."""
    rpc = _Handlers(store, appender, executor)
    handlers = {
        "Read": grpc.unary_stream_rpc_method_handler(
            rpc.read,
            request_deserializer=streams_pb2.ReadReq.FromString,
            response_serializer=_identity,
        ),
        "Append": grpc.stream_unary_rpc_method_handler(
            rpc.append,
            request_deserializer=streams_pb2.AppendReq.FromString,
            response_serializer=streams_pb2.AppendResp.SerializeToString,
        ),
        "BatchAppend": grpc.stream_stream_rpc_method_handler(
            rpc.batch_append,
            request_deserializer=streams_pb2.BatchAppendReq.FromString,
            response_serializer=streams_pb2.BatchAppendResp.SerializeToString,
        ),
        "Delete": grpc.unary_unary_rpc_method_handler(
            rpc.unary(appender.delete),
            request_deserializer=streams_pb2.DeleteReq.FromString,
            response_serializer=streams_pb2.DeleteResp.SerializeToString,
        ),
        "Tombstone": grpc.unary_unary_rpc_method_handler(
            rpc.unary(appender.tombstone),
            request_deserializer=streams_pb2.TombstoneReq.FromString,
            response_serializer=streams_pb2.TombstoneResp.SerializeToString,
        ),
    }
    return grpc.method_handlers_generic_handler(STREAMS_SERVICE, handlers)


def persistent_handler() -> grpc.GenericRpcHandler:
    """PersistentSubscriptions with only ``List``, answering NOT_FOUND (none exist)."""

    async def list_subscriptions(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> NoReturn:
        await context.abort(grpc.StatusCode.NOT_FOUND, "Subscription group  on stream $all does not exist.")
        raise AssertionError("context.abort returned")

    handlers = {
        "List": grpc.unary_unary_rpc_method_handler(
            list_subscriptions,
            request_deserializer=persistent_pb2.ListReq.FromString,
            response_serializer=persistent_pb2.ListResp.SerializeToString,
        ),
    }
    return grpc.method_handlers_generic_handler(PERSISTENT_SERVICE, handlers)
