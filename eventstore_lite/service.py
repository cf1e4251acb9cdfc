"""gRPC wiring: asyncio method handlers for Streams and PersistentSubscriptions.

The server is ``grpc.aio``: the gRPC work of every call (receiving, decoding,
validating, answering) runs on one event loop, with no thread hand-off per
message.  Appends go to the group commit's committer thread (two hand-offs per
group, see :mod:`eventstore_lite.group`); the rest of the storage work is
blocking (reads, deletes) and runs on the worker threads of ``executor``: one
hand-off per call, and per *chunk* of a read's messages.  A subscription waiting for
new events waits on the loop and holds no thread (see :mod:`eventstore_lite.live`),
so the pool only ever runs short tasks.  Once woken, a live ``$all`` subscription whose
new events are all in memory and need no timed filter match takes them on the loop
itself (:meth:`~eventstore_lite.read.Wait.ready`): the hand-off to a worker and back
would cost two thread switches per commit, each waiting for the interpreter behind
the loop's own work, and that wait was most of a live event's delivery time.  Calls are bounded: at most ``subscriptions``
subscriptions and ``calls`` other calls at a time, the next one refused with
RESOURCE_EXHAUSTED naming the limit (:class:`Slots`).

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
from concurrent.futures import Executor
from typing import Any, AsyncIterator, Callable, Iterator, NoReturn, TypeVar

import grpc
from esdbclient.protos.Grpc import persistent_pb2, streams_pb2

from eventstore_lite.append import Appender
from eventstore_lite.errors import HandlerException, LimitReached, StoreError
from eventstore_lite.read import Message, Pause, Wait, handle_read
from eventstore_lite.storage import Store

log = logging.getLogger(__name__)

STREAMS_SERVICE = "event_store.client.streams.Streams"
PERSISTENT_SERVICE = "event_store.client.persistent_subscriptions.PersistentSubscriptions"
READ_CHUNK = 256  # messages a read produces on a worker thread per hand-off to the loop
SCAN_PAGES = 8  # pages of $all a read may scan on a worker thread per hand-off (a filter may match nothing)

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


def _take(messages: Iterator[Message], limit: int, pages: int = SCAN_PAGES) -> tuple[list[bytes], Wait | None, bool]:
    """Up to ``limit`` messages, fewer if the read is to wait for new events or has scanned ``pages``
    pages; the wait (or None), and whether the read ended."""
    chunk: list[bytes] = []
    for message in messages:
        if isinstance(message, Wait):
            return chunk, message, False
        if isinstance(message, Pause):
            pages -= 1
            if pages <= 0:
                return chunk, None, False
            continue
        chunk.append(message)
        if len(chunk) >= limit:
            return chunk, None, False
    return chunk, None, True


class Slots:
    """A bound on concurrent calls of one kind; beyond it a call is refused with
    RESOURCE_EXHAUSTED naming the limit and its setting.  Used on the event loop only."""

    def __init__(self, limit: int, what: str, option: str) -> None:
        self.limit, self.what, self.option = limit, what, option
        self.used = 0

    def take(self) -> None:
        if self.used >= self.limit:
            raise LimitReached(self.what, self.limit, self.option)
        self.used += 1

    def give_back(self) -> None:
        self.used -= 1


class _Handlers:
    """The RPCs of the Streams service on ``store``, storage work on ``executor``."""

    def __init__(self, store: Store, appender: Appender, executor: Executor, calls: Slots, subscriptions: Slots) -> None:
        self.store, self.appender, self.executor = store, appender, executor
        self.calls, self.subscriptions = calls, subscriptions

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def read(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[bytes]:
        subscription = request.options.WhichOneof("count_option") == "subscription"
        slots = self.subscriptions if subscription else self.calls
        try:
            slots.take()
        except LimitReached as exc:
            await _abort(context, exc, self.store)
        reader = object()  # this subscription, to the store's live readers
        try:
            messages = await self._run(handle_read, self.store, request)  # compiles a filter: off the loop
            wait: Wait | None = None
            while True:
                if wait is not None and wait.ready():  # new events in memory, filter answers known
                    chunk, wait, ended = _take(messages, READ_CHUNK, pages=1)
                else:
                    chunk, wait, ended = await self._run(_take, messages, READ_CHUNK)
                for message in chunk:
                    yield message
                if ended or (wait is not None and not await self.store.wait_beyond(wait.position, reader)):
                    return
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            if not context.done():
                await _abort(context, exc, self.store)
        finally:
            slots.give_back()

    async def append(self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            self.calls.take()
        except LimitReached as exc:
            await _abort(context, exc, self.store)
        try:
            return await self.appender.append(requests)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            if not context.cancelled():
                await _abort(context, exc, self.store)
            return None
        finally:
            self.calls.give_back()

    async def batch_append(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        try:
            self.calls.take()
        except LimitReached as exc:
            await _abort(context, exc, self.store)
        pending: dict[bytes, Any] = {}
        try:
            async for request in requests:
                response = await self.appender.batch_step(pending, request)
                if response is not None:
                    yield response
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            if not context.cancelled():
                await _abort(context, exc, self.store)
        finally:
            self.calls.give_back()

    def unary(self, fn: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
        async def handler(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                self.calls.take()
            except LimitReached as exc:
                await _abort(context, exc, self.store)
            try:
                return await self._run(fn, request)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a status
                if not context.cancelled():
                    await _abort(context, exc, self.store)
                return None
            finally:
                self.calls.give_back()

        return handler


def _identity(message: bytes) -> bytes:
    return message


def streams_handler(
    store: Store, appender: Appender, executor: Executor, calls: Slots, subscriptions: Slots
) -> grpc.GenericRpcHandler:
    """The ``Streams`` service on ``store``; blocking storage work runs on ``executor``; at most
    ``subscriptions`` subscriptions and ``calls`` other calls at a time."""
    rpc = _Handlers(store, appender, executor, calls, subscriptions)
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
