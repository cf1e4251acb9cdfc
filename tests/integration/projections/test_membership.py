"""Members claiming partitions with leases on a real Redis: fair shares, a join, a death, a zombie owner."""
from __future__ import annotations

import time
from collections import Counter

import redis

from projections import keys
from projections.codec import text
from projections.partitions import Partition, partitions_of
from projections.projector.membership import LOST, MOVED, Claim, Membership
from tests.waiting import wait_until

TTL_MS = 600
PARTITIONS = [*partitions_of("portfolio", 16), *partitions_of("risk", 16), Partition("market")]


class Recorder:
    """A member's runners as the membership sees them: started on a gain, stopped (drained) on a loss."""

    def __init__(self, client: redis.Redis, name: str) -> None:
        self.running: dict[Partition, Claim] = {}
        self.lost: list[tuple[Partition, str]] = []
        self.membership = Membership(client, name, PARTITIONS, TTL_MS, self.gain, self.lose,
                                     info=lambda: {"events_per_s": "0"})

    def gain(self, claim: Claim) -> None:
        assert claim.partition not in self.running
        self.running[claim.partition] = claim

    def lose(self, claim: Claim, why: str) -> None:
        assert self.running.pop(claim.partition) == claim
        self.lost.append((claim.partition, why))

    def of(self, projection: str) -> int:
        return sum(1 for p in self.running if p.projection == projection)


def settle(members: list[Recorder], rounds: int = 6) -> None:
    """Tick every member in turn, as their timers would, checking nobody ever owns what another owns."""
    for _ in range(rounds):
        for member in members:
            member.membership.tick()
            owners = Counter(p for m in members for p in m.running)
            assert max(owners.values(), default=1) == 1, "a partition owned by two members at once"


def ticking(members: list[Recorder], condition) -> bool:  # noqa: ANN001
    """One tick of every member (their timers keep running while a test waits), then ``condition()``."""
    settle(members, rounds=1)
    return bool(condition())


def test_three_members_share_sixteen_partitions_six_five_five_and_the_market_once(redis_client: redis.Redis) -> None:
    members = [Recorder(redis_client, f"m{n}") for n in range(3)]
    settle(members)
    for projection in ("portfolio", "risk"):
        assert sorted(m.of(projection) for m in members) == [5, 5, 6], projection
    assert sum(m.of("market") for m in members) == 1
    for member in members:  # each lease holds its owner's token, with the epoch the commits are fenced by
        for partition, claim in member.running.items():
            assert text(redis_client.get(keys.lease(partition.tag))) == claim.token == f"{member.membership.member}#{claim.epoch}"
    info = redis_client.hgetall(keys.member_info("m0"))
    assert set(text(info[b"partitions"]).split(",")) == {p.tag for p in members[0].running}


def test_the_first_member_does_not_keep_everything_when_a_second_joins(redis_client: redis.Redis) -> None:
    first = Recorder(redis_client, "first")
    settle([first], rounds=2)
    assert first.of("portfolio") == 16 and first.of("market") == 1
    second = Recorder(redis_client, "second")
    settle([first, second])
    assert (first.of("portfolio"), second.of("portfolio")) == (8, 8)
    moved = [p for p, why in first.lost if why == MOVED and p.projection == "portfolio"]
    assert len(moved) == 8 and set(moved) == {p for p in second.running if p.projection == "portfolio"}
    for partition in moved:  # a moved partition's new ownership has a new epoch (the old token can never commit)
        assert second.running[partition].epoch == 2


def test_a_dead_members_partitions_are_owned_again_once_its_leases_expire(redis_client: redis.Redis) -> None:
    members = [Recorder(redis_client, f"m{n}") for n in range(3)]
    settle(members)
    dead = members.pop(1)
    orphans = set(dead.running)
    wait_until(lambda: ticking(members, lambda: orphans <= set(members[0].running) | set(members[1].running)), 5,
               what="the dead member's partitions to be owned again", interval=TTL_MS / 3000)
    settle(members, rounds=2)
    assert sorted((m.of("portfolio"), m.of("risk")) for m in members) == [(8, 8), (8, 8)]
    assert orphans <= set(members[0].running) | set(members[1].running)
    assert redis_client.zscore(keys.members(), "m1") is None  # its announcement expired with it


def test_a_zombie_owner_loses_its_partitions_and_its_token_no_longer_holds(redis_client: redis.Redis) -> None:
    zombie, other = Recorder(redis_client, "zombie"), Recorder(redis_client, "other")
    settle([zombie], rounds=2)
    held = dict(zombie.running)
    # the zombie is paused past its TTL: its leases expire, the other member claims everything
    wait_until(lambda: not any(redis_client.exists(keys.lease(p.tag)) for p in held), 5, what="the zombie's leases to expire")
    settle([other], rounds=2)
    assert set(other.running) == set(PARTITIONS)

    zombie.membership.tick()  # continued: every renewal is refused, every runner is stopped as lost

    assert not zombie.running and {why for _, why in zombie.lost} == {LOST}
    for partition, claim in held.items():
        now = text(redis_client.get(keys.lease(partition.tag)))
        assert now != claim.token and now == other.running[partition].token


def test_leaving_drains_and_releases_everything_at_once(redis_client: redis.Redis) -> None:
    first, second = Recorder(redis_client, "first"), Recorder(redis_client, "second")
    settle([first, second])
    first.membership.leave()
    assert not first.running and redis_client.zscore(keys.members(), "first") is None
    settle([second], rounds=2)  # no wait for a TTL: the leases were released
    assert set(second.running) == set(PARTITIONS)


def test_a_member_keeps_its_partitions_while_redis_refuses_writes_for_memory(redis_client: redis.Redis) -> None:
    """Out of memory (noeviction) for three TTLs: the announcement (ZADD) is refused at every tick, the renewals
    (PEXPIRE) are not, so nothing is lost and no runner is restarted into a Redis that would refuse its heartbeat."""
    member = Recorder(redis_client, "m0")
    settle([member], rounds=2)
    held = dict(member.running)
    redis_client.config_set("maxmemory-policy", "noeviction")
    memory = redis_client.info("memory")  # below what the data takes: every deny-OOM write is refused
    redis_client.config_set("maxmemory", str(int(memory["used_memory_startup"]) + int(memory["used_memory_dataset"]) // 2))
    refused = 0
    try:
        until = time.monotonic() + 3 * TTL_MS / 1000

        def ticked_past_three_ttls() -> bool:
            nonlocal refused
            try:
                member.membership.tick()
            except redis.exceptions.OutOfMemoryError:
                refused += 1
            return time.monotonic() > until

        wait_until(ticked_past_three_ttls, 10, what="three TTLs of ticks", interval=member.membership.interval)
    finally:
        redis_client.config_set("maxmemory", "0")
    assert refused >= 3  # the announcement was refused: Redis was out of memory all along
    assert member.running == held and not member.lost
    for partition, claim in held.items():
        assert text(redis_client.get(keys.lease(partition.tag))) == claim.token
