"""Filters, checkpoints and catch-up subscriptions that go live."""
from __future__ import annotations

import time
import uuid

import grpc
import pytest
from esdbclient import EventStoreDBClient, StreamState
from esdbclient.events import CaughtUp, Checkpoint, RecordedEvent
from esdbclient.protos.Grpc import streams_pb2

from .helpers import Collector, events, new_stream, raw_stub, read_all_req

Expression = streams_pb2.ReadReq.Options.FilterOptions.Expression


def _recorded(items: list[object]) -> list[RecordedEvent]:
    return [i for i in items if type(i) is RecordedEvent]


def test_read_all_filters_on_event_type_and_stream_name(esdb_client: EventStoreDBClient) -> None:
    tag = uuid.uuid4().hex[:8]
    start = esdb_client.get_commit_position(filter_exclude=[])
    esdb_client.append_events(f"orders-{tag}", current_version=StreamState.ANY, events=events(2, f"Placed{tag}"))
    esdb_client.append_events(f"invoices-{tag}", current_version=StreamState.ANY, events=events(1, f"Billed{tag}"))

    by_type = list(esdb_client.read_all(commit_position=start, filter_include=[f"Placed{tag}"]))
    by_stream = list(esdb_client.read_all(commit_position=start, filter_include=[f"invoices-{tag}"],
                                          filter_by_stream_name=True))
    excluded = list(esdb_client.read_all(commit_position=start, filter_exclude=[f"Placed{tag}", r"\$.*"]))

    assert [e.type for e in by_type] == [f"Placed{tag}"] * 2
    assert [e.stream_name for e in by_stream] == [f"invoices-{tag}"]
    assert {e.type for e in excluded if tag in e.type} == {f"Billed{tag}"}


def test_prefix_filters_select_by_prefix(esdb_client: EventStoreDBClient, eventstore_uri: str) -> None:
    tag = uuid.uuid4().hex[:8]
    esdb_client.append_events(f"px{tag}-a", current_version=StreamState.ANY, events=events(2, f"T{tag}Made"))
    esdb_client.append_events(f"qx{tag}-b", current_version=StreamState.ANY, events=events(1, f"U{tag}Made"))
    channel, stub = raw_stub(eventstore_uri)
    try:
        by_stream = list(stub.Read(read_all_req(stream_identifier=Expression(prefix=[f"px{tag}"]), max=32,
                                                checkpointIntervalMultiplier=1)))
        by_type = list(stub.Read(read_all_req(event_type=Expression(prefix=[f"U{tag}", f"V{tag}"]), max=32,
                                              checkpointIntervalMultiplier=1)))
    finally:
        channel.close()

    assert [m.event.event.stream_identifier.stream_name.decode() for m in by_stream] == [f"px{tag}-a"] * 2
    assert [m.event.event.metadata["type"] for m in by_type] == [f"U{tag}Made"]


def test_filtered_subscription_sends_checkpoints_at_the_requested_interval(
    esdb_client: EventStoreDBClient,
) -> None:
    start = esdb_client.get_commit_position(filter_exclude=[])
    esdb_client.append_events(new_stream(), current_version=StreamState.NO_STREAM, events=events(9))
    head = esdb_client.get_commit_position(filter_exclude=[])

    subscription = esdb_client.subscribe_to_all(
        commit_position=start, filter_exclude=[".*"], include_checkpoints=True, include_caught_up=True,
        window_size=2, checkpoint_interval_multiplier=2, timeout=10,
    )
    items = []
    for item in subscription:
        items.append(item)
        if isinstance(item, CaughtUp):
            break
    subscription.stop()

    checkpoints = [i.commit_position for i in items if isinstance(i, Checkpoint)]
    assert not _recorded(items)  # everything excluded
    assert checkpoints[:2] == [start + 4, start + 8]  # every 2 x 2 events considered
    assert checkpoints[-1] == head  # then one at the end of catch-up, never beyond the head
    assert isinstance(items[-1], CaughtUp)


