"""The read side the console uses: typed results, one or two Redis round trips each.

Views never read Redis directly (DESIGN invariant 8). Every query resolves the
projection's live generation through its pointer key (cached for a second so
a query stays one round trip) and validates user ids and pairs before they
reach a key name (:class:`~projections.errors.InvalidIdentifier`). Results are
frozen dataclasses (the read models' own where they exist: ``Alert``,
``Quote``, ``Opportunity``) and :class:`ProjectionState`, never raw dicts.
"""
from __future__ import annotations

from projections.queries.base import Ranked, check_pair, check_projection, check_user, percentile
from projections.queries.leaderboards import LeaderboardQueries, StrategyRow, UserRank
from projections.queries.market import MarketOverview, MarketQueries, PairDetail
from projections.queries.operations import (
    CANARY_WINDOW_MS,
    CanaryAppend,
    CanaryFreshness,
    LagSample,
    OperationsQueries,
    ParkedEvent,
    PublishedEvent,
    published_events,
)
from projections.queries.portfolio import HistoryEntry, PortfolioQueries, PortfolioSummary, TopPortfolio
from projections.queries.risk import HighRiskUser, HighRiskUsers, RiskProfile, RiskQueries, RiskRanked, RiskRanking
from projections.queries.shards import MemberRow, PartitionRow, Shards, ShardsQueries


class Queries(PortfolioQueries, LeaderboardQueries, RiskQueries, MarketQueries, OperationsQueries, ShardsQueries):
    """The read side's facade: every query, by subject (``portfolio``, ``leaderboards``, ``risk``, ``market``,
    ``operations``, ``shards``), over one Redis client (thread-safe; cheap to keep for the process)."""


__all__ = [
    "CANARY_WINDOW_MS", "CanaryAppend", "CanaryFreshness", "HighRiskUser", "HighRiskUsers", "HistoryEntry", "LagSample",
    "MarketOverview", "MemberRow", "PairDetail", "ParkedEvent", "PartitionRow", "PortfolioSummary", "PublishedEvent",
    "Queries", "Ranked", "Shards",
    "RiskProfile", "RiskRanked", "RiskRanking", "StrategyRow", "TopPortfolio", "UserRank", "check_pair",
    "check_projection", "check_user", "percentile", "published_events",
]
