"""What every read model module provides, and the shapes the writer diffs.

A read model is a set of *entities* (``Ref = (kind, id)``: a user, a pair, the
marks table, the clock). For each entity the module gives:

* ``empty(ref)`` and a frozen state dataclass;
* ``touches(event)``: the entities an event reads or changes;
* ``step(states, event)``: pure — given the states of the touched entities,
  the new states of those that changed (it calls the module's ``evolve_*``
  functions; no I/O, no wall clock, no randomness);
* ``main_key(ks, ref)`` + ``parse(ref, fields)``: where the entity's state lives
  (one Redis hash) and how it is read back;
* ``render(ks, ref, state)``: the entity's whole Redis image — hashes it owns,
  its members in shared sorted sets and its fields in shared hashes;
* ``appends(ks, ref, event, state)``: append-only entries (capped sorted sets
  such as position history), keyed by commit position so re-applying is a no-op;
* ``user_kind``: which entities are one user's (a per-user rebuild rebuilds those);
* ``placement(ref)``: where the entity lives when the projection is split into partitions
  (:class:`Placement`, :func:`held_refs`).
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import Enum
from functools import lru_cache
from typing import Any, Protocol

from projections.events import DomainEvent
from projections.keys import KeySpace
from projections.partitions import Partition

Ref = tuple[str, str]

EPSILON = 1e-6  # positions smaller than this are removed (the document's 0.000001)
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Rendered:
    """The Redis image of one entity (all values already strings / float scores)."""

    owned: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    zsets: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    hfields: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Append:
    """A member added to a capped, append-only sorted set (keeps the newest ``cap``)."""

    key: str
    member: str
    score: float
    cap: int


class Placement(Enum):
    """Where an entity lives in a projection split into partitions (see :func:`held_refs`)."""

    USER = "user"  # in its user's partition (the ref's id is the user id)
    REPLICATED = "replicated"  # a copy in every partition, folded from every event that sets it (portfolio's marks)
    LOCAL = "local"  # a copy in every partition, folded from the events the partition folds anyway (a clock)
    HOME = "home"  # in partition 0 alone (an aggregate over every user, leaderboards' strategies)


class ReadModel(Protocol):
    """The contract of a read model module (see the module docstring)."""

    name: str
    event_types: tuple[str, ...]  # its server-side filter: the types its folds use, and the freshness canary
    user_kind: str | None  # the kind of Ref that is one user's entity ("user", "trader"), if the model has one
    publishes: bool  # the live projector publishes domain events from its states' changes (``published.py``)

    def touches(self, event: DomainEvent) -> tuple[Ref, ...]: ...
    def placement(self, ref: Ref) -> Placement: ...
    def empty(self, ref: Ref) -> Any: ...
    def step(self, states: Mapping[Ref, Any], event: DomainEvent) -> dict[Ref, Any]: ...
    def main_key(self, ks: KeySpace, ref: Ref) -> str: ...
    def parse(self, ref: Ref, fields: Mapping[str, str]) -> Any: ...
    def render(self, ks: KeySpace, ref: Ref, state: Any) -> Rendered: ...
    def appends(self, ks: KeySpace, ref: Ref, event: DomainEvent, state: Any) -> Sequence[Append]: ...

    # -- what the engines need to know of a read model (so none of them branches on a projection's name) --
    def own_append_keys(self, ks: KeySpace, ref: Ref) -> set[str]:
        """The append-only keys that are the entity's own (a per-user rebuild rewrites them whole)."""
    def user_ranking(self, ks: KeySpace) -> str | None:
        """The ranking every user entity of the model is a member of (None: none is), where lost entities are
        looked for and users are listed."""
    def presence(self, ks: KeySpace) -> str:
        """A key, or a SCAN pattern, that exists while the generation holds any of the model's read models
        (none left while the checkpoint stands: the read models were emptied)."""
    def stray_places(self, ks: KeySpace) -> StrayPlaces:
        """Where a user's members may be left that no image of the user names (found by scanning)."""


@dataclass(frozen=True)
class StrayPlaces:
    """Where a read model may leave a user's members that the user's current image does not name: keys matching
    ``keys`` (each a sorted set that may hold the user), and the fields of hash ``details`` whose JSON value names
    the user in ``userId`` (each also a member of sorted set ``ranking``)."""

    keys: str | None = None
    details: str | None = None
    ranking: str | None = None


def held_refs(model: ReadModel, refs: tuple[Ref, ...], partition: Partition) -> tuple[Ref, ...] | None:
    """Which of an event's ``refs`` ``partition`` folds it for; None: the event is another partition's.

    An event is folded by the partitions holding one of its user or home entities; an event touching only
    replicated or local entities (a price for the marks) by every partition. A partition folds an event for the
    entities it holds: its users', the replicated and local ones, and the home ones in partition 0."""
    if partition.count == 1:
        return refs
    held: list[Ref] = []
    owned = anchored = False
    for ref in refs:
        place = model.placement(ref)
        if place is Placement.USER or place is Placement.HOME:
            anchored = True
            mine = partition.owns(ref[1]) if place is Placement.USER else partition.index == 0
            owned = owned or mine
            if mine:
                held.append(ref)
        else:
            held.append(ref)
    return tuple(held) if owned or not anchored else None


# -- codec helpers shared by the modules ----------------------------------------------


def num(value: float) -> str:
    """Exact, deterministic float text (repr round-trips)."""
    return repr(float(value))


_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True)  # json.dumps builds one per call


def dumps(value: Any) -> str:
    """Deterministic compact JSON (sorted keys) for JSON-valued hash fields."""
    return _ENCODER.encode(value)


def loads_map(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def fnum(fields: Mapping[str, str], name: str, default: float = 0.0) -> float:
    text = fields.get(name)
    return default if text is None or text == "" else float(text)


def inum(fields: Mapping[str, str], name: str, default: int = 0) -> int:
    text = fields.get(name)
    return default if text is None or text == "" else int(text)


@lru_cache(maxsize=4096)
def _day_name(day_index: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=day_index)).isoformat()


def utc_day(ms: int) -> str:
    """``YYYY-MM-DD`` of the UTC day containing epoch-ms ``ms`` (no wall clock)."""
    return _day_name(ms // DAY_MS)


def day_start(day: str) -> int:
    """Epoch ms of 00:00 UTC of ``day`` (``YYYY-MM-DD``)."""
    return (date.fromisoformat(day) - date(1970, 1, 1)).days * DAY_MS


def floor_to(ms: int, unit: int) -> int:
    return ms - ms % unit


def no_appends(ks: KeySpace, ref: Ref, event: DomainEvent, state: Any) -> Sequence[Append]:
    return ()
