"""Risk queries: a user's profile as of today, high-risk users, the ranking by score, active alerts."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from projections.codec import text
from projections.keys import KeySpace
from projections.queries.base import (
    QueriesBase,
    Spread,
    _f,
    _i,
    _tm,
    check_user,
)
from projections.readmodels.risk import HIGH_RISK_DAILY_EXPOSURE, Alert, Risk, as_of, idle_score, risk_level
from projections.readmodels.risk import MODEL as RISK

RISK_FIELDS = ("day", "riskScore", "riskLevel", "concentration", "dailyExposure", "dailyVolume", "largestTrade",
               "tradesToday")  # what a risk list reads of each user's hash, in this order


RISK_SCAN_CHUNK = 500  # risk rankings are walked this many members per round trip


RISK_RANK_SCAN = 1_000  # a user's risk rank is looked for this far down; below it, unranked (None)


@dataclass(frozen=True)
class RiskProfile:
    user_id: str
    day: str
    daily_volume: float
    daily_exposure: float
    trades_today: int
    largest_today: float
    largest_trade: float
    exposure: dict[str, float]
    concentration: float
    score: float
    level: str
    rank: int | None
    active_alerts: list[Alert]
    acknowledged_alerts: list[Alert]
    last_trade_day: str = ""  # the day of the user's newest trade; ``day`` is the day the figures are of


@dataclass(frozen=True)
class RiskRanked:
    """A user's risk as of the risk projection's today (no trades today: no daily figures)."""

    user_id: str
    rank: int
    score: float
    level: str
    daily_exposure: float
    daily_volume: float
    trades_today: int
    largest_trade: float
    last_trade_day: str


@dataclass(frozen=True)
class RiskRanking:
    """The first users by today's risk score, and how many users have a score."""

    day: str
    rows: list[RiskRanked]
    total: int


@dataclass(frozen=True)
class HighRiskUser:
    user_id: str
    daily_exposure: float
    day: str
    risk_score: float
    risk_level: str
    largest_trade: float
    daily_volume: float


@dataclass(frozen=True)
class HighRiskUsers:
    """The first high-risk users of ``day`` and how many there are in all."""

    day: str
    rows: list[HighRiskUser]
    total: int


def _risk_today(user: str, d: list[Any], today: str) -> RiskRanked:
    """A user's :data:`RISK_FIELDS` as of ``today`` (unranked): the stored figures when the user's
    day is today, else none of the day's (the model's ``as_of`` over the stored concentration)."""
    day = text(d[0])
    if not today or day >= today:
        return RiskRanked(user, 0, _f(d[1]), text(d[2]) or "low", _f(d[4]), _f(d[5]), _i(d[7]), _f(d[6]), day)
    score = idle_score(_f(d[3]))
    return RiskRanked(user, 0, score, risk_level(score), 0.0, 0.0, 0, _f(d[6]), day)


