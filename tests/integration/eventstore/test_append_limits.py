"""The append size limit holds while a request streams in; a BatchAppend call has a cap on open batches.

Memory a client can make the store hold is bounded by the limits, not by what it sends.
"""
from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from esdbclient import EventStoreDBClient
from esdbclient.exceptions import NotFound
from esdbclient.protos.Grpc import shared_pb2, streams_pb2
from google.protobuf import empty_pb2

from eventstore_lite.server import EventStoreServer
from tests.waiting import wait_until

from .helpers import Collector, new_stream, raw_stub, stream_id

MIB = 1024 * 1024
LIMIT = 2 * MIB
OPEN_BATCHES = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventStoreServer]:
    path = tmp_path_factory.mktemp("limits") / "events.sqlite3"
    with EventStoreServer(str(path), max_append_size=LIMIT) as srv:
        yield srv


def _proposed(size: int) -> streams_pb2.AppendReq.ProposedMessage:
    return streams_pb2.AppendReq.ProposedMessage(
        id=shared_pb2.UUID(string=str(uuid.uuid4())),
        metadata={"type": "Blob", "content-type": "application/octet-stream"}, data=b"z" * size)


def test_a_streamed_append_is_refused_before_its_third_message_is_read(server: EventStoreServer) -> None:
    """3 x 1 MiB against a 2 MiB limit: the refusal arrives while the client still holds the
    third message back, so the server cannot have waited for it (or for the end of the call)."""
    stream = new_stream("big")
    release_third = threading.Event()

    def requests() -> Iterator[streams_pb2.AppendReq]:
        options = streams_pb2.AppendReq.Options(stream_identifier=stream_id(stream), any=shared_pb2.Empty())
        yield streams_pb2.AppendReq(options=options)
        yield streams_pb2.AppendReq(proposed_message=_proposed(MIB))
        yield streams_pb2.AppendReq(proposed_message=_proposed(MIB))
        release_third.wait(60)
        yield streams_pb2.AppendReq(proposed_message=_proposed(MIB))

    channel, stub = raw_stub(server.uri)
    try:
        call = stub.Append.future(requests(), timeout=60)
        wait_until(call.done, 15, what="the append to be refused while the third message is held back")
        assert not release_third.is_set()  # the third message was never sent (the client may not even have got to it)
        error = call.exception()
        assert isinstance(error, grpc.Call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details() == f"Maximum Append Size of {LIMIT} Exceeded."
        assert dict(error.trailing_metadata() or ())["exception"] == "maximum-append-size-exceeded"
    finally:
        release_third.set()
        channel.close()
    client = EventStoreDBClient(server.uri)
    try:
        with pytest.raises(NotFound):
            client.get_stream(stream)
    finally:
        client.close()


def _batch_req(correlation: uuid.UUID, stream: str | None, *, final: bool, events: int = 0) -> streams_pb2.BatchAppendReq:
    request = streams_pb2.BatchAppendReq(
        correlation_id=shared_pb2.UUID(string=str(correlation)), is_final=final,
        proposed_messages=[
            streams_pb2.BatchAppendReq.ProposedMessage(
                id=shared_pb2.UUID(string=str(uuid.uuid4())), data=b"{}",
                metadata={"type": "Chunked", "content-type": "application/json"})
            for _ in range(events)
        ],
    )
    if stream is not None:
        request.options.CopyFrom(streams_pb2.BatchAppendReq.Options(stream_identifier=stream_id(stream), any=empty_pb2.Empty()))
    return request


def test_open_batches_over_the_cap_in_one_call_are_refused(tmp_path: Path) -> None:
    with EventStoreServer(str(tmp_path / "batches.sqlite3"), max_open_batches=OPEN_BATCHES) as server:
        _open_batches_over_the_cap(server)


def _open_batches_over_the_cap(server: EventStoreServer) -> None:
    streams = [new_stream("batch") for _ in range(OPEN_BATCHES + 1)]
    correlations = [uuid.uuid4() for _ in streams]
    requests: queue.SimpleQueue[streams_pb2.BatchAppendReq | None] = queue.SimpleQueue()
    channel, stub = raw_stub(server.uri)
    call = stub.BatchAppend(iter(requests.get, None), timeout=60)
    try:
        responses = Collector(call)
        for correlation, stream in zip(correlations, streams):
            requests.put(_batch_req(correlation, stream, final=False, events=1))  # opened, not finished

        responses.wait_for(lambda items: len(items) >= 1)
        refused = responses.items[0]
        assert isinstance(refused, streams_pb2.BatchAppendResp)
        assert refused.correlation_id.string == str(correlations[-1])
        assert refused.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        assert f"{OPEN_BATCHES} open batches" in refused.error.message
        assert "--max-open-batches" in refused.error.message

        for correlation in correlations[:-1]:  # the open ones still complete
            requests.put(_batch_req(correlation, None, final=True, events=1))
        responses.wait_for(lambda items: len(items) >= OPEN_BATCHES + 1)
        finished = responses.items[1:]
        assert all(isinstance(r, streams_pb2.BatchAppendResp) and r.HasField("success") for r in finished)
        assert {r.correlation_id.string for r in finished} == {str(c) for c in correlations[:-1]}  # type: ignore[union-attr]
    finally:
        requests.put(None)
        call.cancel()
        channel.close()
    client = EventStoreDBClient(server.uri)
    try:
        assert [len(client.get_stream(s)) for s in streams[:-1]] == [2] * OPEN_BATCHES
        with pytest.raises(NotFound):
            client.get_stream(streams[-1])
    finally:
        client.close()


def test_an_append_or_a_batch_of_more_events_than_the_count_limit_is_refused_naming_the_limit(tmp_path: Path) -> None:
    """Empty events weigh almost nothing against the byte limit: the event count has its own."""
    with EventStoreServer(str(tmp_path / "count.sqlite3"), max_append_events=5) as server:
        channel, stub = raw_stub(server.uri)
        try:
            def append(stream: str, events: int) -> list[streams_pb2.AppendReq]:
                options = streams_pb2.AppendReq.Options(stream_identifier=stream_id(stream), any=shared_pb2.Empty())
                return [streams_pb2.AppendReq(options=options),
                        *(streams_pb2.AppendReq(proposed_message=_proposed(0)) for _ in range(events))]

            assert stub.Append(iter(append(new_stream("five"), 5)), timeout=30).HasField("success")
            with pytest.raises(grpc.RpcError) as refused:
                stub.Append(iter(append(new_stream("six"), 6)), timeout=30)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "the limit of 5 events in one append" in refused.value.details()
            assert "--max-append-events or EVENTSTORE_LITE_MAX_APPEND_EVENTS" in refused.value.details()

            batch = next(iter(stub.BatchAppend(iter([_batch_req(uuid.uuid4(), new_stream("b"), final=True, events=6)]),
                                               timeout=30)))
            assert batch.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
            assert "the limit of 5 events in one append" in batch.error.message
        finally:
            channel.close()
