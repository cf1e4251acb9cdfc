"""Appending and reading back: what a client sees through esdbclient over gRPC."""
from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import NotFound

from eventstore_lite.server import EventStoreServer

from .helpers import events, new_stream


def test_appended_events_read_back_with_all_recorded_fields(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    proposed = [
        NewEvent(type="OrderPlaced", data=b'{"id": 1}', metadata=b'{"by": "alice"}'),
        NewEvent(type="Blob", data=b"\x00\x01", content_type="application/octet-stream"),
    ]
    before = datetime.datetime.now(datetime.timezone.utc)
    position = esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=proposed)

    recorded = esdb_client.get_stream(stream)

    assert [e.id for e in recorded] == [e.id for e in proposed]
    assert [e.stream_position for e in recorded] == [0, 1]
    assert [e.type for e in recorded] == ["OrderPlaced", "Blob"]
    assert [e.content_type for e in recorded] == ["application/json", "application/octet-stream"]
    assert recorded[0].data == b'{"id": 1}' and recorded[0].metadata == b'{"by": "alice"}'
    assert recorded[1].commit_position == position == recorded[1].prepare_position
    assert recorded[0].commit_position is not None and 0 < recorded[0].commit_position < position
    assert recorded[0].recorded_at is not None
    assert abs((recorded[0].recorded_at - before).total_seconds()) < 60


def test_every_event_has_its_own_increasing_position(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=events(5))
    esdb_client.append_events(stream, current_version=4, events=events(3))

    positions = [e.commit_position for e in esdb_client.get_stream(stream)]

    assert all(isinstance(p, int) and p > 0 for p in positions)
    assert positions == sorted(set(positions))  # type: ignore[type-var]
    assert esdb_client.get_commit_position(filter_exclude=[]) >= positions[-1]  # type: ignore[operator]


def test_stream_reads_forwards_backwards_from_revision_with_limits(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=events(10))

    def revisions(**kwargs: object) -> list[int]:
        return [e.stream_position for e in esdb_client.get_stream(stream, **kwargs)]  # type: ignore[arg-type]

    assert revisions() == list(range(10))
    assert revisions(backwards=True) == list(range(9, -1, -1))
    assert revisions(stream_position=7) == [7, 8, 9]
    assert revisions(stream_position=3, backwards=True) == [3, 2, 1, 0]
    assert revisions(limit=4) == [0, 1, 2, 3]
    assert revisions(stream_position=5, backwards=True, limit=2) == [5, 4]
    assert revisions(stream_position=50) == []
    assert esdb_client.get_current_version(stream) == 9


def test_reading_a_missing_stream_says_not_found(esdb_client: EventStoreDBClient) -> None:
    with pytest.raises(NotFound):
        esdb_client.get_stream(new_stream())
    assert esdb_client.get_current_version(new_stream()) is StreamState.NO_STREAM


def test_read_all_forwards_includes_and_backwards_excludes_the_position(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=events(3))
    mine = esdb_client.get_stream(stream)
    middle = mine[1].commit_position
    assert middle is not None

    forwards = list(esdb_client.read_all(commit_position=middle, limit=2))
    backwards = list(esdb_client.read_all(commit_position=middle, backwards=True, limit=1))

    assert [e.id for e in forwards] == [mine[1].id, mine[2].id]
    assert [e.id for e in backwards] == [mine[0].id]


def test_read_all_backwards_from_end_starts_with_the_latest_event(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=events(2))

    latest = list(esdb_client.read_all(backwards=True, limit=2))

    assert [(e.stream_name, e.stream_position) for e in latest] == [(stream, 1), (stream, 0)]


def test_read_all_streams_many_events_in_order(esdb_client: EventStoreDBClient) -> None:
    """More than one page (500 rows) of $all comes back complete and in order."""
    stream = new_stream("bulk")
    first = esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=events(1200))
    start = first - 1199

    read = [e for e in esdb_client.read_all(commit_position=start) if e.stream_name == stream]

    assert [e.stream_position for e in read] == list(range(1200))


def test_a_fresh_store_holds_a_system_event(tmp_path: Path) -> None:
    with EventStoreServer(str(tmp_path / "fresh.sqlite3")) as server:
        client = EventStoreDBClient(server.uri)
        try:
            everything = list(client.read_all(filter_exclude=[]))
            assert everything and everything[0].type.startswith("$")
            assert list(client.read_all()) == []  # the default filter hides system events
            assert client.get_commit_position() == 0
        finally:
            client.close()
