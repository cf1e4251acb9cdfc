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
import ipaddress
import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

import grpc

from eventstore_lite.append import Appender
from eventstore_lite.service import Slots, persistent_handler, streams_handler
from eventstore_lite.storage import Store
from eventstore_lite.stream_writer import Writer
from eventstore_lite.trace import Trace

log = logging.getLogger(__name__)

DEFAULT_MAX_APPEND_SIZE = 1024 * 1024  # the server's default MaxAppendSize
MAX_MESSAGE_SIZE = 17 * 1024 * 1024  # a little over the server's 16 MiB record limit
DEFAULT_WORKERS = 32  # threads for SQLite work (short tasks: nothing waits on one); more work queues
DEFAULT_MAX_SUBSCRIPTIONS = 1000  # concurrent subscriptions (each idle one costs memory, no thread)
DEFAULT_MAX_CALLS = 256  # concurrent calls other than subscriptions
DEFAULT_MAX_APPEND_EVENTS = 10_000  # events in one append or batch (the byte limit alone lets empty events through)
DEFAULT_MAX_OPEN_BATCHES = 16  # unfinished batches in one BatchAppend call (each up to the append size)
DEFAULT_KEEPALIVE_S = 30.0  # ping each connection this often; a peer that does not answer is dropped
KEEPALIVE_TIMEOUT_MS = 10_000  # how long a ping may go unanswered
MAX_CONNECTION_IDLE_MS = 30 * 60 * 1000  # a connection without calls this long is closed (GOAWAY)
MIN_CLIENT_PING_INTERVAL_MS = 5_000  # clients' own keepalive may ping this often (others get GOAWAY)


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
        max_subscriptions: int = DEFAULT_MAX_SUBSCRIPTIONS,
        max_calls: int = DEFAULT_MAX_CALLS,
        max_open_batches: int = DEFAULT_MAX_OPEN_BATCHES,
        max_append_events: int = DEFAULT_MAX_APPEND_EVENTS,
        keepalive_s: float = DEFAULT_KEEPALIVE_S,
        trace_path: str | None = None,
    ) -> None:
        """``trace_path``: a file the append path's timings are written to (benchmarks; see
        :mod:`eventstore_lite.trace`); None, the default, records nothing."""
        self.db_path = db_path
        self.host = host
        self._requested_port = port
        self.max_append_size = max_append_size
        self.max_workers = max_workers
        self.max_subscriptions = max_subscriptions
        self.max_calls = max_calls
        self.max_open_batches = max_open_batches
        self.max_append_events = max_append_events
        self.keepalive_s = keepalive_s
        self.trace_path = trace_path
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
        store = Store(self.db_path, Trace(self.trace_path) if self.trace_path else None)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="eventstore_lite-grpc", daemon=True)
        thread.start()
        executor = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="eventstore_lite")
        writer: Writer | None = None
        try:
            writer = Writer(store)
            writer.ensure_system_events()
            appender = Appender(writer, self.max_append_size, self.max_open_batches, self.max_append_events)
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
        if not is_loopback(self.host):
            log.warning(
                "eventstore_lite is listening on %s:%s, which is not a loopback address: the store has "
                "no authentication and no TLS, so whoever reaches this port can read, append, delete and "
                "tombstone every stream. Listen on 127.0.0.1 unless a firewall or an authenticating "
                "TLS proxy stands in front of it.", self.host, port,
            )

    async def _serve(self, store: Store, appender: Appender, executor: ThreadPoolExecutor) -> tuple[grpc.aio.Server, int]:
        calls = Slots(self.max_calls, "concurrent calls", "--max-calls")
        subscriptions = Slots(self.max_subscriptions, "concurrent subscriptions", "--max-subscriptions")
        server = grpc.aio.server(
            handlers=[streams_handler(store, appender, executor, calls, subscriptions), persistent_handler()],
            options=self._grpc_options(),
            # a backstop beneath the limits above, which refuse first with a clearer message
            maximum_concurrent_rpcs=self.max_calls + self.max_subscriptions + 16,
        )
        port = self._bind(server)
        await server.start()
        return server, port

    def _grpc_options(self) -> list[tuple[str, int]]:
        """Message size, and keepalive: every connection is pinged (idle subscriptions send no
        data for hours, so pings without data are unlimited) and a peer that stops answering is
        dropped with its calls; a connection without calls is closed after a while."""
        return [
            ("grpc.max_receive_message_length", MAX_MESSAGE_SIZE),
            ("grpc.so_reuseport", 0),
            ("grpc.keepalive_time_ms", int(self.keepalive_s * 1000)),
            ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.http2.min_ping_interval_without_data_ms", MIN_CLIENT_PING_INTERVAL_MS),
            ("grpc.max_connection_idle_ms", MAX_CONNECTION_IDLE_MS),
        ]

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


def is_loopback(host: str) -> bool:
    """True when ``host`` (an address or a name) is reachable only from this machine."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses)
