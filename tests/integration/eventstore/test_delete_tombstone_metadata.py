"""Soft delete, tombstone and stream metadata (``$$stream``) with the server's semantics."""
from __future__ import annotations

import pytest
from esdbclient import EventStoreDBClient, StreamState
from esdbclient.exceptions import NotFound, StreamIsDeleted, WrongCurrentVersion

from .helpers import events, new_stream

MAX_INT64 = 2**63 - 1


def test_soft_deleted_stream_reads_as_not_found_and_keeps_numbering(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=events(2))
    esdb_client.delete_stream(stream, current_version=1)

    with pytest.raises(NotFound):
        esdb_client.get_stream(stream)
    assert esdb_client.get_current_version(stream) is StreamState.NO_STREAM
    assert esdb_client.get_stream_metadata(stream)[0] == {"$tb": MAX_INT64}

    revived = events(1)
    esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=revived)

    recorded = esdb_client.get_stream(stream)
    assert [(e.id, e.stream_position) for e in recorded] == [(revived[0].id, 2)]
    assert esdb_client.get_stream_metadata(stream)[0] == {"$tb": 2}


def test_soft_delete_checks_the_expected_version(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    with pytest.raises(NotFound):
        esdb_client.delete_stream(stream, current_version=StreamState.ANY)
    esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=events(2))

    with pytest.raises(WrongCurrentVersion, match="Actual version: 1"):
        esdb_client.delete_stream(stream, current_version=0)
    esdb_client.delete_stream(stream, current_version=StreamState.ANY)
    with pytest.raises(StreamIsDeleted):
        esdb_client.delete_stream(stream, current_version=StreamState.EXISTS)
    with pytest.raises(WrongCurrentVersion):
        esdb_client.append_events(stream, current_version=0, events=events(1))
    esdb_client.append_events(stream, current_version=1, events=events(1))

    assert esdb_client.get_current_version(stream) == 2


def test_soft_delete_keeps_other_metadata(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=events(1))
    esdb_client.set_stream_metadata(stream, metadata={"$maxAge": 3600, "owner": "risk"})

    esdb_client.delete_stream(stream, current_version=0)

    assert esdb_client.get_stream_metadata(stream)[0] == {"$maxAge": 3600, "owner": "risk", "$tb": MAX_INT64}


def test_tombstone_blocks_reads_and_appends_for_ever(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=events(2))
    with pytest.raises(WrongCurrentVersion):
        esdb_client.tombstone_stream(stream, current_version=0)

    esdb_client.tombstone_stream(stream, current_version=1)

    with pytest.raises(StreamIsDeleted):
        esdb_client.get_stream(stream)
    with pytest.raises(StreamIsDeleted):
        esdb_client.append_events(stream, current_version=StreamState.ANY, events=events(1))
    with pytest.raises(StreamIsDeleted):
        esdb_client.tombstone_stream(stream, current_version=StreamState.ANY)
    with pytest.raises(StreamIsDeleted):
        esdb_client.delete_stream(stream, current_version=StreamState.ANY)
    with pytest.raises(StreamIsDeleted):
        esdb_client.get_stream_metadata(stream)
    tombstones = [e for e in esdb_client.read_all(filter_exclude=[], backwards=True, limit=50) if e.stream_name == stream]
    assert tombstones[0].type == "$streamDeleted"


def test_tombstoning_a_stream_that_never_existed(esdb_client: EventStoreDBClient) -> None:
    never = new_stream()
    with pytest.raises(NotFound):
        esdb_client.tombstone_stream(never, current_version=StreamState.EXISTS)
    esdb_client.tombstone_stream(never, current_version=StreamState.ANY)

    with pytest.raises(StreamIsDeleted):
        esdb_client.append_events(never, current_version=StreamState.NO_STREAM, events=events(1))


def test_stream_metadata_round_trips_with_versions(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    assert esdb_client.get_stream_metadata(stream) == ({}, StreamState.NO_STREAM)

    esdb_client.set_stream_metadata(stream, metadata={"owner": "a"})
    esdb_client.set_stream_metadata(stream, metadata={"owner": "b"}, current_version=0)
    with pytest.raises(WrongCurrentVersion):
        esdb_client.set_stream_metadata(stream, metadata={"owner": "c"}, current_version=0)

    assert esdb_client.get_stream_metadata(stream) == ({"owner": "b"}, 1)


def test_truncate_before_hides_older_events(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=events(5))

    esdb_client.set_stream_metadata(stream, metadata={"$tb": 3})

    assert [e.stream_position for e in esdb_client.get_stream(stream)] == [3, 4]
    assert [e.stream_position for e in esdb_client.get_stream(stream, backwards=True)] == [4, 3]
