"""Projector members as real processes: two split the four projections, and one killed with -9 leaves its
projections to the other, which carries on from their checkpoints: the read models equal a fresh projection."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import redis

from projections import keys
from projections.codec import text
from projections.queries import Queries
from projections.readmodels import PROJECTIONS
from tests.fixtures.projections import MemberProcess, RedisProcess, StoreProcess
from tests.integration.projections.helpers import append_market, checkpoint, generation_content, head_for, run_to_end
from tests.waiting import wait_until

LEASE_MS = 1500


def owners(client: redis.Redis) -> dict[str, str]:
    """Each projection's owning member ('' for nobody), as the Shards page shows it."""
    return {row.partition.projection: row.owner for row in Queries(client).shards().partitions}


def members(tmp_path: Path, redis_url: str, uri: str, names: list[str]) -> list[MemberProcess]:
    config = {"projection": "", "redis_url": redis_url, "eventstore_uri": uri, "batch_size": 100, "lease_ms": LEASE_MS,
              "status_interval": 0.2, "backoff_initial": 0.05, "backoff_max": 0.5}
    started = [MemberProcess(tmp_path / f"{name}.log", name, list(PROJECTIONS), **config) for name in names]
    for member in started:
        member.start()
    return started


def caught_up(client: redis.Redis, uri: str) -> bool:
    return all(checkpoint(client, name) >= head_for(uri, name) for name in PROJECTIONS)


def equals_a_fresh_projection(client: redis.Redis, redis_process: RedisProcess, store_uri: str) -> None:
    fresh_url = redis_process.url.rsplit("/", 1)[0] + "/9"
    fresh = redis.Redis.from_url(fresh_url)
    run_to_end(fresh_url, store_uri)
    for name in PROJECTIONS:  # the checkpoints aside: a fresh run ends on the store's last position, a live one on its last event
        live, replayed = generation_content(client, 1, name), generation_content(fresh, 1, name)
        assert int(live.pop("checkpoint")) <= int(replayed.pop("checkpoint")) and live == replayed, name


def test_two_members_split_the_projections_and_a_killed_ones_are_carried_on_by_the_other(
        tmp_path: Path, redis_process: RedisProcess, store_process: StoreProcess) -> None:
    append_market(store_process.uri, 1500, bad_ratio=0.0)
    client = redis.Redis.from_url(redis_process.url)
    first, second = members(tmp_path, redis_process.url, store_process.uri, ["first", "second"])
    try:
        wait_until(lambda: sorted(Counter(owners(client).values()).items()) == [("first", 2), ("second", 2)], 30,
                   what="the two members to own two projections each")
        wait_until(lambda: caught_up(client, store_process.uri), 60, what="every projection to catch up")
        left = {name for name, owner in owners(client).items() if owner == "first"}

        first.kill()
        append_market(store_process.uri, 500, start=1500, bad_ratio=0.0)  # traffic while its leases run out

        wait_until(lambda: set(owners(client).values()) == {"second"}, LEASE_MS / 1000 + 10,
                   what="the killed member's projections to be owned by the other")
        wait_until(lambda: caught_up(client, store_process.uri), 60, what="every projection to catch up again")
        info = client.hgetall(keys.member_info("second"))
        assert set(text(info[b"partitions"]).split(",")) == set(PROJECTIONS) and left
    finally:
        second.stop()
        first.stop()
    equals_a_fresh_projection(client, redis_process, store_process.uri)
