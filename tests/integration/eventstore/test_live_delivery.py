"""Concurrent single appends over gRPC and live delivery to subscriptions.

Each acknowledged append names the position its event is stored at; a live
subscription gets every event in order; a subscriber that stops reading cannot
hold appends back (the writer's wait for live delivery is bounded).
"""
from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.events import RecordedEvent

from .helpers import Collector, live_subscription_req, raw_stub

WRITERS = 16
APPENDS_PER_WRITER = 20


def test_concurrent_single_appends_are_acknowledged_with_their_stored_positions(
    esdb_client: EventStoreDBClient, eventstore_uri: str
) -> None:
    run = uuid.uuid4().hex[:8]
    start = esdb_client.get_commit_position(filter_exclude=[])
    live = Collector(iter(esdb_client.subscribe_to_all(commit_position=start, filter_include=[f"Tick{run}"])))
    clients = [EventStoreDBClient(eventstore_uri) for _ in range(WRITERS)]
    go = threading.Barrier(WRITERS)

    def writer(i: int) -> list[tuple[uuid.UUID, int]]:
        go.wait()
        acks = []
        for n in range(APPENDS_PER_WRITER):
            event = NewEvent(type=f"Tick{run}", data=b'{"n": %d}' % n)
            position = clients[i].append_to_stream(f"tick-{run}-{i % 4}", current_version=StreamState.ANY, events=[event])
            acks.append((event.id, position))
        return acks

    try:
        with ThreadPoolExecutor(WRITERS) as pool:
            acks = [ack for acked in pool.map(writer, range(WRITERS)) for ack in acked]
    finally:
        for client in clients:
            client.close()
    total = WRITERS * APPENDS_PER_WRITER
    live.wait_for(lambda items: len(items) >= total)

    stored = {e.id: e.commit_position for e in esdb_client.read_all(commit_position=start, filter_include=[f"Tick{run}"])}
    assert dict(acks) == stored, "every acknowledged position is where that event is stored"
    assert len(set(stored.values())) == total
    received = [i for i in live.items if isinstance(i, RecordedEvent)]
    assert [e.id for e in received] == sorted(stored, key=lambda i: stored[i]), "live delivery in $all order"
    for stream in range(4):
        revisions = [e.stream_position for e in esdb_client.get_stream(f"tick-{run}-{stream}")]
        assert revisions == list(range(len(revisions)))


def test_a_subscriber_that_stops_reading_does_not_hold_appends_back(
    esdb_client: EventStoreDBClient, eventstore_uri: str
) -> None:
    channel, stub = raw_stub(eventstore_uri)
    stalled = stub.Read(live_subscription_req())
    try:
        assert next(stalled).HasField("confirmation")  # then never read again
        stream = f"big-{uuid.uuid4().hex[:8]}"
        payload = b'{"blob": "' + b"x" * 256 * 1024 + b'"}'
        started = time.monotonic()
        for n in range(64):  # 16 MiB: far more than the stalled reader's flow-control window
            esdb_client.append_to_stream(stream, current_version=StreamState.ANY,
                                         events=[NewEvent(type="Big", data=payload)], timeout=10)
        assert time.monotonic() - started < 30
        assert esdb_client.get_current_version(stream) == 63
    finally:
        stalled.cancel()
        channel.close()
