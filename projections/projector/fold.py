"""Folding a batch of decoded events over loaded entity states, in memory and pure.

Contract: ``fold_batch(model, ks, loaded, events)`` never does I/O; ``loaded``
holds the state of every entity the events touch (missing ones start empty).
It returns the new states of the entities that changed plus the append-only
entries, so the writer can diff old vs new and commit once.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from projections.events import DomainEvent
from projections.keys import KeySpace
from projections.readmodels.base import Append, ReadModel, Ref


@dataclass(frozen=True, slots=True)
class FoldResult:
    changed: dict[Ref, Any]
    appends: list[Append]


def touched_refs(model: ReadModel, events: Iterable[DomainEvent]) -> list[Ref]:
    """Every entity the events touch, each once, in first-touch order."""
    seen: dict[Ref, None] = {}
    for event in events:
        for ref in model.touches(event):
            seen[ref] = None
    return list(seen)


def fold_batch(model: ReadModel, ks: KeySpace, loaded: Mapping[Ref, Any], events: Sequence[DomainEvent]) -> FoldResult:
    current: dict[Ref, Any] = dict(loaded)
    changed: dict[Ref, Any] = {}
    appends: list[Append] = []
    for event in events:
        refs = model.touches(event)
        if not refs:
            continue
        for ref in refs:
            if ref not in current:
                current[ref] = model.empty(ref)
        new = model.step({ref: current[ref] for ref in refs}, event)
        for ref, state in new.items():
            if state is not current[ref]:
                current[ref] = changed[ref] = state
            appends.extend(model.appends(ks, ref, event, state))
    return FoldResult(changed, appends)