class RiskQueries(QueriesBase):
    def risk_day(self) -> str:
        """'Today' for the risk read side: the UTC day of the newest trade the risk projection applied (the newest of
        its partitions' clocks)."""
        return self.newest_day("risk")

    def risk_profile(self, user_id: str) -> RiskProfile | None:
        """A user's risk as of the projection's today (see :func:`~projections.readmodels.risk.as_of`)."""
        user = check_user(user_id)
        spread = self.spread("risk")
        main = self.client.hgetall(spread.of(user).user_risk(user))
        if not main:
            return None
        today = self.risk_day()
        stored: Risk = RISK.parse(("user", user), _tm(main))
        r = as_of(stored, today)
        active = sorted(r.active.values(), key=lambda a: (-a.raised_at, a.alert_id))
        return RiskProfile(
            user, r.day, r.daily_volume, r.daily_exposure, r.trades_today, r.largest_today, r.largest_trade,
            r.exposure, r.concentration, r.score, r.level, self._risk_rank(spread, user, r.score, today), active,
            list(r.acknowledged), stored.day,
        )

    def high_risk_users(self, limit: int = 50, threshold: float = HIGH_RISK_DAILY_EXPOSURE) -> HighRiskUsers:
        """Users whose daily exposure today (the risk projection's newest day) exceeds ``threshold``:
        the first ``limit`` by score, then exposure, and the true total. ``user-daily-exposure`` holds
        each user's exposure of *their* newest day, so every member over the threshold is checked
        (chunked) before the list is cut: an earlier day's whale is never today's high-risk user."""
        spread = self.spread("risk")
        today = self.risk_day()
        out = [
            HighRiskUser(user, _f(d[4]), text(d[0]), _f(d[1]), text(d[2]), _f(d[6]), _f(d[5]))
            for _, chunk in self._risk_walk(spread, KeySpace.user_daily_exposure, f"({threshold}")
            for user, d in chunk
            if today and text(d[0]) == today  # exposure of an earlier day is not high-risk today
        ]
        out.sort(key=lambda u: (-u.risk_score, -u.daily_exposure, u.user_id))
        return HighRiskUsers(today, out[:limit], len(out))

    def risk_ranking(self, limit: int = 20) -> RiskRanking:
        """Users ranked by today's risk score (the seed's ``user-risk-scores`` ranking, read as of today).

        A stored score is the user's newest day's; today's is never higher (an idle user keeps only
        concentration), so walking the ranking from the top can stop once ``limit`` users score at
        least the next stored score. Ties keep the ranking's order."""
        spread = self.spread("risk")
        today = self.risk_day()
        found: list[RiskRanked] = []
        for bound, chunk in self._risk_walk(spread, KeySpace.user_risk_scores):
            found += [_risk_today(user, d, today) for user, d in chunk]
            found.sort(key=lambda r: -r.score)  # stable: equal scores stay in the ranking's order
            if len(found) >= limit and found[limit - 1].score >= bound:
                break
        rows = [replace(r, rank=i) for i, r in enumerate(found[:limit], 1)]
        return RiskRanking(today, rows, self.count([s.user_risk_scores() for s in spread.spaces]))

    def active_alerts(self, limit: int = 50) -> list[Alert]:
        """Active (unacknowledged) risk alerts, newest first by event time."""
        spaces = self.spread("risk").spaces
        ids = [text(m) for m, _ in self.top([s.risk_alerts() for s in spaces], 0, limit - 1)]
        if not ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for s in spaces:  # an alert's details are in its user's partition
            pipe.hmget(s.risk_alert_details(), ids)
        found = [next((d for d in found if d is not None), None) for found in zip(*pipe.execute())]
        return [Alert.from_json(json.loads(text(d))) for d in found if d is not None]

    def active_alert_count(self) -> int:
        """How many risk alerts are active, all of them (the badge; the list shows the newest)."""
        return self.count([s.risk_alerts() for s in self.spread("risk").spaces])

    def _risk_walk(self, spread: Spread, ranking: Callable[[KeySpace], str], low: str = "-inf",
                   ) -> Iterator[tuple[float, list[tuple[str, list[Any]]]]]:
        """A ranking (``ranking`` of each partition's key space, merged) from the top (stored score >= ``low``), a chunk at
        a time with each member's :data:`RISK_FIELDS`, each chunk with its lowest stored score."""
        for rows in self.walk([ranking(s) for s in spread.spaces], low, RISK_SCAN_CHUNK):
            pipe = self.client.pipeline(transaction=False)
            for member, _ in rows:
                pipe.hmget(spread.of(member).user_risk(member), *RISK_FIELDS)
            yield rows[-1][1], [(m, d) for (m, _), d in zip(rows, pipe.execute())]

    def _risk_rank(self, spread: Spread, user: str, score: float, today: str) -> int | None:
        """``user``'s place in :meth:`risk_ranking`'s order given its today's ``score``; None when
        unranked or further down than :data:`RISK_RANK_SCAN` members of the stored ranking."""
        ahead, walked, seen = 0, 0, False
        for bound, chunk in self._risk_walk(spread, KeySpace.user_risk_scores):
            for member, d in chunk:
                if member == user:
                    seen = True
                    continue
                other = _risk_today(member, d, today).score
                ahead += other > score or (other == score and not seen)
            walked += len(chunk)
            if bound < score:  # the rest score below ``score`` today: none is ahead
                break
            if walked >= RISK_RANK_SCAN:
                return None
        return ahead + 1 if seen else None
