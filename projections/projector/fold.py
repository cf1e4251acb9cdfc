"""Folding a batch of decoded events over loaded entity states, in memory and pure.

Contract: ``fold_batch(model, ks, loaded, events)`` never does I/O; ``loaded``
holds the state of every entity the events touch (missing ones start empty).
It returns the new states of the entities that changed plus the append-only
entries, so the writer can diff old vs new and commit once.

An event whose fold raises (a valid but absurd event, e.g. a trade on
0001-01-01 whose 30-day window starts before year 1) does not abort the batch:
it leaves every state as it was before it, its appends are dropped, and it is
returned in ``failed`` with a :class:`~projections.errors.BadEvent` for the
runner to park (DESIGN.md invariant 5). The events after it are folded.
A state can also fold fine and then fail to render (the runner finds that out
when it plans the writes); the runner then folds the batch again with
``check`` rendering every new state, which fails that event alone.
``publish(event, before, after)``, if given (the live projector's builder, see
:mod:`projections.published`), gives the events to publish for each event folded; a failed
event's are dropped with its appends.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from projections.errors import BadEvent
from projections.events import DomainEvent
from projections.keys import KeySpace
from projections.partitions import Partition
from projections.published import Builder, Outgoing
from projections.readmodels.base import Append, ReadModel, Ref, Rendered, held_refs
from projections.writer import Plan, plan

log = logging.getLogger(__name__)

REASON_MAX = 200  # chars of the fold's exception message kept in the parked event's reason


@dataclass(frozen=True, slots=True)
class FoldResult:
    changed: dict[Ref, Any]
    appends: list[Append]
    failed: list[tuple[DomainEvent, BadEvent]] = field(default_factory=list)  # folds that raised, in batch order
    published: list[Outgoing] = field(default_factory=list)  # events to publish, in batch order (see module doc)


def touched_refs(model: ReadModel, events: Iterable[DomainEvent], partition: Partition | None = None) -> list[Ref]:
    """Every entity the events touch (those ``partition`` holds, if given), each once, in first-touch order."""
    seen: dict[Ref, None] = {}
    for event in events:
        refs = model.touches(event)
        for ref in refs if partition is None else held_refs(model, refs, partition) or ():
            seen[ref] = None
    return list(seen)


def fold_batch(
    model: ReadModel, ks: KeySpace, loaded: Mapping[Ref, Any], events: Sequence[DomainEvent],
    check: Callable[[Ref, Any], object] | None = None, publish: Builder | None = None, partition: Partition | None = None,
) -> FoldResult:
    """Fold ``events`` in order (see the module doc). ``check(ref, state)``, if given, is called on
    each new state as part of its event's step, so a state it rejects (raises on) fails that event.
    ``partition``: fold only for the entities it holds (:func:`~projections.readmodels.base.held_refs`); the others
    an event touches are folded from empty and dropped (no step reads another entity's result)."""
    current: dict[Ref, Any] = dict(loaded)
    changed: dict[Ref, Any] = {}
    appends: list[Append] = []
    failed: list[tuple[DomainEvent, BadEvent]] = []
    published: list[Outgoing] = []
    for event in events:
        mark = len(appends)
        outgoing: Sequence[Outgoing] = ()
        try:
            refs = model.touches(event)
            mine = refs if partition is None else held_refs(model, refs, partition)
            if not mine:
                continue
            for ref in mine:
                if ref not in current:
                    current[ref] = model.empty(ref)  # an empty state is what a missing entity is anyway
            new = model.step({ref: current[ref] if ref in current else model.empty(ref) for ref in refs}, event)
            if len(mine) < len(refs):
                new = {ref: state for ref, state in new.items() if ref in mine}
            for ref, state in new.items():
                appends.extend(model.appends(ks, ref, event, state))
                if check is not None and state is not current[ref]:
                    check(ref, state)
            if publish is not None:
                outgoing = publish(event, current, new)
        except Exception as exc:  # noqa: BLE001 - one event's fold must not abort the batch (module doc)
            del appends[mark:]
            failed.append((event, _failure(exc)))
            continue
        # Only now, with the whole step done, do the event's new states count (states are immutable).
        for ref, state in new.items():
            if state is not current[ref]:
                current[ref] = changed[ref] = state
        published.extend(outgoing)
    return FoldResult(changed, appends, failed, published)


def _failure(exc: Exception) -> BadEvent:
    """The BadEvent a failed fold is parked with: field ``data``, ``fold failed: <Type>: <message>``."""
    message = str(exc)[:REASON_MAX]
    return BadEvent("data", f"fold failed: {type(exc).__name__}: {message}" if message else f"fold failed: {type(exc).__name__}")


def fold_and_plan(
    model: ReadModel, ks: KeySpace, states: Mapping[Ref, Any], events: Sequence[DomainEvent],
    result: FoldResult | None = None, images: Mapping[Ref, Rendered] | None = None, publish: Builder | None = None,
    partition: Partition | None = None,
) -> tuple[FoldResult, Plan]:
    """Fold ``events`` (unless ``result`` is that fold already) and plan its writes. Planning is pure,
    so if it raises, a state folded from an absurd event cannot be rendered (an overflow in a derived
    figure): fold again, rendering each new state as part of its event's step, so that event fails
    alone and is parked. The second pass costs a render per event, and only runs then."""
    result = result if result is not None else fold_batch(model, ks, states, events, publish=publish, partition=partition)
    try:
        return result, plan(model, ks, states, result.changed, result.appends, images)
    except Exception as exc:  # noqa: BLE001 - see the docstring; a second failure is not an event's
        log.warning("projection %s: a folded state cannot be rendered (%s: %s); finding the event",
                    model.name, type(exc).__name__, exc)
    result = fold_batch(model, ks, states, events, check=lambda ref, state: model.render(ks, ref, state), publish=publish,
                        partition=partition)
    return result, plan(model, ks, states, result.changed, result.appends, images)
