"""Concurrent appends from many clients keep every stream's order and every answer exact."""
from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import WrongCurrentVersion

APPENDS_PER_WRITER = 25


def event(n: int) -> NewEvent:
    return NewEvent(type="Tick", data=b'{"n": %d}' % n, id=uuid.uuid4())


def test_concurrent_single_appends_from_many_clients(eventstore_uri: str) -> None:
    run = uuid.uuid4().hex[:8]
    clients = [EventStoreDBClient(eventstore_uri) for _ in range(12)]
    shared = f"shared-{run}"

    def writer(i: int) -> list[int]:
        own = f"own-{run}-{i}"
        positions = []
        for n in range(APPENDS_PER_WRITER):
            positions.append(clients[i].append_to_stream(own, current_version=StreamState.ANY, events=event(n)))
            positions.append(clients[i].append_to_stream(shared, current_version=StreamState.ANY, events=event(n)))
        return positions

    with ThreadPoolExecutor(len(clients)) as pool:
        results = list(pool.map(writer, range(len(clients))))
    reader = clients[0]
    for i, positions in enumerate(results):
        assert positions == sorted(positions), "a client's successive appends get increasing positions"
        own = reader.get_stream(f"own-{run}-{i}")
        assert [e.stream_position for e in own] == list(range(APPENDS_PER_WRITER))
        assert [int(e.data[6:-1]) for e in own] == list(range(APPENDS_PER_WRITER))
    shared_events = reader.get_stream(shared)
    assert [e.stream_position for e in shared_events] == list(range(len(clients) * APPENDS_PER_WRITER))
    every = [p for positions in results for p in positions]
    assert len(set(every)) == len(every), "every append has its own position"
    for client in clients:
        client.close()


def test_concurrent_exact_version_appends_let_exactly_one_win(eventstore_uri: str) -> None:
    stream = f"race-{uuid.uuid4().hex[:8]}"
    clients = [EventStoreDBClient(eventstore_uri) for _ in range(8)]
    start = threading.Barrier(len(clients))
    outcomes: list[str] = []

    def contender(i: int) -> None:
        start.wait()
        try:
            clients[i].append_to_stream(stream, current_version=StreamState.NO_STREAM, events=event(i))
            outcomes.append("won")
        except WrongCurrentVersion:
            outcomes.append("lost")

    with ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(contender, range(len(clients))))
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]
    assert len(clients[0].get_stream(stream)) == 1
    for client in clients:
        client.close()