def test_subscription_catches_up_then_is_woken_by_new_appends(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=events(3))
    collector = Collector(esdb_client.subscribe_to_stream(stream, include_caught_up=True, timeout=30))
    collector.wait_for(lambda items: any(isinstance(i, CaughtUp) for i in items))
    assert [e.stream_position for e in _recorded(collector.items)] == [0, 1, 2]

    for round_ in range(3):
        esdb_client.append_events(stream, current_version=2 + round_, events=events(1))
        waited = collector.wait_for(lambda items, n=4 + round_: len(_recorded(items)) == n)
        assert waited < 2.5  # pushed on commit (the safety-net re-check is every 5 s)

    assert [e.stream_position for e in _recorded(collector.items)] == [0, 1, 2, 3, 4, 5]


def test_all_subscription_from_end_sees_only_new_events(esdb_client: EventStoreDBClient) -> None:
    tag = uuid.uuid4().hex[:8]
    esdb_client.append_events(new_stream(), current_version=StreamState.NO_STREAM, events=events(1, f"Old{tag}"))
    collector = Collector(esdb_client.subscribe_to_all(from_end=True, include_caught_up=True, timeout=30,
                                                       filter_include=[f".*{tag}"]))
    collector.wait_for(lambda items: any(isinstance(i, CaughtUp) for i in items))

    esdb_client.append_events(new_stream(), current_version=StreamState.NO_STREAM, events=events(2, f"New{tag}"))

    collector.wait_for(lambda items: len(_recorded(items)) == 2)
    assert {e.type for e in _recorded(collector.items)} == {f"New{tag}"}


def test_subscription_from_a_position_starts_after_it(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    first = esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=events(1))
    esdb_client.append_events(stream, current_version=0, events=events(2))

    subscription = esdb_client.subscribe_to_all(commit_position=first, timeout=10)
    got = []
    for event in subscription:
        got.append((event.stream_name, event.stream_position))
        if len(got) == 2:
            break
    subscription.stop()

    assert got == [(stream, 1), (stream, 2)]


def test_stream_subscription_from_revision_and_missing_stream(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=events(3))
    from_one = Collector(esdb_client.subscribe_to_stream(stream, stream_position=1, timeout=30))
    missing = new_stream()
    later = Collector(esdb_client.subscribe_to_stream(missing, include_caught_up=True, timeout=30))

    from_one.wait_for(lambda items: len(items) == 1)
    later.wait_for(lambda items: any(isinstance(i, CaughtUp) for i in items))
    esdb_client.append_events(missing, current_version=StreamState.NO_STREAM, events=events(1))

    later.wait_for(lambda items: len(_recorded(items)) == 1)
    assert [e.stream_position for e in _recorded(from_one.items)] == [2]


def test_many_live_subscribers_all_receive_an_append(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    collectors = [Collector(esdb_client.subscribe_to_stream(stream, include_caught_up=True, timeout=30))
                  for _ in range(20)]
    for collector in collectors:
        collector.wait_for(lambda items: any(isinstance(i, CaughtUp) for i in items))

    started = time.monotonic()
    esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=events(1))
    for collector in collectors:
        collector.wait_for(lambda items: len(_recorded(items)) == 1)

    assert time.monotonic() - started < 5.0


def test_subscription_to_a_tombstoned_stream_fails(esdb_client: EventStoreDBClient, eventstore_uri: str) -> None:
    stream = new_stream()
    esdb_client.tombstone_stream(stream, current_version=StreamState.ANY)
    channel, stub = raw_stub(eventstore_uri)
    options = streams_pb2.ReadReq.Options(
        stream=streams_pb2.ReadReq.Options.StreamOptions(
            stream_identifier={"stream_name": stream.encode()}, start={}),
        subscription={}, no_filter={}, uuid_option={"string": {}},
    )
    try:
        with pytest.raises(grpc.RpcError) as failure:
            list(stub.Read(streams_pb2.ReadReq(options=options), timeout=10))
    finally:
        channel.close()
    assert failure.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert failure.value.details() == f"Event stream '{stream}' is deleted."
