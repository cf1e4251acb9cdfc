"""Which absent users a projector may take for new without asking the store (projector/vanished.py)."""
from __future__ import annotations

from projections.projector.vanished import Known


def test_a_session_from_nothing_knows_new_users_until_it_has_committed_them() -> None:
    known = Known(from_nothing=True)
    assert known.new("alice")
    known.add(["alice"])
    assert not known.new("alice") and known.new("bob")  # alice absent now was lost, not new


def test_a_session_from_a_checkpoint_knows_no_user_to_be_new() -> None:
    assert not Known(from_nothing=False).new("alice")


def test_past_its_cap_it_stops_saying_new() -> None:
    known = Known(from_nothing=True, cap=2)
    known.add(["a", "b", "c"])
    assert not known.new("d") and not known.users
