"""Entities that vanished behind the projector's back (eviction, a lossy failover), and their healing.

The projector writes only what a batch changed, against the state it loaded (or kept in its cache). If a
user's keys vanished meanwhile, that would leave a partial entity — or, for an entity whose hash is gone
when the batch loads it, a "new" one holding only the batch's events — and nothing would notice. So:

* the commit checks that every user entity of the batch is in Redis as the batch loaded it
  (:func:`projections.writer.guards`); if not, nothing is written and the entities named are healed;
* an entity absent when the batch loads it is new only if the store holds no event of the user before the
  batch's first one (:func:`lost_users`: one short read of each of the user's streams — with the catalog
  binding every type to its stream, those are all of the user's events); otherwise it was lost, and healed;
* healing is a per-user rebuild of the entity in the runner's generation at the runner's checkpoint (the
  runner holds the lease and is between batches, so the checkpoint stands still). It is injected
  (:data:`Healer`): the engine that replays a user lives in ``maintenance``, which builds on the projector.
  Then the batch is loaded again and folded on the whole entity.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import redis

from projections.events import DomainEvent, user_streams
from projections.eventstore import EventStore
from projections.keys import KeySpace
from projections.partitions import Partition
from projections.readmodels.base import ReadModel, Ref, held_refs

Healer = Callable[[redis.Redis, EventStore, KeySpace, Sequence[str]], None]
"""Rebuild these users' entities of ``KeySpace.projection`` in ``KeySpace.generation`` at its checkpoint."""


def first_positions(model: ReadModel, events: Iterable[DomainEvent], partition: Partition | None = None) -> dict[Ref, int]:
    """Each user entity's first event position in ``events`` (in order): of the users ``partition`` holds, if given
    (another partition's users are never loaded here, so never looked for)."""
    first: dict[Ref, int] = {}
    for event in events:
        refs = model.touches(event)
        for ref in refs if partition is None else held_refs(model, refs, partition) or ():
            if ref[0] == model.user_kind:
                first.setdefault(ref, event.envelope.position)
    return first


class Known:
    """The users a session that started from nothing (no checkpoint: a first start, a rebuild, a cold start)
    has committed. Nothing of the generation was there before it, so a user it never committed is new, and
    needs no look at the store; one it committed and finds absent was lost. Bounded: past ``cap`` users it
    stops saying "new" and the store is asked, as in a session that started from a checkpoint."""

    def __init__(self, from_nothing: bool = False, cap: int = 1_000_000) -> None:
        self.from_nothing, self.cap = from_nothing, cap
        self.users: set[str] = set()

    def add(self, users: Iterable[str]) -> None:
        if self.from_nothing:
            self.users.update(users)
            if len(self.users) > self.cap:
                self.from_nothing = False
                self.users.clear()

    def new(self, user: str) -> bool:
        """True if ``user`` is certainly new to this generation."""
        return self.from_nothing and user not in self.users


def lost_users(store: EventStore, model: ReadModel, states: Mapping[Ref, Any], first: Mapping[Ref, int],
               skip: set[str], known: Known | None = None) -> list[str]:
    """Users of the batch absent from Redis (not in ``states``) whose streams hold an event before the batch's
    first one of theirs: their keys were lost (``skip``: users already healed in this batch; ``known``: what a
    session from nothing committed)."""
    lost = []
    for ref, position in first.items():
        if ref in states or ref[1] in skip:
            continue
        if known is not None and known.new(ref[1]):
            continue
        for stream in user_streams(ref[1]):
            earliest = store.first_position(stream)
            if earliest is not None and earliest < position:
                lost.append(ref[1])
                break
    return lost


def users_of_keys(model: ReadModel, ks: KeySpace, refs: Iterable[Ref], lost_keys: Iterable[str]) -> list[str]:
    """The users of ``refs`` whose main keys the commit's guards named (:class:`~projections.errors.EntityLost`)."""
    lost = set(lost_keys)
    return [ref[1] for ref in refs if ref[0] == model.user_kind and model.main_key(ks, ref) in lost]
