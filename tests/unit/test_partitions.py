"""Partitions: a stable hash of the user id, tags, and each member's share of a projection's partitions."""
from __future__ import annotations

import zlib

import pytest

from projections.errors import ConfigurationError
from projections.partitions import Partition, check_count, holder_of, partition_of, partitions_of
from projections.projector.membership import preference, share


def test_a_users_partition_is_the_crc32_of_the_id_the_same_in_every_process() -> None:
    assert partition_of("alice", 16) == zlib.crc32(b"alice") & 15 == 7  # 663665735: the same on every machine
    assert partition_of("alice", 1) == 0
    spread = {partition_of(f"user-{n}", 16) for n in range(200)}
    assert spread == set(range(16))
    assert Partition("portfolio", 7, 16).owns("alice") and not Partition("portfolio", 9, 16).owns("alice")
    assert Partition("portfolio").owns("alice")


def test_a_single_partition_keeps_the_projections_own_tag() -> None:
    assert Partition("portfolio").tag == "portfolio" and Partition("portfolio").label == "portfolio"
    assert Partition("portfolio", 3, 16).tag == "portfolio.p03"
    assert Partition("risk", 200, 256).tag == "risk.p200" and Partition("risk", 7, 256).tag == "risk.p007"
    assert Partition("portfolio", 3, 16).label == "portfolio 3/16"
    assert [p.tag for p in partitions_of("risk", 4)] == ["risk.p00", "risk.p01", "risk.p02", "risk.p03"]


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
