"""A live ``$all`` subscription's step on the event loop, and the append path's trace.

Once woken, a subscription whose new events are in memory and whose filter already knows its
answers takes them on the loop (no worker hand-off); a name its regex has not met yet is matched
on a worker thread, never on the loop; either way events arrive in ``$all`` order with no gaps.
With ``trace_path`` the store writes each group commit's timings and each live send.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.events import RecordedEvent

from eventstore_lite import filters, service
from eventstore_lite.server import EventStoreServer
from eventstore_lite.storage import PAGE_SIZE

from .helpers import Collector, events, new_stream

ROOT = Path(__file__).resolve().parents[3]
LOOP_THREAD = "eventstore_lite-grpc"


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("live-step") / "trace.jsonl"


@pytest.fixture(scope="module")
def server(trace_file: Path) -> Iterator[EventStoreServer]:
    with EventStoreServer(str(trace_file.parent / "events.sqlite3"), trace_path=str(trace_file)) as srv:
        yield srv


@pytest.fixture
def client(server: EventStoreServer) -> Iterator[EventStoreDBClient]:
    c = EventStoreDBClient(server.uri)
    yield c
    c.close()


class Threads:
    """The names of the threads a function of a module ran on (the function still runs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> None:
        self.names: list[str] = []
        original = getattr(owner, name)

        def recording(*args: Any, **kwargs: Any) -> Any:
            self.names.append(threading.current_thread().name)
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, recording)


def received(items: list[object]) -> list[RecordedEvent]:
    return [item for item in items if isinstance(item, RecordedEvent)]


def test_live_events_in_memory_are_taken_on_the_loop_in_order_without_gaps(
    client: EventStoreDBClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind = f"Tick{uuid.uuid4().hex[:8]}"
    live = Collector(iter(client.subscribe_to_all(commit_position=client.get_commit_position(), filter_include=[kind])))
    client.append_to_stream(new_stream("warm"), current_version=StreamState.NO_STREAM, events=events(1, kind))
    live.wait_for(lambda items: len(received(items)) == 1)  # caught up and live; the filter knows the type now
    takes = Threads(monkeypatch, service, "_take")
    stream = new_stream("live")
    acks = [client.append_to_stream(stream, current_version=StreamState.ANY, events=events(1, kind)) for _ in range(30)]
    acks.append(client.append_to_stream(stream, current_version=StreamState.ANY, events=events(PAGE_SIZE + 20, kind)))

    live.wait_for(lambda items: len(received(items)) == 31 + PAGE_SIZE + 20)

    got = received(live.items)[1:]
    assert [e.stream_position for e in got] == list(range(30 + PAGE_SIZE + 20)), "every event, in order, once"
    positions = [e.commit_position for e in got]
    assert positions == sorted(positions) and positions[29] == acks[29] and positions[-1] == acks[-1]
    assert LOOP_THREAD in takes.names, "a live step ran on the event loop"


def test_a_name_the_filter_has_not_met_is_matched_off_the_loop(
    client: EventStoreDBClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"New{uuid.uuid4().hex[:8]}"
    live = Collector(iter(client.subscribe_to_all(commit_position=client.get_commit_position(),
                                                  filter_include=[f"{prefix}.*"])))
    client.append_to_stream(new_stream("warm"), current_version=StreamState.NO_STREAM, events=events(1, f"{prefix}0"))
    live.wait_for(lambda items: len(received(items)) == 1)
    matches = Threads(monkeypatch, filters.TimedSearch, "_timed")

    for n in range(1, 21):  # each a type the filter has never seen
        client.append_to_stream(new_stream("new"), current_version=StreamState.NO_STREAM, events=events(1, f"{prefix}{n}"))
    live.wait_for(lambda items: len(received(items)) == 21)

    assert [e.type for e in received(live.items)] == [f"{prefix}{n}" for n in range(21)]
    assert matches.names and LOOP_THREAD not in matches.names, "timed regex matches stay off the loop"


def test_the_trace_records_each_group_commit_and_each_live_send(
    server: EventStoreServer, client: EventStoreDBClient, trace_file: Path
) -> None:
    kind = f"Traced{uuid.uuid4().hex[:8]}"
    live = Collector(iter(client.subscribe_to_all(commit_position=client.get_commit_position(), filter_include=[kind])))
    stream = new_stream("traced")
    positions = [client.append_to_stream(stream, current_version=StreamState.ANY, events=[NewEvent(type=kind, data=b"{}")])
                 for _ in range(5)]
    live.wait_for(lambda items: len(received(items)) == 5)
    trace = server._store.trace  # written out 4,096 records at a time, or at close: flush for the test
    assert trace is not None
    trace.close()

    records = [json.loads(line) for line in trace_file.read_text().splitlines()]
    ops = {position: (submitted, group) for group in records if group[0] == "group" for submitted, position in group[5]}
    for position in positions:
        submitted, group = ops[position]
        began, written, committed, acknowledged = group[1:5]
        assert submitted <= began <= written <= committed <= acknowledged
    sent = [record[1] for record in records if record[0] == "sent"]
    assert max(sent) >= positions[-1], "the subscription's send of the last event is recorded"


def test_an_unusable_trace_path_stops_start_up_with_one_line_naming_the_variable(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), EVENTSTORE_LITE_TRACE=str(tmp_path / "missing" / "trace.jsonl"))
    result = subprocess.run([sys.executable, "-m", "eventstore_lite", "--db", str(tmp_path / "events.sqlite3")],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "EVENTSTORE_LITE_TRACE" in result.stderr and "existing, writable directory" in result.stderr
