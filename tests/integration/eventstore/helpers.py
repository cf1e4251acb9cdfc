"""Shared helpers for the event store tests: unique names, raw gRPC access, waiting."""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlparse

import grpc
from esdbclient import NewEvent
from esdbclient.protos.Grpc import shared_pb2, streams_pb2, streams_pb2_grpc


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
