"""Partitions: a stable hash of the user id, tags, and each member's share of a projection's partitions."""
from __future__ import annotations

import zlib
from collections import Counter
from typing import Any

import pytest
from redis.crc import key_slot

from projections.errors import ConfigurationError
from projections.keys import KeySpace
from projections.partitions import SLOTS, Partition, check_count, holder_of, partition_of, partitions_of
from projections.projector.fold import fold_batch
from projections.projector.membership import preference, share
from projections.projector.vanished import first_positions
from projections.readmodels import model as model_of
from projections.readmodels.base import Placement, Ref, held_refs
from projections.readmodels.clock import CLOCK, Clock
from projections.readmodels.portfolio import MARKS
from tests.unit.eventfactory import simulated


def test_a_users_partition_is_the_crc32_of_the_id_the_same_in_every_process() -> None:
    assert partition_of("alice", 16) == zlib.crc32(b"alice") & 15 == 7  # 663665735: the same on every machine
    assert partition_of("alice", 1) == 0
    spread = {partition_of(f"user-{n}", 16) for n in range(200)}
    assert spread == set(range(16))
    assert Partition("portfolio", 7, 16).owns("alice") and not Partition("portfolio", 9, 16).owns("alice")
    assert Partition("portfolio").owns("alice")


def test_a_single_partition_keeps_the_projections_own_tag() -> None:
    assert Partition("portfolio").tag == "portfolio" and Partition("portfolio").label == "portfolio"
    assert Partition("portfolio", 3, 16).tag.startswith("portfolio.p03")
    assert Partition("risk", 200, 256).tag.startswith("risk.p200.") and Partition("risk", 7, 256).tag.startswith("risk.p007")
    assert Partition("portfolio", 3, 16).label == "portfolio 3/16"
    assert [p.tag for p in partitions_of("leaderboards", 4)] == \
           ["leaderboards.p00.40", "leaderboards.p01.60", "leaderboards.p02.13", "leaderboards.p03.3"]  # never to change


@pytest.mark.parametrize("count", [4, 16, 64])
def test_partitions_spread_evenly_over_a_clusters_primaries(count: int) -> None:
    """Over primaries holding equal contiguous slot ranges (redis-cli --cluster create), each holds count / primaries
    partitions, give or take one (the bare names put 8 of leaderboards' 16 on one of 3)."""
    for name in ("portfolio", "risk", "leaderboards"):
        slots = [key_slot(p.tag.encode()) for p in partitions_of(name, count)]
        assert len(set(slots)) == count
        for primaries in (2, 3, 5):
            held = Counter(min(slot * primaries // SLOTS, primaries - 1) for slot in slots)
            assert max(held.values()) - min(held.values()) <= 1 and sum(held.values()) == count, (name, primaries, held)


def test_a_partition_count_is_a_power_of_two() -> None:
    assert check_count(16) == 16
    for bad in (0, 3, 12, 2048):
        with pytest.raises(ConfigurationError, match="LUCENT_PARTITIONS: must be a power of two"):
            check_count(bad, "LUCENT_PARTITIONS")


def test_shares_add_up_and_differ_by_at_most_one() -> None:
    members = ["a", "b", "c"]
    for offset in range(3):
        shares = [share(16, members, m, offset) for m in members]
        assert sorted(shares) == [5, 5, 6] and sum(shares) == 16
    extra = [next(m for m in members if share(16, members, m, offset) == 6) for offset in range(3)]
    assert sorted(extra) == members  # the extra partition goes to a different member for each projection
    assert share(1, members, "a") + share(1, members, "b") + share(1, members, "c") == 1
    assert share(16, ["a"], "a") == 16


def test_preference_is_stable_and_holders_read_back() -> None:
    p = Partition("risk", 2, 16)
    assert preference("m1", p) == preference("m1", Partition("risk", 2, 16)) != preference("m2", p)
    assert holder_of("host:12:ab#7") == ("host:12:ab", 7)
    assert holder_of(None) is None and holder_of("legacy-token") is None


@pytest.mark.parametrize("name", ["portfolio", "risk", "leaderboards"])
def test_folding_sixteen_partitions_and_merging_them_equals_one_partition(name: str) -> None:
    """Each user's entities in exactly one partition, as one partition folds them; strategies in partition 0 alone;
    every partition's marks the same as one partition's; the newest of the partitions' clocks the one partition's."""
    model, ks = model_of(name), KeySpace(name)
    events = [e for e in simulated(3000) if e.envelope.type in model.event_types]
    whole = fold_batch(model, ks, {}, events).changed
    merged: dict[Ref, Any] = {}
    clocks: list[Clock] = []
    for part in partitions_of(name, 16):
        for ref, state in fold_batch(model, ks, {}, events, partition=part).changed.items():
            place = model.placement(ref)
            if place is Placement.LOCAL:
                clocks.append(state)
            elif place is Placement.REPLICATED:
                assert state == whole[ref], f"{ref} in {part.label}"
            else:
                assert ref not in merged, f"{ref} folded in two partitions"
                assert place is not Placement.HOME or part.index == 0
                assert place is not Placement.USER or part.owns(ref[1])
                merged[ref] = state
    expected = {ref: s for ref, s in whole.items() if model.placement(ref) in (Placement.USER, Placement.HOME)}
    assert merged == expected and len({partition_of(ref[1], 16) for ref in merged if ref[0] == model.user_kind}) > 4
    if CLOCK in whole:
        assert max(clocks, key=lambda c: c.at) == whole[CLOCK]


def test_an_event_of_another_partitions_user_is_not_folded_and_a_price_is_folded_by_every_partition() -> None:
    model = model_of("portfolio")
    trade_refs = (("user", "alice"), MARKS)
    assert held_refs(model, trade_refs, Partition("portfolio", 7, 16)) == trade_refs
    assert held_refs(model, trade_refs, Partition("portfolio", 9, 16)) is None
    assert held_refs(model, (MARKS,), Partition("portfolio", 9, 16)) == (MARKS,)
    board = model_of("leaderboards")
    refs = (("trader", "alice"), ("strategy", "s1"), CLOCK)
    assert held_refs(board, refs, Partition("leaderboards", 0, 16)) == (("strategy", "s1"), CLOCK)
    assert held_refs(board, refs, Partition("leaderboards", 7, 16)) == (("trader", "alice"), CLOCK)
    assert held_refs(board, refs, Partition("leaderboards", 9, 16)) is None


def test_a_partition_looks_for_lost_entities_only_among_its_own_users() -> None:
    """A partition never loads another partition's users, so it must not take them for lost ones (and ask the store
    about them): only the users it holds are candidates."""
    model = model_of("risk")
    events = [e for e in simulated(600) if e.envelope.type in model.event_types]
    everyone = {ref[1] for ref in first_positions(model, events)}
    parts = partitions_of("risk", 4)
    mine = [{ref[1] for ref in first_positions(model, events, part)} for part in parts]
    assert set().union(*mine) == everyone and sum(len(m) for m in mine) == len(everyone)
    assert all(part.owns(user) for part, users in zip(parts, mine) for user in users)
