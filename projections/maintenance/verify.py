"""Before a rollback: the kept generation verified against a replay of the events, on a sample at one position.

The kept generation is idle (nobody writes it since the flip left it), so everything in it stands at its own
checkpoint K: that is the one position, and the check runs before the rollback catches it up, so a damaged
generation is refused before anything is written.

It is compared with a **replay**, not with the live generation: a rollback is what an operator reaches for when
the live generation is the suspect one, and comparing with it would refuse exactly the rollback that repairs it
(or pass a kept generation damaged the same way). A replay is what both should equal.

* *Projections with user entities* (portfolio, risk, leaderboards): a sample of users, each replayed up to K
  with the per-user rebuild's folds (:mod:`projections.maintenance.user_rebuild`) and compared key by key,
  field by field, member by member with what the kept generation holds (``report.compare``). The sample takes
  users from the kept generation's entities and from the live generation's, those the kept generation lacks
  first: an entity that vanished from the kept generation is only found through the live one.
* *The market* (no user entities; a few hundred keys): its whole history replayed up to K in memory, as the
  full consistency check does (:mod:`projections.maintenance.full_check`), and every key compared.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import redis

from projections import layout
from projections.codec import text
from projections.eventstore import EventStore
from projections.keys import KeySpace
from projections.maintenance.control import Control, check
from projections.maintenance.pointer import live_generation, space
from projections.maintenance.report import Found, compare
from projections.maintenance.user_fold import catch_up, new_fold
from projections.maintenance.user_rebuild import Strays, observe, snapshots, stray_places
from projections.partitions import Partition
from projections.readmodels import model
from projections.readmodels.base import ReadModel

USERS = 50  # users replayed per verification (a projection with user entities)
DIFFERENCES_KEPT = 20


@dataclass
class Verification:
    """What the verification of a generation found: differences from a replay at its checkpoint."""

    projection: str
    generation: int
    checkpoint: int  # K: the one position compared
    checked: int = 0  # users replayed and compared (the market: keys)
    count: int = 0  # differing places
    kept: list[dict[str, str]] = field(default_factory=list)  # the first DIFFERENCES_KEPT
    users: list[str] = field(default_factory=list)  # users with a difference
    moved: int = 0  # users written meanwhile (not compared: the generation is not idle)
    seconds: float = 0.0

    def add(self, found: list[Found], ks: KeySpace, user: str = "") -> None:
        self.checked += 1
        if not found:
            return
        self.count += len(found)
        if user and user not in self.users:
            self.users.append(user)
        for key, name, kind, expected, actual in found[: max(0, DIFFERENCES_KEPT - len(self.kept))]:
            self.kept.append({"key": ks.name_of(key), "field": name, "kind": kind, "replay": expected[:200],
                              "kept": actual[:200], "user": user})


def verify_generation(client: redis.Redis, store: EventStore, projection: str, generation: int, control: Control,
                      users: int = USERS) -> Verification:
    """``generation`` of ``projection`` against a replay of the events up to its checkpoint (see the module doc)."""
    started = time.monotonic()
    m = model(projection)
    parts = layout.partitions(client, projection, generation)
    spaces = [space(part, generation) for part in parts]
    checkpoints = [int(text(client.get(ks.checkpoint)) or 0) for ks in spaces]
    out = Verification(projection, generation, min(checkpoints))
    if m.user_kind is None:
        found, compared = _whole(client, store, m, spaces[0], out.checkpoint, control)
        out.add(found, spaces[0])
        out.checked = compared
        out.seconds = round(time.monotonic() - started, 3)
        return out
    live = live_generation(client, projection)
    live_spaces = [space(part, live) for part in layout.partitions(client, projection, live)]
    # each partition of a split generation in turn, with its share of the sample (the live one is split alike)
    chosen = [(part, ks, user) for part, ks, live_ks in zip(parts, spaces, live_spaces)
              for user in sample(client, m, ks, live_ks, max(1, users // len(parts)))]
    strays = {ks.root: stray_places(client, m, ks) for ks in spaces}
    for i, (part, ks, user) in enumerate(chosen):
        check(control)
        control.report(i, len(chosen), f"verifying generation {generation} against a replay: {user}")
        places = _user(client, store, m, ks, user, strays[ks.root], part if part.count > 1 else None)
        if places is None:
            out.moved += 1
        else:
            out.add(places, ks, user)
    out.seconds = round(time.monotonic() - started, 3)
    return out


def sample(client: redis.Redis, m: ReadModel, ks: KeySpace, live: KeySpace, size: int) -> list[str]:
    """Up to ``size`` users: half at most of those the live generation has and ``ks`` lacks, the rest taken in
    turn from both generations' entities (SCAN order: by key hash, no particular kind of user)."""
    kept_users, live_users = _users(client, m, ks, size), _users(client, m, live, size)
    pipe = client.pipeline(transaction=False)
    for user in live_users:
        pipe.exists(m.main_key(ks, (str(m.user_kind), user)))
    lacking = [user for user, there in zip(live_users, pipe.execute()) if not there]
    turns = [user for pair in zip(kept_users, live_users) for user in pair]
    turns += kept_users[len(live_users):] + live_users[len(kept_users):]
    return list(dict.fromkeys([*lacking[: size // 2], *turns]))[:size]


def _users(client: redis.Redis, m: ReadModel, ks: KeySpace, limit: int) -> list[str]:
    pattern = m.main_key(ks, (str(m.user_kind), "*"))
    prefix = pattern[:-1]
    found: list[str] = []
    for key in client.scan_iter(match=pattern, count=1000, _type="hash"):
        name = text(key)[len(prefix):]
        if ":" not in name:  # not the user's other hashes (positions, ...)
            found.append(name)
            if len(found) >= limit:
                break
    return found


def _user(client: redis.Redis, store: EventStore, m: ReadModel, ks: KeySpace, user: str, strays: Strays,
          partition: Partition | None = None) -> list[Found] | None:
    """The user's places in ``ks`` (``partition``'s, in a split generation) against a replay of the user's events up
    to its checkpoint (None: the entity moved while it was read)."""
    ref = (str(m.user_kind), user)
    main = m.main_key(ks, ref)
    checkpoint, last = snapshots(client, [(ks, main)])[0]
    expected = catch_up(new_fold(client, store, m, ks, ref, partition), store, checkpoint)
    actual = observe(client, m, ks, ref, expected, strays)
    if actual.owned.get(main, {}).get("lastPosition", "") != last:
        return None
    return compare(expected, actual)


def _whole(client: redis.Redis, store: EventStore, m: ReadModel, ks: KeySpace, checkpoint: int, control: Control
           ) -> tuple[list[Found], int]:
    """Every key of ``ks`` against the projection's whole history replayed up to ``checkpoint`` in memory; the
    differences and how many keys were compared."""
    from projections.maintenance.full_check import _cut, _Replay  # the full check's replay, pointed at ``ks``

    whole: Any = _Replay(m, ks)
    whole.fold(store, checkpoint, control)
    _, shared = whole.images()
    _, seen = _cut(client, ks, set(shared.hashes) | set(shared.zsets), set())
    expected = shared.rendered()
    return compare(expected, seen, whole_keys=True), len({*expected.owned, *expected.zsets, *seen.owned, *seen.zsets})
