"""The projection clock: the newest event time a projection has applied.

Queries ask it what "today" is (the day of the newest event, not the wall
clock), so a replay answers the same as the live run did.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from projections.keys import KeySpace
from projections.readmodels.base import Ref, Rendered, inum, utc_day

CLOCK: Ref = ("clock", "all")


@dataclass(frozen=True, slots=True)
class Clock:
    at: int = 0

    @property
    def day(self) -> str:
        return utc_day(self.at) if self.at else ""


def evolve_clock(c: Clock, at: int) -> Clock:
    return c if at <= c.at else Clock(at)


def parse_clock(f: Mapping[str, str]) -> Clock:
    return Clock(inum(f, "at"))


def render_clock(ks: KeySpace, c: Clock) -> Rendered:
    if not c.at:
        return Rendered()
    return Rendered(owned={ks.clock(): {"at": str(c.at), "day": c.day}})
