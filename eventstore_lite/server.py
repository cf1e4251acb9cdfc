"""``EventStoreServer``: the embedded store's public entry point.

>>> srv = EventStoreServer("/tmp/events.sqlite3")   # port 0 picks a free port
>>> srv.start(); srv.uri                             # 'esdb://127.0.0.1:<port>?Tls=false'
>>> srv.stop()

``start`` returns once the port is bound and the database open; ``stop`` ends all
RPCs (after ``grace`` seconds), waits for handler threads, then closes SQLite.
The gRPC server is ``grpc.aio`` on an event loop in a thread of its own
(see :mod:`eventstore_lite.service`), so callers stay synchronous.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

import grpc

from eventstore_lite.append import Appender
from eventstore_lite.service import persistent_handler, streams_handler
from eventstore_lite.storage import Store
from eventstore_lite.stream_writer import Writer

log = logging.getLogger(__name__)

DEFAULT_MAX_APPEND_SIZE = 1024 * 1024  # the server's default MaxAppendSize
MAX_MESSAGE_SIZE = 17 * 1024 * 1024  # a little over the server's 16 MiB record limit
DEFAULT_WORKERS = 256  # each subscription waiting for events holds one thread; more work queues


class EventStoreServer:
    """An EventStoreDB-protocol gRPC server storing events in SQLite at ``db_path``."""

    def __init__(
        self,
        db_path: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_append_size: int = DEFAULT_MAX_APPEND_SIZE,
        max_workers: int = DEFAULT_WORKERS,
    ) -> None:
        self.db_path = db_path
        self.host = host
        self._requested_port = port
        self.max_append_size = max_append_size
        self.max_workers = max_workers
        self._port: int | None = None
        self._server: grpc.aio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: Writer | None = None
        self._thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._store: Store | None = None

    @property
    def port(self) -> int:
        """The bound port (only after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("EventStoreServer is not started; call start() first")
        return self._port

    @property
    def uri(self) -> str:
        """An esdbclient connection string for this server."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"esdb://{host}:{self.port}?Tls=false"

    def start(self) -> None:
        """Open the database and start listening; raise OSError if the port is taken."""
        if self._server is not None:
            raise RuntimeError("EventStoreServer is already started")
        store = Store(self.db_path)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="eventstore_lite-grpc", daemon=True)
        thread.start()
        executor = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="eventstore_lite")
        writer: Writer | None = None
        try:
            writer = Writer(store)
            writer.ensure_system_events()
            appender = Appender(writer, self.max_append_size)
            server, port = asyncio.run_coroutine_threadsafe(self._serve(store, appender, executor), loop).result()
        except BaseException:
            if writer is not None:
                writer.close()
            store.shutdown()
            executor.shutdown(wait=False)
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
            store.close()
            raise
        self._store, self._executor, self._server, self._port = store, executor, server, port
        self._loop, self._thread, self._writer = loop, thread, writer
        log.debug("eventstore_lite started on %s:%s", self.host, port)

    async def _serve(self, store: Store, appender: Appender, executor: ThreadPoolExecutor) -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server(
            handlers=[streams_handler(store, appender, executor), persistent_handler()],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_SIZE),
                ("grpc.so_reuseport", 0),
            ],
        )
        port = self._bind(server)
        await server.start()
        return server, port

    def _bind(self, server: grpc.aio.Server) -> int:
        address = f"[{self.host}]:{self._requested_port}" if ":" in self.host else f"{self.host}:{self._requested_port}"
        try:
            port = int(server.add_insecure_port(address))
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {address}: {exc}") from None
        if port == 0:
            raise OSError(f"cannot listen on {address}: address in use or unavailable")
        return port

    def stop(self, grace: float | None = 1.0) -> None:
        """Stop serving, wait for handlers to finish, close SQLite.  Idempotent."""
        server, store, executor = self._server, self._store, self._executor
        loop, thread = self._loop, self._thread
        if server is None or store is None or executor is None or loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(server.stop(grace), loop).result()
        if self._writer is not None:
            self._writer.close()
        store.shutdown()
        executor.shutdown(wait=True, cancel_futures=True)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        store.close()
        self._server = self._store = self._executor = None
        self._loop = self._thread = self._writer = None

    def __enter__(self) -> EventStoreServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
