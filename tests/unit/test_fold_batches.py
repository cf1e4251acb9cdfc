"""Batch boundaries never matter: folding in one batch equals folding in chunks with a codec round trip."""
from __future__ import annotations

import random
from typing import Any

import pytest
from esdbclient import RecordedEvent

from projections.events import DomainEvent, Ignored, decode
from projections.keys import KeySpace
from projections.projector.fold import fold_batch, touched_refs
from projections.readmodels import model as model_of
from projections.readmodels.base import Rendered
from projections.simulation.market import Market
from projections.writer import Plan, diff


def simulated(n: int) -> list[DomainEvent]:
    out: list[DomainEvent] = []
    for i, (stream, proposed) in enumerate(Market(seed=5, users=12, pairs=3, exchanges=3).events(n)):
        new = proposed.to_new_event()
        recorded = RecordedEvent(type=new.type, data=new.data, metadata=new.metadata, content_type=new.content_type,
                                 id=new.id, stream_name=stream, stream_position=0, commit_position=(i + 1) * 7,
                                 prepare_position=(i + 1) * 7)
        event = decode(recorded)
        if not isinstance(event, Ignored):
            out.append(event)
    return out


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
