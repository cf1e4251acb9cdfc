"""``manage.py simulate`` against the embedded event store, read back through esdbclient."""
from __future__ import annotations

import io
import json
import threading
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from projections.eventstore import EventStore, RecordedEvent
from projections.simulation.appender import run_live
from projections.simulation.market import Market


@pytest.fixture
def store(eventstore_uri: str, settings: Any) -> Iterator[EventStore]:
    settings.EVENTSTORE_URI = eventstore_uri
    with EventStore(eventstore_uri) as store:
        yield store


def appended_since(store: EventStore, head: int) -> list[RecordedEvent]:
    """Events appended after commit position ``head`` (0: the store was empty)."""
    return [e for e in store.read_all(after=head or None) if not e.stream_name.startswith("$")]


def per_stream(pairs: list[tuple[str, Any]]) -> dict[str, list[Any]]:
    streams: dict[str, list[Any]] = defaultdict(list)
    for stream, value in pairs:
        streams[stream].append(value)
    return dict(streams)


def test_bulk_run_appends_every_event_in_stream_order(store: EventStore) -> None:
    head = store.client.get_commit_position()
    start = "2031-03-03T00:00:00Z"  # a run of its own: ids never collide with other tests' runs
    out = io.StringIO()
    call_command("simulate", events=500, seed=3, start=start, stdout=out, stderr=io.StringIO())

    recorded = appended_since(store, head)
    expected = list(Market(3, start=datetime(2031, 3, 3, tzinfo=UTC)).events(500))
    assert len(recorded) == 500
    assert per_stream([(e.stream_name, e.id) for e in recorded]) == per_stream([(s, e.id) for s, e in expected])
    by_id = {e.id: e for _, e in expected}
    for event in recorded:
        sent = by_id[event.id]
        assert event.type == sent.type
        assert event.content_type == "application/json"
        assert json.loads(event.data) == sent.data
        assert json.loads(event.metadata) == sent.metadata
    assert "Appended 500 events" in out.getvalue()


def test_fault_drills_land_verbatim(store: EventStore) -> None:
    head = store.client.get_commit_position()
    call_command(
        "simulate", events=400, seed=5, bad_ratio=0.25, start="2031-04-04T00:00:00Z",
        batch_size=17, stdout=io.StringIO(), stderr=io.StringIO(),
    )
    recorded = appended_since(store, head)
    drills = [e for e in recorded if "faultDrill" in json.loads(e.metadata)]
    assert len(recorded) == 400 and 60 < len(drills) < 140
    raw = [e for e in drills if json.loads(e.metadata)["faultDrill"] == "non_json"]
    assert raw
    for event in raw:
        with pytest.raises(ValueError):
            json.loads(event.data)


def test_bad_options_are_named() -> None:
    with pytest.raises(CommandError, match="--bad-ratio"):
        call_command("simulate", events=10, bad_ratio=1.5)
    with pytest.raises(CommandError, match="--events N"):
        call_command("simulate")


def test_live_command_stops_after_its_event_limit(store: EventStore) -> None:
    head = store.client.get_commit_position()
    began = datetime.now(UTC)
    call_command("simulate", live=True, rate=200, events=40, stdout=io.StringIO(), stderr=io.StringIO())
    recorded = appended_since(store, head)
    assert len(recorded) == 40
    stamps = [json.loads(e.data) for e in recorded if e.type == "PriceUpdated"]
    assert stamps
    for data in stamps:
        moment = datetime.fromisoformat(data["timestamp"])
        assert began - timedelta(seconds=1) <= moment <= datetime.now(UTC) + timedelta(seconds=1)


def test_live_run_keeps_appending_until_stopped(store: EventStore) -> None:
    head = store.client.get_commit_position()
    stop, arrived = threading.Event(), threading.Event()
    counts: list[int] = []

    def progress(sent: int) -> None:
        counts.append(sent)
        if sent >= 30:
            arrived.set()

    result: list[int] = []
    market = Market(21, start=datetime.now(UTC))
    worker = threading.Thread(target=lambda: result.append(run_live(store, market, 100.0, stop, on_appended=progress)))
    worker.start()
    try:
        assert arrived.wait(timeout=30), f"only {counts[-1:]} events appended"
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not worker.is_alive()
    assert result and result[0] >= 30
    assert len(appended_since(store, head)) == result[0]


def test_a_relative_start_puts_the_history_just_behind_now(store: EventStore) -> None:
    head = store.client.get_commit_position()
    call_command("simulate", events=20, seed=4, start="now-1h", stdout=io.StringIO(), stderr=io.StringIO())
    first = json.loads(appended_since(store, head)[0].data)
    moment = datetime.fromisoformat(first.get("timestamp") or first["executedAt"])
    assert abs(moment - (datetime.now(UTC) - timedelta(hours=1))) < timedelta(minutes=1)
    with pytest.raises(CommandError, match="--start"):
        call_command("simulate", events=10, start="yesterday")


def test_live_run_on_an_empty_store_first_writes_a_history_ending_now(store_process, settings: Any) -> None:
    settings.EVENTSTORE_URI = store_process.uri
    err = io.StringIO()
    started = datetime.now(UTC)
    call_command("simulate", live=True, rate=200, events=5, history="2h", history_interval_ms=5000,
                 stdout=io.StringIO(), stderr=err)
    with EventStore(store_process.uri) as store:
        events = [e for e in store.read_all() if not e.stream_name.startswith("$")]
        times = [json.loads(e.data).get("timestamp") or json.loads(e.data).get("executedAt") for e in events]
    stamped = sorted(datetime.fromisoformat(t) for t in times if t)
    assert 1200 <= len(events) <= 1700  # two hours at one event every 5 s on average, then 5 live ones
    assert stamped[0] < started - timedelta(minutes=110) and stamped[-1] > started - timedelta(minutes=1)
    assert "events of history" in err.getvalue()
    again = io.StringIO()
    call_command("simulate", live=True, rate=200, events=5, history="2h", stdout=io.StringIO(), stderr=again)
    assert "no history written" in again.getvalue()  # a restart goes live at once
    with EventStore(store_process.uri) as store:
        assert sum(1 for e in store.read_all() if not e.stream_name.startswith("$")) == len(events) + 5
    with pytest.raises(CommandError, match="--history 'yesterday' is not a duration"):
        call_command("simulate", live=True, events=1, history="yesterday")
