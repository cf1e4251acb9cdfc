"""A long catch-up moves its reading to a child process: same keyspace, and its failures are survived."""
from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from projections.projector.runner import Runner
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections.helpers import append_market, checkpoint, config, head_for, keyspace, run_to_end
from tests.waiting import wait_until


def reader_pids(uri: str) -> list[int]:
    """Live ``python -m projections.projector.reader`` children reading from ``uri``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"projections.projector.reader" in cmdline and any(uri.encode() in part for part in cmdline) and state != "Z":
            found.append(int(entry.name))
    return found


def reference(client: redis.Redis, redis_url: str, uri: str, projections: tuple[str, ...]) -> dict[str, object]:
    run_to_end(redis_url, uri, projections, batch_size=200, reader_process_after=-1)
    expected = keyspace(client)
    client.flushdb()
    return expected


@pytest.mark.parametrize("after", [0, 300])
def test_catch_up_through_a_reader_process_gives_the_same_keyspace(after: int, redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 1500)
    client = redis.Redis.from_url(redis_process.url)
    expected = reference(client, redis_process.url, store_process.uri, ("portfolio", "risk"))
    run_to_end(redis_process.url, store_process.uri, ("portfolio", "risk"), batch_size=200, reader_process_after=after)
    assert keyspace(client) == expected
    assert checkpoint(client, "portfolio") == head_for(store_process.uri, "portfolio")
    assert reader_pids(store_process.uri) == []  # the child is gone once the projection is live


def on_batch(number: int, action: Callable[[], None]) -> Callable[[str], None]:
    """A runner hook that performs ``action`` once, before the ``number``-th batch is loaded."""
    seen = {"read": 0}

    def hook(step: str) -> None:
        if step == "read":
            seen["read"] += 1
            if seen["read"] == number:
                action()

    return hook


def kill_reader(uri: str) -> None:
    (pid,) = reader_pids(uri)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: reader_pids(uri) == [], 10, what="the reader process to die")


@pytest.mark.parametrize("failure", ["reader killed", "store restarted"])
def test_a_failing_reader_process_is_replaced_and_nothing_is_lost_or_doubled(
    failure: str, redis_process: RedisProcess, store_process: StoreProcess
) -> None:
    append_market(store_process.uri, 2000)
    client = redis.Redis.from_url(redis_process.url)
    expected = reference(client, redis_process.url, store_process.uri, ("portfolio",))
    action = (lambda: kill_reader(store_process.uri)) if failure == "reader killed" else store_process.restart
    hook = on_batch(4, action)
    runner = Runner(config("portfolio", redis_process.url, store_process.uri, reader_process_after=0), hook=hook)
    runner.run()
    assert keyspace(client) == expected  # trade counts and history would show an event applied twice
    assert checkpoint(client, "portfolio") == head_for(store_process.uri, "portfolio")
    assert reader_pids(store_process.uri) == []


def test_a_writer_that_bumps_the_state_epoch_is_seen_by_the_running_projector(
    redis_process: RedisProcess, store_process: StoreProcess
) -> None:
    """The projector keeps states between batches; an outside writer (a repair) bumps the epoch and wins."""
    from projections.eventstore import EventStore, ProposedEvent
    from projections.keys import KeySpace
    from tests.integration.projections.helpers import in_thread

    append_market(store_process.uri, 300)
    client = redis.Redis.from_url(redis_process.url)
    runner = Runner(config("portfolio", redis_process.url, store_process.uri, exit_when_caught_up=False))
    thread, errors = in_thread(runner)
    ks = KeySpace("portfolio")

    def trade(trade_id: str) -> int:
        data = {"tradeId": trade_id, "userId": "epoch-user", "pair": "BTC-USD", "side": "buy", "amount": 1.0, "price": 10.0,
                "amountUsd": 10.0, "exchange": "binance", "executedAt": "2025-03-01T12:00:00Z"}
        with EventStore(store_process.uri) as store:
            return store.append("trades-epoch-user", [ProposedEvent("TradeExecuted", data)])

    try:
        position = trade("t-epoch-1")
        wait_until(lambda: checkpoint(client, "portfolio") >= position, 20, what="the first trade applied")
        assert client.hget(ks.portfolio("epoch-user"), "tradeCount") == b"1"
        client.hset(ks.portfolio("epoch-user"), "tradeCount", "41")  # a repair's write...
        client.incr(ks.state_epoch)  # ...announced to the projector
        position = trade("t-epoch-2")
        wait_until(lambda: checkpoint(client, "portfolio") >= position, 20, what="the second trade applied")
        assert client.hget(ks.portfolio("epoch-user"), "tradeCount") == b"42"  # folded from Redis, not the stale cache
    finally:
        runner.stop()
        thread.join(10)
    assert not errors


def test_a_reader_process_ends_when_its_projector_is_killed(store_process: StoreProcess) -> None:
    import subprocess
    import sys

    append_market(store_process.uri, 50)
    script = ("import sys, time; from projections.projector.reader import ReaderProcess; "
              f"r = ReaderProcess({store_process.uri!r}, None, ['TradeExecuted'], 30, flush_at=2**62); "
              "print('up', flush=True); time.sleep(60)")
    projector = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[3])
    try:
        assert projector.stdout is not None and projector.stdout.readline().strip() == "up"
        wait_until(lambda: len(reader_pids(store_process.uri)) == 1, 20, what="the reader process to start")
        projector.kill()  # -9: no chance to stop its child
        wait_until(lambda: reader_pids(store_process.uri) == [], 20, what="the orphaned reader process to exit")
    finally:
        projector.kill()
        projector.wait()
