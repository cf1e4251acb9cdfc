"""Key layout, change notices and the writer's absolute plans (pure parts, no Redis)."""
from __future__ import annotations

import pytest

from projections import keys
from projections.errors import InvalidIdentifier
from projections.keys import KeySpace
from projections.projector.notices import LIMIT, group_name, notice_for
from projections.queries import check_pair, check_projection, check_user
from projections.readmodels.base import Append, Rendered
from projections.readmodels.portfolio import MODEL as PORTFOLIO
from projections.writer import Plan, diff, plan


def test_every_key_of_a_projection_shares_its_hash_tag() -> None:
    ks = KeySpace("portfolio", 3)
    names = [ks.portfolio("alice"), ks.portfolio_values(), ks.checkpoint, keys.lease("portfolio"), keys.parked("portfolio"),
             keys.generation_pointer("portfolio"), keys.status("portfolio"), keys.heartbeat("portfolio")]
    assert all(name.startswith("lucent:{portfolio}:") for name in names)
    assert ks.portfolio("alice") == "lucent:{portfolio}:g3:portfolio:alice"
    assert ks.name_of(ks.daily_volume_leaders("2025-03-01")) == "daily-volume-leaders:2025-03-01"
    assert keys.generation_pointer("risk") == "lucent:{risk}:generation"


def test_group_names_and_compact_notices() -> None:
    assert group_name("risk") == "changes.risk"
    ks = KeySpace("risk")
    changed = {("user", f"u{i}"): None for i in range(LIMIT + 5)}
    notice = notice_for("risk", ks, 42, changed, {ks.user_risk_scores(): {"u1"}, ks.risk_alerts(): {"alert-1"}})
    assert notice["projection"] == "risk" and notice["checkpoint"] == 42
    assert len(notice["users"]) == LIMIT and notice["truncated"] is True
    assert notice["rankings"] == ["user-risk-scores"] and notice["alerts"] == ["alert-1"] and notice["pairs"] == []


def test_diff_writes_only_changes_and_deletes_emptied_owned_hashes() -> None:
    old = Rendered(owned={"h": {"a": "1", "b": "2"}}, zsets={"z": {"m": 1.0, "gone": 2.0}}, hfields={"s": {"f": "x", "old": "y"}})
    new = Rendered(owned={"h": {"a": "1", "b": "3", "c": "4"}}, zsets={"z": {"m": 5.0}}, hfields={"s": {"f": "x"}})
    out = Plan()
    diff(old, new, out)
    assert sorted(out.writes) == sorted([
        ("HSET", "h", "b", "3", "c", "4"), ("ZADD", "z", "5.0", "m"), ("ZREM", "z", "gone"), ("HDEL", "s", "old"),
    ])
    assert out.changed_zsets == {"z": {"m", "gone"}}
    gone = Plan()
    diff(old, Rendered(), gone)
    assert ("DEL", "h") in gone.writes and ("HDEL", "s", "f", "old") in gone.writes  # a shared hash is never deleted


def test_appends_are_capped_once_per_key() -> None:
    ks = KeySpace("portfolio")
    entries = [Append("hist", f"m{i}", float(i), 1000) for i in range(3)]
    writes = plan(PORTFOLIO, ks, {}, {}, entries).writes
    assert writes[-1] == ("ZREMRANGEBYRANK", "hist", "0", "-1001")
    assert sum(1 for c in writes if c[0] == "ZREMRANGEBYRANK") == 1


def test_never_a_blind_increment() -> None:
    from projections.readmodels.portfolio import Portfolio

    out = plan(PORTFOLIO, KeySpace("portfolio"), {}, {("user", "a"): Portfolio("a", positions={"X-Y": 1.0})}, [])
    assert not {c[0] for c in out.writes} & {"HINCRBY", "HINCRBYFLOAT", "ZINCRBY", "INCR", "INCRBY"}


@pytest.mark.parametrize(("check", "value"), [(check_user, "a b"), (check_user, ""), (check_user, None), (check_pair, "BTC"),
                                              (check_pair, "BTC-USD:x"), (check_projection, "nope")])
def test_queries_reject_bad_identifiers_before_they_reach_a_key(check: object, value: object) -> None:
    with pytest.raises(InvalidIdentifier):
        check(value)  # type: ignore[operator]
    assert check_user("user-0001") == "user-0001" and check_pair("ETH-USD") == "ETH-USD"
