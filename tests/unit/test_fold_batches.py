"""Batch boundaries never matter: folding in one batch equals folding in chunks with a codec round trip."""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import pytest

from projections.events import DomainEvent
from projections.keys import KeySpace
from projections.projector.fold import fold_batch, touched_refs
from projections.readmodels import model as model_of
from projections.readmodels.base import Append, Ref, Rendered
from projections.writer import Plan, diff, plan
from tests.unit.eventfactory import T0, minutes, simulated, trade


def images(name: str, states: dict[Any, Any]) -> dict[Any, Rendered]:
    model, ks = model_of(name), KeySpace(name)
    return {ref: model.render(ks, ref, s) for ref, s in states.items()}


@pytest.mark.parametrize("name", ["portfolio", "risk", "market", "leaderboards"])
def test_chunked_fold_with_round_trips_equals_one_batch(name: str) -> None:
    model, ks = model_of(name), KeySpace(name)
    events = [e for e in simulated(3000) if e.envelope.type in model.event_types]
    whole = fold_batch(model, ks, {}, events).changed
    rng = random.Random(3)
    stored: dict[Any, dict[str, str]] = {}  # ref -> main hash, as Redis would hold it
    i = 0
    while i < len(events):
        chunk = events[i : i + rng.randint(1, 120)]
        i += len(chunk)
        loaded = {r: model.parse(r, stored[r]) for r in touched_refs(model, chunk) if r in stored}
        for ref, state in fold_batch(model, ks, loaded, chunk).changed.items():
            stored[ref] = dict(model.render(ks, ref, state).owned[model.main_key(ks, ref)])
    final = {ref: model.parse(ref, fields) for ref, fields in stored.items()}
    assert images(name, final) == images(name, whole)


def test_plan_is_absolute_and_a_no_op_against_itself() -> None:
    model, ks = model_of("risk"), KeySpace("risk")
    events = [e for e in simulated(500) if e.envelope.type in model.event_types]
    changed = fold_batch(model, ks, {}, events).changed
    for ref, state in changed.items():
        plan = Plan()
        diff(model.render(ks, ref, state), model.render(ks, ref, state), plan)
        assert plan.writes == []
    plan = Plan()
    for ref, state in changed.items():
        diff(Rendered(), model.render(ks, ref, state), plan)
    verbs = {c[0] for c in plan.writes}
    assert verbs <= {"HSET", "HDEL", "ZADD", "ZREM", "DEL"}


# -- an event whose fold raises fails alone ------------------------------------------------------

YEAR_1 = datetime(1, 1, 1, tzinfo=timezone.utc)  # valid, but a 30-day leaderboard window starts before year 1


def test_an_absurd_but_valid_event_fails_alone_and_changes_nothing() -> None:
    model, ks = model_of("leaderboards"), KeySpace("leaderboards")
    good = [trade(T0, tradeId="t-1", userId="alice"), trade(T0 + minutes(1), tradeId="t-3", userId="bob", amountUsd=50.0)]
    absurd = trade(YEAR_1, tradeId="t-2", userId="bob")
    result = fold_batch(model, ks, {}, [good[0], absurd, good[1]])
    ((event, error),) = result.failed
    assert event is absurd
    assert (error.field, error.reason) == ("data", "fold failed: OverflowError: date value out of range")
    without = fold_batch(model, ks, {}, good)  # the batch as if the absurd event were not in it
    assert (result.changed, result.appends, without.failed) == (without.changed, without.appends, [])


def test_a_state_that_cannot_be_rendered_fails_its_event_under_check() -> None:
    """Two trades of ~1.7e308 USD on two pairs fold, but the day's exposure (their sum) overflows
    when rendered: planning raises, and folding again with ``check`` fails the second trade alone."""
    model, ks = model_of("risk"), KeySpace("risk")
    first, second = trade(tradeId="t-1", pair="BTC-USD", amountUsd=1.7e308), trade(tradeId="t-2", pair="ETH-USD", amountUsd=1.7e308)
    unchecked = fold_batch(model, ks, {}, [first, second])
    assert unchecked.failed == []
    with pytest.raises(OverflowError):
        plan(model, ks, {}, unchecked.changed, unchecked.appends)

    checked = fold_batch(model, ks, {}, [first, second], check=lambda ref, state: model.render(ks, ref, state))
    assert [(event, error.reason) for event, error in checked.failed] == [(second, "fold failed: OverflowError: intermediate overflow in fsum")]
    assert checked.changed == fold_batch(model, ks, {}, [first]).changed
    plan(model, ks, {}, checked.changed, checked.appends)  # renders now


class Exploding:
    """A tiny read model (the ReadModel protocol): a counter per user and per pair with one history
    entry per entity and event; the event with id ``bad`` fails in ``appends`` of its pair, after
    its user's appends and both new states were computed, so nothing of it may remain."""

    name = "exploding"
    event_types = ("TradeExecuted",)

    def __init__(self, bad: str) -> None:
        self.bad = bad

    def touches(self, event: DomainEvent) -> tuple[Ref, ...]:
        return (("user", getattr(event, "user_id")), ("pair", getattr(event, "pair")))

    def empty(self, ref: Ref) -> Any:
        return 0

    def step(self, states: Mapping[Ref, Any], event: DomainEvent) -> dict[Ref, Any]:
        return {ref: count + 1 for ref, count in states.items()}

    def main_key(self, ks: KeySpace, ref: Ref) -> str:
        return f"{ref[0]}:{ref[1]}"

    def parse(self, ref: Ref, fields: Mapping[str, str]) -> Any:
        return int(fields.get("count", 0))

    def render(self, ks: KeySpace, ref: Ref, state: Any) -> Rendered:
        return Rendered(owned={self.main_key(ks, ref): {"count": str(state)}})

    def appends(self, ks: KeySpace, ref: Ref, event: DomainEvent, state: Any) -> Sequence[Append]:
        if ref[0] == "pair" and event.envelope.event_id == self.bad:
            raise ZeroDivisionError("division by zero")
        return (Append(f"history:{ref[1]}", event.envelope.event_id, float(event.envelope.position), 10),)


def test_a_failing_event_leaves_states_and_appends_as_before_it() -> None:
    events = [trade(tradeId="t-1", userId="alice"), trade(tradeId="t-2", userId="alice"), trade(tradeId="t-3", userId="bob")]
    model = Exploding(bad=events[1].envelope.event_id)
    loaded = {("user", "alice"): 5}
    result = fold_batch(model, KeySpace("exploding"), loaded, events)  # type: ignore[arg-type]
    assert [(event, error.reason) for event, error in result.failed] == [(events[1], "fold failed: ZeroDivisionError: division by zero")]
    assert result.changed == {("user", "alice"): 6, ("pair", "BTC-USD"): 2, ("user", "bob"): 1}
    assert [a.member for a in result.appends] == [e.envelope.event_id for e in (events[0], events[0], events[2], events[2])]
    assert loaded == {("user", "alice"): 5}  # the caller's states are never mutated
