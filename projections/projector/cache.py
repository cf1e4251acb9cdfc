"""Entity states a projector keeps in memory between batches.

The projector that holds a projection's lease is the only writer of that
generation's read models, so after a commit it knows each changed entity's
state and Redis image exactly. Keeping them saves, for every hot entity, the
HGETALL, the parse and re-rendering its old image in the next batch — at
catch-up rates that is a large share of the per-event cost.

Contract:

* an entry is put only after the commit that wrote it succeeded;
* the cache belongs to one generation and one subscription session: the
  runner clears it when a session starts and on any error, since a failed
  or unknown commit outcome means Redis may not hold what the cache holds;
* a writer other than the projector (a per-user repair, an operator's edit)
  must INCR the generation's ``state-epoch`` key in the same transaction as
  its writes; the runner reads the epoch in every batch's load round trip
  and clears the cache when it changed;
* at most ``capacity`` entities are kept; the least recently written go first.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from projections.keys import KeySpace
from projections.readmodels.base import ReadModel, Ref, Rendered
from projections.writer import Loaded, load_states


class StateCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.epoch = ""
        self._entries: dict[Ref, tuple[Any, Rendered]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, ref: object) -> bool:
        return ref in self._entries

    def get(self, ref: Ref) -> tuple[Any, Rendered]:
        return self._entries[ref]

    def put(self, ref: Ref, state: Any, image: Rendered) -> None:
        entries = self._entries
        entries.pop(ref, None)  # re-inserting moves it to the young end
        entries[ref] = (state, image)
        if len(entries) > self.capacity:
            for old in list(entries)[: len(entries) - self.capacity + self.capacity // 10]:
                del entries[old]  # drop a tenth at once: eviction stays rare

    def check_epoch(self, epoch: str) -> None:
        """Clear everything if the generation's state epoch moved (an outside writer)."""
        if epoch != self.epoch:
            self._entries.clear()
            self.epoch = epoch

    def clear(self) -> None:
        self._entries.clear()

    def load(self, client: redis.Redis, model: ReadModel, ks: KeySpace, refs: Sequence[Ref]) -> Loaded:
        """What a batch touching ``refs`` starts from: cached entities from here, the rest (with
        the checkpoint and the state epoch) from Redis in one round trip; if the epoch moved, all
        of them from Redis."""
        cached = [ref for ref in refs if ref in self._entries]
        loaded = load_states(client, model, ks, [ref for ref in refs if ref not in self._entries])
        if cached and loaded.epoch != self.epoch:  # another writer changed states: nothing cached can be trusted
            self.check_epoch(loaded.epoch)
            return load_states(client, model, ks, refs)
        self.check_epoch(loaded.epoch)
        for ref in cached:
            loaded.states[ref], loaded.images[ref] = self._entries[ref]
        return loaded
