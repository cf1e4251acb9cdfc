"""A client's filter regex cannot freeze the store: a catastrophic pattern is cut off while
another client's appends go on being answered within a second.

The store runs in a subprocess: before this was fixed, matching held the interpreter for
minutes, which would have stalled this test too, had the server shared its process.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from esdbclient import EventStoreDBClient, NewEvent, StreamState
from esdbclient.exceptions import GrpcError

from .helpers import StoreSubprocess, events, new_stream

VICTIM = "a" * 48 + "!"  # what exponential patterns backtrack over


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreSubprocess]:
    process = StoreSubprocess(tmp_path)
    yield process
    process.kill()


def _attack(client: EventStoreDBClient, pattern: str, by_stream: bool, outcome: dict[str, object]) -> None:
    try:
        if by_stream:
            subscription = client.subscribe_to_all(filter_include=[pattern], filter_by_stream_name=True, timeout=60)
            outcome["result"] = next(iter(subscription))
        else:
            outcome["result"] = list(client.read_all(filter_include=[pattern], timeout=60))
    except Exception as exc:  # noqa: BLE001 - the outcome under test
        outcome["result"] = exc


@pytest.mark.parametrize(("pattern", "by_stream"), [("(a|aa)+", False), ("(a|aa)+", True), ("(a+)+", False)])
def test_a_catastrophic_filter_regex_is_cut_off_while_appends_are_answered(
    store: StoreSubprocess, pattern: str, by_stream: bool
) -> None:
    attacker, other = EventStoreDBClient(store.uri), EventStoreDBClient(store.uri)
    try:
        attacker.append_to_stream(VICTIM, current_version=StreamState.ANY, events=[NewEvent(type=VICTIM, data=b"{}")])
        outcome: dict[str, object] = {}
        thread = threading.Thread(target=_attack, args=(attacker, pattern, by_stream, outcome), daemon=True)
        thread.start()
        appends, slowest, deadline = 0, 0.0, time.monotonic() + 20
        while (thread.is_alive() or appends < 20) and time.monotonic() < deadline:
            started = time.monotonic()
            other.append_to_stream(new_stream(), current_version=StreamState.NO_STREAM, events=events(1), timeout=1)
            slowest = max(slowest, time.monotonic() - started)
            appends += 1
        assert not thread.is_alive(), "the filtered call was neither refused nor cut off"
        assert slowest < 1.0
        result = outcome["result"]
        if pattern == "(a|aa)+":  # exponential for any backtracking engine: cut off
            assert isinstance(result, GrpcError), result
            error = result.args[0]
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "took longer than" in error.details() and pattern in error.details()
        # "(a+)+": the engine's own optimisations make it linear: answered (nothing matches)
    finally:
        attacker.close()
        other.close()
    assert len(other.get_stream(VICTIM)) == 1, "the store still serves everyone"


def test_an_overlong_filter_regex_is_refused(store: StoreSubprocess) -> None:
    client = EventStoreDBClient(store.uri)
    try:
        with pytest.raises(GrpcError) as refused:
            list(client.read_all(filter_include=["x" * 20_000], timeout=5))
        error = refused.value.args[0]
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "characters" in error.details()
    finally:
        client.close()
