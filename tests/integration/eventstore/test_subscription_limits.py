"""Idle subscriptions cost no worker thread, and there is a clear bound on how many may be open.

Before, each subscription waiting for events held a thread of the 256-thread pool: 256 idle
subscribers stalled every read, the projector's included.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import grpc
import pytest
from esdbclient import EventStoreDBClient, StreamState
from esdbclient.events import RecordedEvent
from esdbclient.exceptions import GrpcError

from eventstore_lite.server import EventStoreServer
from tests.waiting import wait_until

from .helpers import Collector, events, live_subscription_req, new_stream, raw_stub

IDLE = 300


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EventStoreServer]:
    with EventStoreServer(str(tmp_path / "events.sqlite3")) as srv:  # the default limits
        yield srv


def test_300_idle_subscriptions_leave_reads_and_new_subscriptions_answering(server: EventStoreServer) -> None:
    channels = [raw_stub(server.uri) for _ in range(4)]
    calls = [channels[i % 4][1].Read(live_subscription_req()) for i in range(IDLE)]
    client = EventStoreDBClient(server.uri)
    pool = ThreadPoolExecutor(32)
    try:
        firsts = [pool.submit(next, call) for call in calls]
        done, _ = wait(firsts, timeout=30)
        assert len(done) == IDLE, f"only {len(done)} of {IDLE} subscriptions were confirmed"
        assert all(f.result().HasField("confirmation") for f in firsts)

        started = time.monotonic()
        assert list(client.read_all(limit=10, filter_exclude=[], timeout=2))
        client.get_commit_position(timeout=2)
        assert time.monotonic() - started < 2

        live = Collector(iter(client.subscribe_to_all(from_end=True, timeout=10)))
        stream = new_stream("after-idle")
        started = time.monotonic()
        client.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=events(1), timeout=2)
        live.wait_for(lambda items: any(isinstance(i, RecordedEvent) and i.stream_name == stream for i in items),
                      timeout=2)
        assert time.monotonic() - started < 2
    finally:
        for call in calls:
            call.cancel()  # also ends a wait for a confirmation that never came
        pool.shutdown()
        for channel, _ in channels:
            channel.close()
        client.close()


def test_a_subscription_over_the_limit_is_refused_naming_the_limit(tmp_path: Path) -> None:
    with EventStoreServer(str(tmp_path / "events.sqlite3"), max_subscriptions=2) as server:
        client = EventStoreDBClient(server.uri)
        held = [client.subscribe_to_all(from_end=True) for _ in range(2)]
        try:
            with pytest.raises(GrpcError) as refused:
                client.subscribe_to_all(from_end=True)
            error = refused.value.args[0]
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "2 concurrent subscriptions" in error.details()
            assert "--max-subscriptions" in error.details()
            assert "EVENTSTORE_LITE_MAX_SUBSCRIPTIONS" in error.details()

            assert list(client.read_all(limit=1, filter_exclude=[], timeout=2)), "plain reads are not subscriptions"
            held.pop().stop()
            held.append(wait_until(lambda: client.subscribe_to_all(from_end=True), 10,
                                   what="a subscription slot freed by the one stopped"))
        finally:
            for subscription in held:
                subscription.stop()
            client.close()
