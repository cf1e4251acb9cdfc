"""Optimistic concurrency and idempotent retries, as a real server answers them."""
from __future__ import annotations

import pytest
from esdbclient import EventStoreDBClient, StreamState
from esdbclient.exceptions import WrongCurrentVersion

from .helpers import events, new_stream


def test_no_stream_succeeds_once_then_reports_the_current_revision(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=events(2))

    with pytest.raises(WrongCurrentVersion, match="Stream position of last event is 1"):
        esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=events(1))
    with pytest.raises(WrongCurrentVersion, match="Stream position of last event is 1"):
        esdb_client.append_event(stream, current_version=StreamState.NO_STREAM, event=events(1)[0])


def test_exact_revision_must_be_the_last_one(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    with pytest.raises(WrongCurrentVersion, match="does not exist"):
        esdb_client.append_events(stream, current_version=0, events=events(1))
    esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=events(3))

    with pytest.raises(WrongCurrentVersion, match="last event is 2 not 5"):
        esdb_client.append_events(stream, current_version=5, events=events(1))
    with pytest.raises(WrongCurrentVersion, match="last event is 2 not 1"):
        esdb_client.append_event(stream, current_version=1, event=events(1)[0])
    esdb_client.append_events(stream, current_version=2, events=events(1))

    assert esdb_client.get_current_version(stream) == 3


def test_stream_exists_needs_events_or_metadata(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    with pytest.raises(WrongCurrentVersion):
        esdb_client.append_events(stream, current_version=StreamState.EXISTS, events=events(1))

    esdb_client.set_stream_metadata(stream, metadata={"owner": "ops"})
    esdb_client.append_events(stream, current_version=StreamState.EXISTS, events=events(1))

    assert esdb_client.get_current_version(stream) == 0


def test_any_appends_whatever_the_stream_state(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    esdb_client.append_events(stream, current_version=StreamState.ANY, events=events(1))
    esdb_client.append_events(stream, current_version=StreamState.ANY, events=events(2))

    assert [e.stream_position for e in esdb_client.get_stream(stream)] == [0, 1, 2]


def test_retrying_an_append_returns_the_original_position(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    batch1, batch2 = events(3), events(2)
    first = esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=batch1)
    second = esdb_client.append_events(stream, current_version=2, events=batch2)

    assert esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=batch1) == first
    assert esdb_client.append_events(stream, current_version=2, events=batch2) == second
    assert esdb_client.append_event(stream, current_version=StreamState.NO_STREAM, event=batch1[0]) < first
    assert esdb_client.append_events(stream, current_version=StreamState.ANY, events=batch2) == second
    assert len(esdb_client.get_stream(stream)) == 5


def test_a_partial_retry_is_a_wrong_expected_version_and_writes_nothing(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    batch = events(2)
    esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=batch)

    with pytest.raises(WrongCurrentVersion):
        esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=[*batch, *events(1)])

    assert [e.id for e in esdb_client.get_stream(stream)] == [e.id for e in batch]
