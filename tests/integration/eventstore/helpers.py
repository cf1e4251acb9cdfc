"""Shared helpers for the event store tests: unique names, raw gRPC access, waiting, a store subprocess."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import grpc
from esdbclient import EventStoreDBClient, NewEvent
from esdbclient.protos.Grpc import shared_pb2, streams_pb2, streams_pb2_grpc

from tests.waiting import GiveUp, wait_until


def new_stream(prefix: str = "test") -> str:
    return f"{prefix}-{uuid.uuid4()}"


def events(n: int, type_: str = "OrderPlaced") -> list[NewEvent]:
    return [NewEvent(type=type_, data=f'{{"n": {i}}}'.encode(), metadata=b'{"source": "test"}') for i in range(n)]


def target(uri: str) -> str:
    """``host:port`` of an ``esdb://`` URI."""
    parsed = urlparse(uri)
    return f"{parsed.hostname}:{parsed.port}"


def raw_stub(uri: str) -> tuple[grpc.Channel, streams_pb2_grpc.StreamsStub]:
    """A plain gRPC Streams stub, for requests esdbclient never sends."""
    channel = grpc.insecure_channel(target(uri))
    return channel, streams_pb2_grpc.StreamsStub(channel)


def stream_id(name: str) -> shared_pb2.StreamIdentifier:
    return shared_pb2.StreamIdentifier(stream_name=name.encode())


def read_all_req(**filter_kwargs: object) -> streams_pb2.ReadReq:
    """A forward ``$all`` read request from the start with the given filter options."""
    options = streams_pb2.ReadReq.Options(
        all=streams_pb2.ReadReq.Options.AllOptions(start=shared_pb2.Empty()),
        read_direction=streams_pb2.ReadReq.Options.Forwards,
        count=1_000_000,
        uuid_option=streams_pb2.ReadReq.Options.UUIDOption(string=shared_pb2.Empty()),
    )
    if filter_kwargs:
        options.filter.CopyFrom(streams_pb2.ReadReq.Options.FilterOptions(**filter_kwargs))  # type: ignore[arg-type]
    else:
        options.no_filter.CopyFrom(shared_pb2.Empty())
    return streams_pb2.ReadReq(options=options)


class Collector:
    """Consumes an iterator on a thread, so a test can wait for what arrives."""

    def __init__(self, iterator: Iterator[object]) -> None:
        self.items: list[object] = []
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, args=(iterator,), daemon=True)
        self._thread.start()

    def _run(self, iterator: Iterator[object]) -> None:
        try:
            for item in iterator:
                with self._cond:
                    self.items.append(item)
                    self._cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            with self._cond:
                self.error = exc
                self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[object]], bool], timeout: float = 10.0) -> float:
        """Wait until ``predicate(items)`` holds; return the seconds waited."""
        started = time.monotonic()
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate(self.items) or self.error is not None, timeout)
        if self.error is not None and not predicate(self.items):
            raise AssertionError(f"iterator failed: {self.error!r}")
        assert ok, f"condition not met within {timeout}s; got {len(self.items)} items"
        return time.monotonic() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StoreSubprocess:
    """``python -m eventstore_lite`` in a subprocess, its log in a file the test can read.

    A subprocess, so a server that hogs the interpreter cannot stall the test measuring it.
    """

    def __init__(self, directory: Path, *args: str, host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.log_path = directory / f"eventstore-{self.port}.log"
        root = Path(__file__).resolve().parents[3]
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "eventstore_lite", "--listen", f"{host}:{self.port}",
                 "--db", str(directory / f"events-{self.port}.sqlite3"), *args],
                env=dict(os.environ, PYTHONPATH=str(root)), stderr=log, stdout=subprocess.DEVNULL,
            )
        self.uri = f"esdb://127.0.0.1:{self.port}?Tls=false"
        client = EventStoreDBClient(self.uri)
        try:
            wait_until(lambda: self._alive() and client.get_commit_position(timeout=1) >= 0, 20,
                       what=f"eventstore_lite on {self.port}")
        finally:
            client.close()

    def _alive(self) -> bool:
        if self.proc.poll() is not None:
            raise GiveUp(f"eventstore_lite exited with {self.proc.returncode}: {self.log()}")
        return True

    def log(self) -> str:
        return self.log_path.read_text()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)


def live_subscription_req() -> streams_pb2.ReadReq:
    """A subscription to ``$all`` from its end, unfiltered (what an idle subscriber holds open)."""
    options = streams_pb2.ReadReq.Options(
        all=streams_pb2.ReadReq.Options.AllOptions(end=shared_pb2.Empty()),
        read_direction=streams_pb2.ReadReq.Options.Forwards,
        subscription=streams_pb2.ReadReq.Options.SubscriptionOptions(),
        uuid_option=streams_pb2.ReadReq.Options.UUIDOption(string=shared_pb2.Empty()),
        no_filter=shared_pb2.Empty(),
    )
    return streams_pb2.ReadReq(options=options)
