"""Whatever fails — a crash between batch steps, a rival projector, the store or Redis
restarting — the read models end equal to an uninterrupted replay."""
from __future__ import annotations

import pytest
import redis

from projections import keys
from projections.errors import Fenced
from projections.projector.runner import Runner
from projections.queries import Queries
from projections.writer import Committer
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections.helpers import append_market, checkpoint, config, head_for, in_thread, keyspace, run_to_end
from tests.waiting import wait_until


class Crash(BaseException):
    """A simulated process death: not an Exception, so nothing in the runner catches it."""


def reference(client: redis.Redis, redis_url: str, uri: str, projections: tuple[str, ...]) -> dict[str, object]:
    run_to_end(redis_url, uri, projections, batch_size=1000)
    expected = keyspace(client)
    client.flushdb()
    return expected


@pytest.mark.parametrize("step", ["read", "fold", "write", "commit"])
def test_crash_between_any_two_steps_then_restart_gives_the_same_keyspace(
    step: str, redis_process: RedisProcess, store_process: StoreProcess
) -> None:
    append_market(store_process.uri, 1200)
    client = redis.Redis.from_url(redis_process.url)
    expected = reference(client, redis_process.url, store_process.uri, ("portfolio", "risk"))
    for name in ("portfolio", "risk"):
        calls = {"n": 0}

        def hook(at: str) -> None:
            if at == step:
                calls["n"] += 1
                if calls["n"] == 4:
                    raise Crash(f"killed at {at}")

        with pytest.raises(Crash):
            Runner(config(name, redis_process.url, store_process.uri), hook=hook).run()
        assert 0 < checkpoint(client, name) or step in ("read", "fold", "write")
        Runner(config(name, redis_process.url, store_process.uri)).run()
    assert keyspace(client) == expected


def test_two_projectors_started_together_end_with_one_running(redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 1000)
    head = head_for(store_process.uri, "market")
    client = redis.Redis.from_url(redis_process.url)
    expected = reference(client, redis_process.url, store_process.uri, ("market",))
    runners = [Runner(config("market", redis_process.url, store_process.uri, exit_when_caught_up=False)) for _ in range(2)]
    threads = [in_thread(r) for r in runners]
    wait_until(lambda: sum(bool(errors) for _, errors in threads) == 1, 15, what="the loser to stop")
    loser = next(i for i, (_, errors) in enumerate(threads) if errors)
    assert isinstance(threads[loser][1][0], Fenced)
    assert "already run by projector" in str(threads[loser][1][0])
    winner = runners[1 - loser]
    wait_until(lambda: checkpoint(client, "market") >= head, 30, what="the winner to catch up")
    assert client.get(keys.lease("market")).decode() == winner.token
    winner.stop()
    threads[1 - loser][0].join(10)
    assert keyspace(client) == expected


def test_a_stale_projector_cannot_commit(redis_process: RedisProcess) -> None:
    client = redis.Redis.from_url(redis_process.url)
    client.set(keys.lease("risk"), "someone-else")
    ks = keys.KeySpace("risk")
    with pytest.raises(Fenced, match="someone-else"):
        Committer(client, "risk", "me", 1000).commit(ks, "", 10, [("HSET", ks.user_risk("u"), "a", "1")], "")
    assert client.exists(ks.user_risk("u")) == 0 and client.get(ks.checkpoint) is None


def test_store_and_redis_restarts_mid_run_are_survived(redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 700)
    client = redis.Redis.from_url(redis_process.url)
    runner = Runner(config("portfolio", redis_process.url, store_process.uri, exit_when_caught_up=False))
    thread, errors = in_thread(runner)
    wait_until(lambda: checkpoint(client, "portfolio") > 0, 20, what="a first checkpoint")
    store_process.restart()
    append_market(store_process.uri, 700, start=700)
    head = head_for(store_process.uri, "portfolio")
    wait_until(lambda: checkpoint(client, "portfolio") >= head, 30, what="catch-up after the store restart")
    redis_process.restart()
    append_market(store_process.uri, 600, start=1400)
    head = head_for(store_process.uri, "portfolio")
    wait_until(lambda: checkpoint(client, "portfolio") >= head, 30, what="catch-up after the Redis restart")

    def reported_live() -> bool:
        status = Queries(client).projection_status("portfolio")[0]
        return status.state == "live" and status.alive and status.events_behind == 0 and status.checkpoint >= head

    wait_until(reported_live, 10, what="status: live, heartbeat, nothing behind")
    live = Queries(client).projection_status("portfolio")[0]
    assert live.heartbeat_age is not None and live.heartbeat_age < 5 and live.lag_seconds == 0
    runner.stop()
    thread.join(10)
    assert not errors and not thread.is_alive()
    assert not Queries(client).projection_status("portfolio")[0].alive  # a stopped projector shows as dead
    survived = keyspace(client)
    client.flushdb()
    run_to_end(redis_process.url, store_process.uri, ("portfolio",), batch_size=1000)
    assert keyspace(client) == survived
