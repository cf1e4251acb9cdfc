"""``EventStoreServer``: the embedded store's public entry point.

>>> srv = EventStoreServer("/tmp/events.sqlite3")   # port 0 picks a free port
>>> srv.start(); srv.uri                             # 'esdb://127.0.0.1:<port>?Tls=false'
>>> srv.stop()

``start`` returns once the port is bound and the database open; ``stop`` ends all
RPCs (after ``grace`` seconds), waits for handler threads, then closes SQLite.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

import grpc

from eventstore_lite.append import Appender
from eventstore_lite.service import persistent_handler, streams_handler
from eventstore_lite.storage import Store
from eventstore_lite.writer import Writer

log = logging.getLogger(__name__)

DEFAULT_MAX_APPEND_SIZE = 1024 * 1024  # the server's default MaxAppendSize
MAX_MESSAGE_SIZE = 17 * 1024 * 1024  # a little over the server's 16 MiB record limit
DEFAULT_WORKERS = 256  # each open subscription holds one thread; more RPCs queue


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
        self._server: grpc.Server | None = None
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
        try:
            writer = Writer(store)
            writer.ensure_system_events()
            executor = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="eventstore_lite")
            server = grpc.server(
                executor,
                handlers=[streams_handler(store, Appender(writer, self.max_append_size)), persistent_handler()],
                options=[
                    ("grpc.max_receive_message_length", MAX_MESSAGE_SIZE),
                    ("grpc.so_reuseport", 0),
                ],
            )
            port = self._bind(server)
        except BaseException:
            store.shutdown()
            store.close()
            raise
        server.start()
        self._store, self._executor, self._server, self._port = store, executor, server, port
        log.debug("eventstore_lite started on %s:%s", self.host, port)

    def _bind(self, server: grpc.Server) -> int:
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
        if server is None or store is None or executor is None:
            return
        server.stop(grace).wait()
        store.shutdown()
        executor.shutdown(wait=True, cancel_futures=True)
        store.close()
        self._server = self._store = self._executor = None

    def __enter__(self) -> EventStoreServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
