"""The projector's state cache: bounded, youngest kept, emptied when the state epoch moves."""
from __future__ import annotations

from projections.projector.cache import StateCache
from projections.readmodels.base import Rendered


def test_keeps_at_most_capacity_and_drops_the_least_recently_written() -> None:
    cache = StateCache(10)
    for i in range(10):
        cache.put(("user", f"u{i}"), i, Rendered())
    cache.put(("user", "u0"), 100, Rendered())  # rewritten: now the youngest
    cache.put(("user", "new"), 1, Rendered())
    assert len(cache) <= 10
    assert ("user", "u0") in cache and ("user", "new") in cache
    assert ("user", "u1") not in cache  # the oldest write went first
    assert cache.get(("user", "u0"))[0] == 100


def test_a_moved_state_epoch_empties_it() -> None:
    cache = StateCache(10)
    cache.check_epoch("")
    cache.put(("user", "a"), 1, Rendered())
    cache.check_epoch("")
    assert ("user", "a") in cache
    cache.check_epoch("1")  # another writer changed states
    assert len(cache) == 0 and cache.epoch == "1"


def test_capacity_zero_keeps_nothing() -> None:
    cache = StateCache(0)
    cache.put(("user", "a"), 1, Rendered())
    assert len(cache) == 0
