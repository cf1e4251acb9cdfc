"""Replays through the embedded store over gRPC into a real Redis give identical keyspaces."""
from __future__ import annotations

import pytest
import redis

from projections import keys
from projections.projector.runner import Runner
from projections.queries import Queries
from projections.readmodels import PROJECTIONS
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections.helpers import append_market, checkpoint, config, dumps, keyspace, run_to_end
from tests.waiting import wait_until


def test_two_replays_leave_identical_keyspaces(redis_process: RedisProcess, store_process: StoreProcess) -> None:
    head = append_market(store_process.uri, 1500)
    client = redis.Redis.from_url(redis_process.url)
    run_to_end(redis_process.url, store_process.uri)
    first, first_dump = keyspace(client), dumps(client)
    assert all(checkpoint(client, p) > 0 for p in PROJECTIONS)
    assert checkpoint(client, "portfolio") == head
    client.flushdb()
    run_to_end(redis_process.url, store_process.uri)
    assert dumps(client) == first_dump  # byte for byte, TTLs included (there are none: no wall clock)
    client.flushdb()
    run_to_end(redis_process.url, store_process.uri, batch_size=333)  # other batch boundaries, same result
    assert keyspace(client) == first


def test_bad_events_are_parked_with_reason_and_checkpoint_moves_on(redis_process: RedisProcess, store_process: StoreProcess) -> None:
    head = append_market(store_process.uri, 800, bad_ratio=0.05)
    client = redis.Redis.from_url(redis_process.url)
    run_to_end(redis_process.url, store_process.uri, projections=("portfolio",))
    parked = Queries(client).parked_events("portfolio")
    assert parked, "the simulator's malformed events must be parked"
    assert all(getattr(parked[0], name) not in ("", None) for name in ("event_id", "stream", "position", "type", "field", "reason"))
    assert checkpoint(client, "portfolio") == head
    (status,) = Queries(client).projection_status("portfolio")
    assert status.parked == len(parked) and status.checkpoint == head


def test_stop_policy_stops_before_the_bad_event(redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 800, bad_ratio=0.05)
    client = redis.Redis.from_url(redis_process.url)
    runner = Runner(config("portfolio", redis_process.url, store_process.uri, on_bad_event="stop"))
    try:
        runner.run()
        raise AssertionError("the stop policy must stop the projection")
    except Exception as exc:  # noqa: BLE001
        assert "stopped on bad event" in str(exc)
    (status,) = Queries(client).projection_status("portfolio")
    assert status.state == "failed" and "bad event" in status.last_error
    assert client.hlen(keys.parked("portfolio")) == 0
    assert 0 < checkpoint(client, "portfolio")


def test_an_operator_parks_the_bad_event_and_a_stopped_projection_resumes(redis_process: RedisProcess, store_process: StoreProcess) -> None:
    from projections.actions import park_bad_event
    from projections.errors import NotStoppedOn
    from tests.integration.projections.helpers import head_for, in_thread

    append_market(store_process.uri, 800, bad_ratio=0.05)
    client = redis.Redis.from_url(redis_process.url)
    runner = Runner(config("portfolio", redis_process.url, store_process.uri, on_bad_event="stop", exit_when_caught_up=False))
    thread, errors = in_thread(runner)

    def stopped() -> str:
        (status,) = Queries(client).projection_status("portfolio")
        return status.stopped_on.event_id if status.stopped_on and status.alive else ""

    try:
        parked_ids = []
        for _ in range(3):  # each decision moves it past one bad event, up to the next one
            wait_until(stopped, 20, what="the projection stopped on a bad event, alive")
            event_id = stopped()
            with pytest.raises(NotStoppedOn):
                park_bad_event(client, "portfolio", "not-the-one")
            park_bad_event(client, "portfolio", event_id)
            wait_until(lambda e=event_id: stopped() != e and e in {p.event_id for p in Queries(client).parked_events("portfolio")},
                       20, what="the projection moved past the parked event, parked")
            parked_ids.append(event_id)
        parked = {p.event_id: p for p in Queries(client).parked_events("portfolio")}
        assert set(parked_ids) <= set(parked)
        assert all(parked[i].decision == "parked by an operator (stop policy)" for i in parked_ids)
        assert not client.exists(keys.park_requests("portfolio"))  # decisions are consumed
        assert checkpoint(client, "portfolio") < head_for(store_process.uri, "portfolio")  # still stops on the next one
    finally:
        runner.stop()
        thread.join(10)
    assert not thread.is_alive() and errors == []
