"""Entities whose keys vanish behind the projector (eviction, a lossy failover) are never written partially
(issue 21, item 2): the next batch that touches such a user rebuilds the user first, whether the projector
held the user in its cache (the commit's guards refuse) or loads it after a restart (the store says the user
is not new), and the user's keys then equal a fresh projection's."""
from __future__ import annotations

from typing import Any

import redis

from projections import keys
from projections.keys import KeySpace
from projections.maintenance.user_rebuild import heal
from projections.projector.runner import Runner
from projections.readmodels import model
from tests.fixtures.projections import RedisProcess, StoreProcess
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

USER_PROJECTIONS = ("portfolio", "risk", "leaderboards")


def delete_entities(client: redis.Redis, projection: str) -> set[str]:
    """Delete every user entity hash of ``projection``'s live generation (as an eviction would); their users."""
    m = model(projection)
    pattern = m.main_key(KeySpace(projection), (str(m.user_kind), "*"))
    found = [key.decode() for key in client.scan_iter(match=pattern, count=1000)]
    client.delete(*found)
    return {key[len(pattern) - 1:].split(":")[0] for key in found}


def of_users(content: dict[str, Any], users: set[str]) -> dict[str, Any]:
    """The part of a generation's content that is these users': their own keys (a user id is one segment of the
    name) and their members of every ranking."""
    out: dict[str, Any] = {}
    for name, value in content.items():
        if users & set(name.split(":")):
            out[name] = value
        elif isinstance(value, list):
            mine = [(member, score) for member, score in value if member.decode() in users]
            if mine:
                out[name] = mine
    return out


def live_runners(url: str, uri: str) -> list[tuple[Runner, Any]]:
    runners = [Runner(config(name, url, uri, exit_when_caught_up=False), healer=heal) for name in USER_PROJECTIONS]
    return [(runner, in_thread(runner)) for runner in runners]


def stop(running: list[tuple[Runner, Any]]) -> None:
    for runner, (thread, errors) in running:
        runner.stop()
        thread.join(10)
        assert not errors, errors


def caught_up(client: redis.Redis, uri: str) -> None:
    for name in USER_PROJECTIONS:
        head = head_for(uri, name)
        wait_until(lambda: checkpoint(client, name) >= head, 60, what=f"{name} to reach {head}")


def test_users_whose_keys_vanished_are_rebuilt_before_the_next_write_with_a_warm_cache_and_after_a_restart(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    client = redis.Redis.from_url(redis_process.url)
    append_market(store_process.uri, 1500, bad_ratio=0.0)
    running = live_runners(redis_process.url, store_process.uri)
    caught_up(client, store_process.uri)

    # 1. the runners hold the users in their caches; their keys vanish; the market trades on
    lost = {name: delete_entities(client, name) for name in USER_PROJECTIONS}
    assert all(lost.values())
    append_market(store_process.uri, 400, start=1500, bad_ratio=0.0)
    caught_up(client, store_process.uri)
    stop(running)

    # 2. again with cold caches: the runners start after the loss
    lost_again = {name: delete_entities(client, name) for name in USER_PROJECTIONS}
    running = live_runners(redis_process.url, store_process.uri)
    append_market(store_process.uri, 400, start=1900, bad_ratio=0.0)
    caught_up(client, store_process.uri)
    stop(running)

    fresh_url = redis_process.url.rsplit("/", 1)[0] + "/1"
    run_to_end(fresh_url, store_process.uri, projections=USER_PROJECTIONS)
    fresh = redis.Redis.from_url(fresh_url)
    for name in USER_PROJECTIONS:
        here, there = generation_content(client, 1, name), generation_content(fresh, 1, name)
        m = model(name)
        present = {u for u in lost[name] | lost_again[name]
                   if client.exists(m.main_key(KeySpace(name), (str(m.user_kind), u)))}
        assert present, f"no lost user of {name} traded again"
        assert of_users(here, present) == of_users(there, present), name  # whole, never partial
        status = client.hget(keys.status(name), "healed")
        assert status is not None and int(status) > 0
