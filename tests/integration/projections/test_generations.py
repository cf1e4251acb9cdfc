"""Full rebuild into a new generation beside the live one, verified and flipped atomically; rollback; drop."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
import redis

from projections import keys
from projections.codec import text
from projections.errors import JobCancelled, JobLeaseLost
from projections.eventstore import EventStore
from projections.keys import KeySpace
from projections.maintenance.control import Unattended
from projections.maintenance.generations import live_generation, switch_to
from projections.maintenance.retention import drop_generation
from projections.projector.runner import Runner
from projections.simulation.appender import append_events
from projections.simulation.market import Market
from tests.fixtures.projections import ProjectorProcess, RedisProcess, StoreProcess
from tests.integration.projections.helpers import (
    append_market,
    checkpoint,
    config,
    generation_content,
    head_for,
    in_thread,
    run_to_end,
)
from tests.waiting import wait_until

P = "portfolio"


class Appender(threading.Thread):
    """Live traffic: simulated market events at about ``rate`` a second until stopped."""

    def __init__(self, uri: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.uri, self.rate, self.halt = uri, rate, threading.Event()

    def run(self) -> None:
        market = Market(seed=99, users=25, pairs=4, exchanges=3)
        with EventStore(self.uri) as store:
            while not self.halt.wait(10 / self.rate):
                append_events(store, market.events(10), batch_size=10)


class Reader(threading.Thread):
    """A reader resolving the pointer and reading the checkpoint, as the console does, all along."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(daemon=True)
        self.client, self.halt, self.seen = client, threading.Event(), [0]
        self.backwards: list[tuple[int, int]] = []

    def run(self) -> None:
        while not self.halt.is_set():
            pipe = self.client.pipeline(transaction=True)  # one snapshot: the pointer and each checkpoint
            pipe.get(keys.generation_pointer(P))
            pipe.get(KeySpace(P, 1).checkpoint)
            pipe.get(KeySpace(P, 2).checkpoint)
            pointer, one, two = pipe.execute()
            now = int((two if pointer == b"2" else one) or 0)
            if now < self.seen[-1]:
                self.backwards.append((self.seen[-1], now))
            self.seen.append(now)
            self.halt.wait(0.002)


def test_a_rebuild_under_live_traffic_flips_to_a_generation_equal_to_a_fresh_projection(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 3000, bad_ratio=0.01)
    client = redis.Redis.from_url(redis_process.url)
    live = Runner(config(P, redis_process.url, store_process.uri, exit_when_caught_up=False))
    thread, errors = in_thread(live)
    wait_until(lambda: live.caught_up, 30, what="the live projector to catch up")
    traffic, reader = Appender(store_process.uri, 200), Reader(client)
    traffic.start()
    reader.start()
    try:
        result = switch_to(client, config(P, redis_process.url, store_process.uri), 2, Unattended())
    finally:
        traffic.halt.set()
        traffic.join(10)
    head = head_for(store_process.uri, P)
    wait_until(lambda: checkpoint_of(client, 2) == head, 30, what="the live projector to go on in generation 2")
    reader.halt.set()
    reader.join(5)
    live.stop()
    thread.join(15)
    assert errors == []
    assert result.flipped and live_generation(client, P) == 2 and result.difference_count == 0 and result.compared > 0
    assert 0 < result.pause_ms < 1000, result  # the live projector stood still for the flip, briefly
    assert reader.backwards == []  # no reader saw the read models go back in time
    assert checkpoint(client, P) < head  # generation 1 stands where the flip left it, kept for a rollback
    rebuilt = generation_content(client, 2)
    fresh = redis.Redis.from_url(redis_process.url.replace("/0", "/1"))
    run_to_end(redis_process.url.replace("/0", "/1"), store_process.uri, projections=(P,))
    assert rebuilt == generation_content(fresh, 1)  # nothing lost, nothing applied twice


def checkpoint_of(client: redis.Redis, generation: int) -> int:
    return int(client.get(KeySpace(P, generation).checkpoint) or 0)


def test_cancel_then_drop_leaves_the_live_generation_untouched(redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 3000, bad_ratio=0.0)
    client = redis.Redis.from_url(redis_process.url)
    run_to_end(redis_process.url, store_process.uri, projections=(P,))
    before = generation_content(client, 1)

    class CancelSoon(Unattended):
        def __init__(self) -> None:
            self.reports = 0

        def report(self, done: int, total: int | None, phase: str = "") -> None:
            self.reports += 1

        def cancelled(self) -> bool:
            return self.reports > 2

    with pytest.raises(JobCancelled):
        switch_to(client, config(P, redis_process.url, store_process.uri, batch_size=20), 2, CancelSoon())
    assert live_generation(client, P) == 1 and generation_content(client, 1) == before
    assert drop_generation(client, P, 2, Unattended()) > 0
    assert generation_content(client, 2) == {} and generation_content(client, 1) == before
    assert not client.exists(keys.generation_lease(P, 2))


