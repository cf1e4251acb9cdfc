"""A read of ``$all`` holds no worker for long: a filter is compiled on a worker thread, not on the event
loop, and a filter that matches nothing hands its worker back every few pages instead of scanning the
whole store in one go."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from esdbclient import EventStoreDBClient, StreamState
from esdbclient.protos.Grpc import streams_pb2

from eventstore_lite import read, service
from eventstore_lite.server import EventStoreServer
from eventstore_lite.storage import PAGE_SIZE

from .helpers import events, new_stream, read_all_req

PAGES = 12  # more pages than one hand-off may scan


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventStoreServer]:
    path = tmp_path_factory.mktemp("scans") / "events.sqlite3"
    with EventStoreServer(str(path)) as srv:
        client = EventStoreDBClient(srv.uri)
        try:
            for _ in range(PAGES):
                client.append_to_stream(new_stream("scan"), current_version=StreamState.NO_STREAM, events=events(PAGE_SIZE))
        finally:
            client.close()
        yield srv


class CountingStore:
    """The server's store, counting the pages of ``$all`` read through it."""

    def __init__(self, store: Any) -> None:
        self.store, self.pages = store, 0

    def all_page(self, *args: Any) -> Any:
        self.pages += 1
        return self.store.all_page(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def nothing() -> streams_pb2.ReadReq:
    expression = streams_pb2.ReadReq.Options.FilterOptions.Expression(regex="^NoSuchType$")
    return read_all_req(event_type=expression, max=32, checkpointIntervalMultiplier=1)


def test_a_filter_matching_nothing_scans_a_few_pages_per_hand_off_not_the_whole_store(server: EventStoreServer) -> None:
    store = CountingStore(server._store)
    messages = read.handle_read(store, nothing())  # type: ignore[arg-type]

    chunk, wait, ended = service._take(messages, service.READ_CHUNK)

    assert (chunk, wait, ended) == ([], None, False)  # handed back, not finished
    assert store.pages == service.SCAN_PAGES < PAGES
    hand_offs = 1
    while not ended:
        chunk, wait, ended = service._take(messages, service.READ_CHUNK)
        hand_offs += 1
    assert chunk == [] and store.pages > PAGES and hand_offs > 1  # the whole store, over several hand-offs


def test_a_filtered_read_compiles_its_filter_off_the_event_loop(server: EventStoreServer, monkeypatch) -> None:
    threads: list[str] = []
    compile_regex = read.build_filter.__globals__["compile_regex"]

    def recording(pattern: str) -> Any:
        threads.append(threading.current_thread().name)
        return compile_regex(pattern)

    monkeypatch.setitem(read.build_filter.__globals__, "compile_regex", recording)
    client = EventStoreDBClient(server.uri)
    try:
        assert list(client.read_all(filter_include=["NoSuchType"], timeout=30)) == []
    finally:
        client.close()
    assert threads and "eventstore_lite-grpc" not in threads  # the loop's thread
