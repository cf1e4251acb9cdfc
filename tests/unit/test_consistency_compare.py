"""The comparison behind a consistency check, and how its score is shown."""
from __future__ import annotations

from lucent_admin.formats import consistency
from projections.maintenance.report import (
    EXTRA_KEY,
    MEMBER_EXTRA,
    MEMBER_MISSING,
    MISSING_KEY,
    SCORE_DIFFERS,
    VALUE_DIFFERS,
    Difference,
    EntityCheck,
    Report,
    compare,
)
from projections.readmodels.base import Rendered


def test_every_kind_of_difference_is_named() -> None:
    expected = Rendered(owned={"a": {"x": "1", "y": "2"}, "gone": {"x": "1"}, "empty": {}},
                        zsets={"rank": {"u1": 1.0, "u2": 2.0}}, hfields={"shared": {"f": "v"}})
    actual = Rendered(owned={"a": {"x": "1", "y": "3", "z": "4"}, "stray": {"x": "1"}},
                      zsets={"rank": {"u1": 1.5, "ghost": 9.0}}, hfields={"shared": {"f": "v", "g": "w"}})
    found = {(key, name, kind) for key, name, kind, _, _ in compare(expected, actual)}
    assert found == {
        ("a", "y", VALUE_DIFFERS), ("a", "z", VALUE_DIFFERS), ("gone", "", MISSING_KEY), ("stray", "", EXTRA_KEY),
        ("rank", "u1", SCORE_DIFFERS), ("rank", "u2", MEMBER_MISSING), ("rank", "ghost", MEMBER_EXTRA),
        ("shared", "g", EXTRA_KEY),
    }
    assert compare(expected, expected) == []


def test_whole_sorted_sets_missing_or_extra_are_one_difference_each() -> None:
    expected = Rendered(zsets={"volume": {"BTC-USD": 1.0, "ETH-USD": 2.0}})
    actual = Rendered(zsets={"leftover": {"x": 1.0}})
    assert compare(expected, actual, whole_keys=True) == [
        ("leftover", "", EXTRA_KEY, "", "1 members"), ("volume", "", MISSING_KEY, "2 members", "")]
    assert len(compare(expected, actual)) == 3  # one entity's memberships: member by member


def test_the_score_is_consistent_over_checked_and_never_rounded_up_to_a_clean_store() -> None:
    report = Report("test", ["portfolio"])
    assert report.score is None and consistency(report.score) == "—"
    for i in range(9999):
        report.add(EntityCheck("portfolio", f"u{i}", 1, "1", 1, ()))
    wrong = Difference("portfolio", "bad", "portfolio:bad", "tradeCount", VALUE_DIFFERS, "3", "4", "an outside writer")
    report.add(EntityCheck("portfolio", "bad", 1, "1", 1, (wrong,)))
    assert report.score == 1 - 1 / 10_000 and consistency(report.score) == "99.99%"
    assert consistency(1.0) == "100.00%" and consistency(0.999999) == "99.99%"
    assert report.users_to_repair == ["bad"] and report.as_dict()["scores"] == {"portfolio": report.score}