def test_rollback_catches_the_old_generation_up_and_flips_back(redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 1500, bad_ratio=0.0)
    client = redis.Redis.from_url(redis_process.url)
    run_to_end(redis_process.url, store_process.uri, projections=(P,))
    switch_to(client, config(P, redis_process.url, store_process.uri), 2, Unattended())  # no live projector: flips at once
    assert live_generation(client, P) == 2
    append_market(store_process.uri, 500, start=1500, bad_ratio=0.0)  # generation 2 is live and moves on
    run_to_end(redis_process.url, store_process.uri, projections=(P,))
    head = head_for(store_process.uri, P)
    assert checkpoint_of(client, 2) == head and checkpoint_of(client, 1) < head

    result = switch_to(client, config(P, redis_process.url, store_process.uri), 1, Unattended(), verify=False)

    assert live_generation(client, P) == 1 and checkpoint_of(client, 1) >= head and result.to_generation == 1
    assert generation_content(client, 1) == generation_content(client, 2)
    with pytest.raises(Exception, match="is live"):
        drop_generation(client, P, 1, Unattended())


def test_a_run_whose_job_lease_is_gone_at_the_flip_never_flips(redis_process: RedisProcess,
                                                                store_process: StoreProcess) -> None:
    """The job's lease taken by another run after this run's last look at it: the flip's script checks the lease
    in the same step as the pointer, so the pointer stays where it was (JobLeaseLost), whatever the timing."""
    append_market(store_process.uri, 800, bad_ratio=0.0)
    client = redis.Redis.from_url(redis_process.url)
    run_to_end(redis_process.url, store_process.uri, projections=(P,))
    client.set(keys.job_lease(99), "another-run")

    class LostAtTheFlip(Unattended):
        def fence(self) -> tuple[str, str]:
            return keys.job_lease(99), "this-run"

    with pytest.raises(JobLeaseLost, match="no longer holds its job"):
        switch_to(client, config(P, redis_process.url, store_process.uri), 2, LostAtTheFlip(), verify=False)
    assert live_generation(client, P) == 1

    client.set(keys.job_lease(99), "this-run")  # while the lease is this run's, the same flip goes through
    switch_to(client, config(P, redis_process.url, store_process.uri), 2, LostAtTheFlip(), verify=False)
    assert live_generation(client, P) == 2


def test_a_flip_pause_the_new_generation_misses_is_aborted_and_tried_again(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 800, bad_ratio=0.0)
    client = redis.Redis.from_url(redis_process.url)
    run_to_end(redis_process.url, store_process.uri, (P,))
    client.set(keys.heartbeat(P), "1", px=60_000)  # a live projector "beats": the flip must pause it
    live_at = checkpoint(client, P)
    answers: list[str] = []
    halt = threading.Event()

    def stand_in_live_projector() -> None:  # pauses as the real one does; first at a checkpoint G cannot reach
        while not halt.wait(0.005):
            if text(client.hget(keys.flip(P), "state")) == "requested":
                at = str(live_at + 10**12) if not answers else str(live_at)
                answers.append(at)
                client.hset(keys.flip(P), mapping={"state": "paused", "at": at})

    stand_in = threading.Thread(target=stand_in_live_projector, daemon=True)
    stand_in.start()
    try:
        done = switch_to(client, config(P, redis_process.url, store_process.uri), 2, Unattended(), verify=False)
    finally:
        halt.set()
        stand_in.join(5)
    assert len(answers) == 2 and done.flipped  # the missed pause was aborted, the second one flipped
    assert live_generation(client, P) == 2 and int(text(client.get(KeySpace(P, 2).checkpoint))) >= live_at


def test_a_flip_while_the_live_projector_is_paused_past_its_heartbeat_moves_it_to_the_new_generation(
        redis_process: RedisProcess, store_process: StoreProcess, tmp_path: Path) -> None:
    """The live projector stopped (SIGSTOP) long enough for its heartbeat to expire, not its lease: the flip goes
    ahead without its acknowledgement; resumed, its next commit finds the pointer moved and it goes on in the new
    generation from that generation's checkpoint, never writing the old one again."""
    append_market(store_process.uri, 1500, bad_ratio=0.0)
    client = redis.Redis.from_url(redis_process.url)
    projector = ProjectorProcess(tmp_path / "projector.log", projection=P, redis_url=redis_process.url,
                                 eventstore_uri=store_process.uri, batch_size=50, status_interval=0.2, lease_ms=60_000)
    projector.start()
    try:
        head = head_for(store_process.uri, P)
        wait_until(lambda: checkpoint_of(client, 1) == head, 30, what="the live projector to catch up")
        holder = client.get(keys.lease(P))
        projector.pause()
        wait_until(lambda: not client.exists(keys.heartbeat(P)), 10, what="the paused projector's heartbeat to expire")

        done = switch_to(client, config(P, redis_process.url, store_process.uri), 2, Unattended(), verify=False)

        assert done.flipped and live_generation(client, P) == 2
        assert client.get(keys.lease(P)) == holder  # the paused projector still holds its lease
        flipped_at = checkpoint_of(client, 1)
        append_market(store_process.uri, 300, start=1500, bad_ratio=0.0)
        head = head_for(store_process.uri, P)
        projector.resume()
        wait_until(lambda: checkpoint_of(client, 2) == head, 30, what="the resumed projector to go on in generation 2")
    finally:
        projector.stop()
    assert checkpoint_of(client, 1) == flipped_at  # the old generation was not written after the flip
    fresh = redis.Redis.from_url(redis_process.url.replace("/0", "/1"))
    run_to_end(redis_process.url.replace("/0", "/1"), store_process.uri, projections=(P,))
    assert generation_content(client, 2) == generation_content(fresh, 1)  # nothing lost, nothing applied twice
