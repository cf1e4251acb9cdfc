"""Bad requests get the status a real server sends, and never hurt the server."""
from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import ExceptionThrownByHandler, GrpcError, MaximumAppendSizeExceededError, NotFound
from esdbclient.protos.Grpc import shared_pb2, streams_pb2, streams_pb2_grpc

from .helpers import events, new_stream, raw_stub, read_all_req, stream_id

MAX_APPEND = 1024 * 1024


@pytest.fixture
def stub(eventstore_uri: str) -> Iterator[streams_pb2_grpc.StreamsStub]:
    channel, stub = raw_stub(eventstore_uri)
    yield stub
    channel.close()


def _append_reqs(stream: str, *messages: streams_pb2.AppendReq.ProposedMessage) -> list[streams_pb2.AppendReq]:
    options = streams_pb2.AppendReq.Options(stream_identifier=stream_id(stream), any=shared_pb2.Empty())
    return [streams_pb2.AppendReq(options=options)] + [streams_pb2.AppendReq(proposed_message=m) for m in messages]


def _rpc_error(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as failure:
        call()  # type: ignore[operator]
    return failure.value


def test_oversized_single_append_is_rejected_and_nothing_is_written(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    with pytest.raises(GrpcError) as failure:
        esdb_client.append_event(stream, current_version=StreamState.ANY,
                                 event=NewEvent(type="Big", data=b"x" * (MAX_APPEND + 1)))
    error = failure.value.args[0]
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f"Maximum Append Size of {MAX_APPEND} Exceeded."
    with pytest.raises(NotFound):
        esdb_client.get_stream(stream)


def test_oversized_batch_is_all_or_nothing(esdb_client: EventStoreDBClient) -> None:
    stream = new_stream()
    batch = [NewEvent(type="Chunk", data=b"y" * 400_000) for _ in range(3)]
    with pytest.raises(MaximumAppendSizeExceededError, match=str(MAX_APPEND)):
        esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=batch)
    with pytest.raises(NotFound):
        esdb_client.get_stream(stream)
    esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=batch[:2])
    assert len(esdb_client.get_stream(stream)) == 2


def test_malformed_filter_regex_fails_like_the_server_and_server_lives_on(esdb_client: EventStoreDBClient) -> None:
    with pytest.raises(ExceptionThrownByHandler):
        list(esdb_client.read_all(filter_include=["(unclosed"]))
    with pytest.raises(ExceptionThrownByHandler):
        next(iter(esdb_client.subscribe_to_all(filter_include=["[z-a]"], timeout=5)))

    stream = new_stream()
    esdb_client.append_events(stream, current_version=StreamState.NO_STREAM, events=events(1))
    assert len(esdb_client.get_stream(stream)) == 1


def test_missing_required_metadata_is_invalid_argument(stub: streams_pb2_grpc.StreamsStub) -> None:
    untyped = streams_pb2.AppendReq.ProposedMessage(
        id=shared_pb2.UUID(string="0b6c3c8e-5a8f-4c43-9d0b-31b54b0c4c11"), metadata={"content-type": "application/json"})
    error = _rpc_error(lambda: stub.Append(iter(_append_reqs(new_stream(), untyped)), timeout=5))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Required Metadata Property 'type' is missing"


def test_unknown_option_combinations_are_invalid_argument(stub: streams_pb2_grpc.StreamsStub) -> None:
    request = read_all_req()
    request.options.read_direction = streams_pb2.ReadReq.Options.Backwards
    request.options.subscription.SetInParent()

    error = _rpc_error(lambda: list(stub.Read(request, timeout=5)))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "The combination of (All, Subscription, Backwards, NoFilter) is invalid."


def test_missing_expected_version_and_garbage_ids_are_rejected(stub: streams_pb2_grpc.StreamsStub) -> None:
    no_expectation = streams_pb2.AppendReq(options=streams_pb2.AppendReq.Options(stream_identifier=stream_id("x")))
    error = _rpc_error(lambda: stub.Append(iter([no_expectation]), timeout=5))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT

    bad_id = streams_pb2.AppendReq.ProposedMessage(
        id=shared_pb2.UUID(string="not-a-uuid"), metadata={"type": "T", "content-type": "application/json"})
    error = _rpc_error(lambda: stub.Append(iter(_append_reqs(new_stream(), bad_id)), timeout=5))
    assert error.code() == grpc.StatusCode.UNKNOWN
    assert error.details() == "Exception was thrown by handler."


def test_out_of_range_positions_do_not_crash_the_server(
    stub: streams_pb2_grpc.StreamsStub, esdb_client: EventStoreDBClient
) -> None:
    request = read_all_req()
    request.options.all.position.commit_position = 2**64 - 1
    request.options.all.position.prepare_position = 2**64 - 1

    assert list(stub.Read(request, timeout=5)) == []
    assert list(esdb_client.read_all(commit_position=2**64 - 1)) == []
    with pytest.raises(NotFound):
        esdb_client.get_stream(new_stream(), stream_position=2**64 - 1)


def test_empty_stream_name_is_rejected(stub: streams_pb2_grpc.StreamsStub) -> None:
    message = streams_pb2.AppendReq.ProposedMessage(
        id=shared_pb2.UUID(string="0b6c3c8e-5a8f-4c43-9d0b-31b54b0c4c12"),
        metadata={"type": "T", "content-type": "application/json"})
    error = _rpc_error(lambda: stub.Append(iter(_append_reqs("", message)), timeout=5))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_persistent_subscription_list_is_empty(esdb_client: EventStoreDBClient) -> None:
    assert esdb_client.list_subscriptions() == []
