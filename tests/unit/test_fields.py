"""The action layer's field checks: each names the field and the fix, and accepts what the catalog accepts."""
from __future__ import annotations

from lucent_admin.operations import fields


def test_problems_name_each_field_and_skip_the_good_ones() -> None:
    found = fields.problems(user_id=fields.identifier("User id", "bad id!"), alert_id=fields.identifier("Alert id", "a-1"),
                            note=fields.note("x" * 10_000))
    assert found.startswith("user_id: User id must be 1–64 characters")
    assert "alert_id" not in found
    assert "; note: Note must be at most" in found


def test_a_choice_lists_what_is_allowed_and_what_empty_means() -> None:
    assert fields.one_of("Projection", "nope", ["risk", "market"]) == "Projection must be one of risk, market."
    assert fields.one_of("Projection", "", ["risk"]) == "Projection must be one of risk."
    assert fields.one_of("Projection", "", ["risk"], otherwise="all of them") == ""
    assert "(or none: all of them)" in fields.one_of("Projection", "x", ["risk"], otherwise="all of them")


def test_an_event_is_named_by_id_stream_and_id_or_position() -> None:
    event_id = "0b6f6a2e-3f4e-4d0b-9d55-6c3a0c1f2a11"
    for good in (event_id, f"trades-u1/{event_id}", "1234"):
        assert fields.event_name(good) == "", good
    for bad in ("nope", f"/{event_id}", "-3", f"a\nb/{event_id}"):
        assert fields.event_name(bad).startswith("Event must be an event id"), bad


def test_users_are_at_least_one_at_most_a_job_and_each_an_id() -> None:
    assert fields.users([]) == "give at least one user id"
    assert "split the list" in fields.users(["u"] * (fields.MAX_USERS_PER_JOB + 1))
    assert fields.users(["ok", "not ok"]).startswith("'not ok' is not a user id")
    assert fields.users(["alice", "bob"]) == ""
