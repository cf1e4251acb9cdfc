"""What a consistency check reports: its differences, each with its kind, and the score.

:func:`compare` turns a replay's image and what Redis holds into differences of one of six kinds (missing
key, extra key, value differs, ranking member missing, ranking member extra, score differs); a
:class:`Report` counts entities checked and consistent (the score is 1 − inconsistent ÷ checked), keeps the
first ``KEPT`` differences with their total, and names the users to repair. Pure: no I/O.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from projections.readmodels.base import Rendered

KEPT = 200  # differences a report keeps (the total is always counted)

MISSING_KEY, EXTRA_KEY, VALUE_DIFFERS = "missing key", "extra key", "value differs"
MEMBER_MISSING, MEMBER_EXTRA, SCORE_DIFFERS = "ranking member missing", "ranking member extra", "score differs"


@dataclass(frozen=True)
class EventRef:
    """An event behind a difference: where it sits in the store."""

    event_id: str
    type: str
    stream: str
    position: int
    recorded_at: int  # ms since the epoch


@dataclass(frozen=True)
class Difference:
    projection: str
    user: str
    key: str
    field: str  # the hash field or the ranking member ('' for the key as a whole)
    kind: str
    expected: str  # what a replay gives ('' where it has nothing)
    actual: str  # what Redis holds ('' where it has nothing)
    cause: str
    event: EventRef | None = None  # the event that last set this place in the replay
    parked_event: str = ""  # a parked event of the user after it, named in the cause (as stream/id)


@dataclass(frozen=True)
class EntityCheck:
    projection: str
    user: str
    checkpoint: int  # C: the position the replay went up to
    position: str  # L: the entity's lastPosition in Redis ('' when its hash is missing)
    events: int  # the user's events replayed
    differences: tuple[Difference, ...]

    @property
    def consistent(self) -> bool:
        return not self.differences


@dataclass
class Report:
    """What a consistency check found (JSON-able with :meth:`as_dict`)."""

    scope: str
    projections: list[str]
    checked: int = 0  # entities (one user in one projection)
    consistent: int = 0
    difference_count: int = 0
    differences: list[Difference] = field(default_factory=list)
    users_to_repair: list[str] = field(default_factory=list)
    checkpoints: dict[str, int] = field(default_factory=dict)  # the last checkpoint each projection was checked at
    per_projection: dict[str, dict[str, int]] = field(default_factory=dict)  # checked / consistent per projection
    skipped: list[str] = field(default_factory=list)
    events: int = 0  # events replayed (a full check)  # "user in projection" live events kept moving: not compared
    seconds: float = 0.0

    @property
    def score(self) -> float | None:
        """1 − inconsistent ÷ checked; None when nothing was checked."""
        return None if not self.checked else 1 - (self.checked - self.consistent) / self.checked

    def add(self, entity: EntityCheck) -> None:
        self.checked += 1
        counts = self.per_projection.setdefault(entity.projection, {"checked": 0, "consistent": 0})
        counts["checked"] += 1
        self.checkpoints[entity.projection] = entity.checkpoint
        if entity.consistent:
            self.consistent += 1
            counts["consistent"] += 1
            return
        self.difference_count += len(entity.differences)
        self.differences.extend(entity.differences[: max(0, KEPT - len(self.differences))])
        if entity.user and entity.user not in self.users_to_repair:
            self.users_to_repair.append(entity.user)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["score"] = self.score
        out["scores"] = {p: c["consistent"] / c["checked"] for p, c in self.per_projection.items() if c["checked"]}
        return out


Found = tuple[str, str, str, str, str]  # key, field, kind, expected, actual


def compare(expected: Rendered, actual: Rendered, whole_keys: bool = False) -> list[Found]:
    """Every place where Redis's image differs from the replay's, with its kind. With ``whole_keys`` (the images
    hold whole sorted sets, not one entity's memberships), a sorted set missing or extra as a whole is one
    difference of the key."""
    out: list[Found] = []
    for key in sorted({*expected.owned, *actual.owned}):
        want, have = expected.owned.get(key) or {}, actual.owned.get(key) or {}
        if not want and not have:  # an empty hash is no key in Redis
            continue
        if not have:
            out.append((key, "", MISSING_KEY, _fields(want), ""))
        elif not want:
            out.append((key, "", EXTRA_KEY, "", _fields(have)))
        else:
            out.extend((key, f, VALUE_DIFFERS, want.get(f, ""), have.get(f, ""))
                       for f in sorted({*want, *have}) if want.get(f) != have.get(f))
    for key in sorted({*expected.zsets, *actual.zsets}):
        want_z, have_z = expected.zsets.get(key, {}), actual.zsets.get(key, {})
        if whole_keys and not have_z and want_z:
            out.append((key, "", MISSING_KEY, f"{len(want_z):,} members", ""))
            continue
        if whole_keys and not want_z and have_z:
            out.append((key, "", EXTRA_KEY, "", f"{len(have_z):,} members"))
            continue
        for member in sorted({*want_z, *have_z}):
            if member not in have_z:
                out.append((key, member, MEMBER_MISSING, _score(want_z[member]), ""))
            elif member not in want_z:
                out.append((key, member, MEMBER_EXTRA, "", _score(have_z[member])))
            elif want_z[member] != have_z[member]:
                out.append((key, member, SCORE_DIFFERS, _score(want_z[member]), _score(have_z[member])))
    for key in sorted({*expected.hfields, *actual.hfields}):
        want_h, have_h = expected.hfields.get(key, {}), actual.hfields.get(key, {})
        for name in sorted({*want_h, *have_h}):
            if want_h.get(name) != have_h.get(name):
                kind = MISSING_KEY if name not in have_h else EXTRA_KEY if name not in want_h else VALUE_DIFFERS
                out.append((key, name, kind, want_h.get(name, ""), have_h.get(name, "")))
    return out


def _fields(values: Any) -> str:
    return json.dumps(dict(sorted(values.items())))[:500] if values else ""


def _score(value: float) -> str:
    return repr(float(value))
