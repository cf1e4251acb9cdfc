"""The read side the console uses: typed results, one or two Redis round trips each.

Views never read Redis directly (DESIGN invariant 8). Every query resolves the
projection's live generation through its pointer key (cached for a second so
a query stays one round trip) and validates user ids and pairs before they
reach a key name (:class:`~projections.errors.InvalidIdentifier`). Results are
frozen dataclasses (the read models' own where they exist: ``Alert``,
``Quote``, ``Opportunity``) and :class:`ProjectionState`, never raw dicts.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import redis

from projections import infrastructure, inventory, keys
from projections.codec import text
from projections.errors import AmbiguousEvent, BadEvent, InvalidIdentifier, NotParked
from projections.events import PortfolioSignificantlyUpdated, RiskLevelChanged, decode, is_identifier, is_pair
from projections.eventstore import EventStore
from projections.health import HealthSample
from projections.keys import KeySpace
from projections.published import published_streams
from projections.readmodels import PROJECTIONS
from projections.readmodels.market import MODEL as MARKET
from projections.readmodels.market import Opportunity, PairMarket, Quote, opportunity_from_json
from projections.readmodels.portfolio import MODEL as PORTFOLIO
from projections.readmodels.portfolio import Portfolio, value_of
from projections.readmodels.risk import HIGH_RISK_DAILY_EXPOSURE, Alert, Risk, as_of, idle_score, risk_level
from projections.readmodels.risk import MODEL as RISK
from projections.status import ProjectionStatus, parse_status

GENERATION_CACHE_S = 0.05  # short: after a flip, readers move to the new generation within 50 ms
CANARY_WINDOW_MS = 600_000  # the canaries' p50/p99 are over the last ten minutes
MEMORY_ESTIMATE_CACHE_S = 30.0  # memory per projection is sampled at most this often per process
RISK_FIELDS = ("day", "riskScore", "riskLevel", "concentration", "dailyExposure", "dailyVolume", "largestTrade",
               "tradesToday")  # what a risk list reads of each user's hash, in this order
RISK_SCAN_CHUNK = 500  # risk rankings are walked this many members per round trip
RISK_RANK_SCAN = 1_000  # a user's risk rank is looked for this far down; below it, unranked (None)
GENERATIONS_CACHE_S = 30.0  # a projection's generations are scanned at most this often, unless one comes or goes


def check_user(user_id: object) -> str:
    if not is_identifier(user_id):
        raise InvalidIdentifier("user id", user_id, "1-64 chars of [A-Za-z0-9_.-]")
    return str(user_id)


def check_pair(pair: object) -> str:
    if not is_pair(pair):
        raise InvalidIdentifier("pair", pair, "BASE-QUOTE, e.g. BTC-USD")
    return str(pair)


def check_projection(name: object) -> str:
    if name not in PROJECTIONS:
        raise InvalidIdentifier("projection", name, " | ".join(PROJECTIONS))
    return str(name)


def _f(value: Any, default: float = 0.0) -> float:
    return default if value in (None, "", b"") else float(text(value))


def _i(value: Any, default: int = 0) -> int:
    return default if value in (None, "", b"") else int(text(value))


def _tm(fields: Mapping[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in fields.items()}


@dataclass(frozen=True)
class Ranked:
    """A member of a ranking: its id, its score and its 1-based rank."""

    id: str
    score: float
    rank: int


@dataclass(frozen=True)
class TopPortfolio:
    user_id: str
    value: float
    rank: int
    positions: int


@dataclass(frozen=True)
class StrategyRow:
    strategy_id: str
    roi: float  # the ranking's score, in %
    rank: int
    trades: int
    volume: float
    realized_pnl: float


@dataclass(frozen=True)
class HistoryEntry:
    """One entry of a user's position history: the position in ``pair`` after the event."""

    position: int  # commit position of the event
    pair: str
    amount_after: float
    at: int
    event: str


@dataclass(frozen=True)
class PortfolioSummary:
    user_id: str
    positions: dict[str, float]
    cost_basis: float
    market_value: float
    live_value: float
    realized_pnl: float
    trade_count: int
    last_trade_id: str
    last_trade_at: int
    rank: int | None
    recent_history: list[HistoryEntry]


@dataclass(frozen=True)
class UserRank:
    user_id: str
    day: str
    portfolio_rank: int | None
    volume_rank: int | None
    daily_volume: float
    risk_rank: int | None

    @property
    def found(self) -> bool:
        return self.portfolio_rank is not None or self.volume_rank is not None


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


@dataclass(frozen=True)
class MarketOverview:
    gainers: list[Ranked]
    losers: list[Ranked]
    volume_leaders: list[Ranked]
    exchanges: list[Ranked]
    latest_prices: dict[str, dict[str, Quote]]  # pair -> exchange -> quote
    changes_1h: dict[str, float]  # pair -> 1h change in %; a pair without an earlier price is absent
    arbitrage: list[Opportunity]


@dataclass(frozen=True)
class PairDetail:
    pair: str
    last_price: float
    last_at: int
    change_1h: float | None  # None: no earlier price within the hour yet
    volatility: float
    volume_24h: float
    quotes: dict[str, Quote]
    arbitrage: Opportunity | None


@dataclass(frozen=True)
class ParkedEvent:
    event_id: str
    stream: str
    position: int
    type: str
    field: str
    reason: str
    recorded_at: int
    retried: bool
    decision: str
    key: str = ""  # its name in the parked hash: ``stream/id`` (keys.parked_member), or the id alone if parked before


@dataclass(frozen=True)
class LagSample:
    at_ms: int
    lag_seconds: float


@dataclass(frozen=True)
class CanaryFreshness:
    """A projection's freshness canaries (``projector/canary.py``): the newest its live projector
    committed, and append -> commit in ms (appender's clock to projector's) over the last ``window_ms``:
    ``count`` canaries, their nearest-rank p50/p99 (None when the window holds none)."""

    projection: str
    canary_id: str  # the newest canary committed
    appended_at_ms: int  # when it was appended (the appender's clock)
    committed_at_ms: int  # when the batch holding it committed (the projector's clock)
    count: int
    p50_ms: int | None
    p99_ms: int | None
    window_ms: int
    now_ms: int

    @property
    def last_ms(self) -> int:
        """Append -> commit of the newest canary."""
        return self.committed_at_ms - self.appended_at_ms

    @property
    def last_seen_ms(self) -> int:
        return self.committed_at_ms

    @property
    def age_ms(self) -> int:
        """How long ago the projection last committed a canary: it grows while it sees none."""
        return max(0, self.now_ms - self.committed_at_ms)


@dataclass(frozen=True)
class CanaryAppend:
    """The newest canary beat appended (whichever projection has seen it)."""

    canary_id: str
    appended_at_ms: int
    position: int


def percentile(values: list[int], pct: float) -> int | None:
    """Nearest-rank percentile (an observed value, never interpolated); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


def _rank(zero_based: Any) -> int | None:
    return None if zero_based is None else int(zero_based) + 1


def _ranked(rows: list[tuple[Any, float]], start: int = 1) -> list[Ranked]:
    return [Ranked(text(m), float(s), start + i) for i, (m, s) in enumerate(rows)]


def _history_entry(member: Any) -> HistoryEntry:
    h = json.loads(text(member))
    return HistoryEntry(int(h["position"]), h["pair"], float(h["amount"]), int(h["at"]), h["event"])


def _risk_today(user: str, d: list[Any], today: str) -> RiskRanked:
    """A user's :data:`RISK_FIELDS` as of ``today`` (unranked): the stored figures when the user's
    day is today, else none of the day's (the model's ``as_of`` over the stored concentration)."""
    day = text(d[0])
    if not today or day >= today:
        return RiskRanked(user, 0, _f(d[1]), text(d[2]) or "low", _f(d[4]), _f(d[5]), _i(d[7]), _f(d[6]), day)
    score = idle_score(_f(d[3]))
    return RiskRanked(user, 0, score, risk_level(score), 0.0, 0.0, 0, _f(d[6]), day)


class Queries:
    """Queries over one Redis client (thread-safe; cheap to keep for the process)."""

    def __init__(self, client: redis.Redis) -> None:
        # redis-py types every reply as "Awaitable | value" (sync and async share stubs);
        # this is a sync client, so replies are plain values.
        self.client: Any = client
        self._generations: dict[str, tuple[float, int]] = {}
        self._memory: infrastructure.MemoryEstimate | None = None
        self._scans: dict[str, tuple[float, dict[int, inventory.Counted], inventory.Probe]] = {}

    def ks(self, projection: str) -> KeySpace:
        """The live generation's key space (pointer read at most once a second)."""
        cached = self._generations.get(projection)
        now = time.monotonic()
        if cached is None or now - cached[0] > GENERATION_CACHE_S:
            cached = (now, _i(self.client.get(keys.generation_pointer(projection)), 1))
            self._generations[projection] = cached
        return KeySpace(projection, cached[1])

    # -- portfolio and leaderboards ----------------------------------------------------

    def portfolio_summary(self, user_id: str, history: int = 10) -> PortfolioSummary | None:
        user = check_user(user_id)
        ks = self.ks("portfolio")
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(ks.portfolio(user))
        pipe.zrevrange(ks.portfolio_history(user), 0, history - 1)
        pipe.hgetall(ks.marks())
        pipe.zrevrank(ks.portfolio_values(), user)
        main, entries, marks, rank = pipe.execute()
        if not main:
            return None
        p: Portfolio = PORTFOLIO.parse(("user", user), _tm(main))
        live = value_of(p, {text(k): float(text(v)) for k, v in marks.items()})  # marked to the newest prices
        return PortfolioSummary(
            user, dict(p.positions), p.cost_basis, p.market_value, live, p.realized_pnl, p.trade_count,
            p.last_trade_id, p.last_trade_at, _rank(rank), [_history_entry(e) for e in entries],
        )

    def top_portfolios(self, limit: int = 10) -> list[TopPortfolio]:
        ks = self.ks("portfolio")
        rows = self.client.zrevrange(ks.portfolio_values(), 0, limit - 1, withscores=True)
        pipe = self.client.pipeline(transaction=False)
        for member, _ in rows:
            pipe.hlen(ks.portfolio_positions(text(member)))
        counts = pipe.execute() if rows else []
        return [TopPortfolio(r.id, r.score, r.rank, int(c)) for r, c in zip(_ranked(rows), counts)]

    def leaderboard_day(self) -> str:
        """'Today' for the leaderboards: the UTC day of the newest trade applied."""
        return text(self.client.hget(self.ks("leaderboards").clock(), "day"))

    def daily_volume_leaders(self, day: str | None = None, limit: int = 10) -> list[Ranked]:
        ks = self.ks("leaderboards")
        day = day or self.leaderboard_day()
        if not day:
            return []
        return _ranked(self.client.zrevrange(ks.daily_volume_leaders(day), 0, limit - 1, withscores=True))

    def strategy_performance(self, limit: int = 10) -> list[StrategyRow]:
        ks = self.ks("leaderboards")
        rows = self.client.zrevrange(ks.strategy_performance(), 0, limit - 1, withscores=True)
        pipe = self.client.pipeline(transaction=False)
        for member, _ in rows:
            pipe.hmget(ks.strategy(text(member)), "trades", "volume", "realizedPnl")
        details = pipe.execute() if rows else []
        return [StrategyRow(r.id, r.score, r.rank, _i(d[0]), _f(d[1]), _f(d[2])) for r, d in zip(_ranked(rows), details)]

    def user_rank(self, user_id: str) -> UserRank:
        """A user's ranks: portfolio value, today's volume, risk score (None when unranked)."""
        user = check_user(user_id)
        day = self.leaderboard_day()
        lb, pf, rk = self.ks("leaderboards"), self.ks("portfolio"), self.ks("risk")
        pipe = self.client.pipeline(transaction=False)
        pipe.zrevrank(pf.portfolio_values(), user)
        pipe.zrevrank(lb.daily_volume_leaders(day or "-"), user)
        pipe.zscore(lb.daily_volume_leaders(day or "-"), user)
        pipe.hmget(rk.user_risk(user), *RISK_FIELDS)
        pipe.hget(rk.clock(), "day")
        pv, vol, volume, risk, risk_day = pipe.execute()
        risk_rank = None
        if risk[0] is not None:  # the user has a risk profile
            risk_rank = self._risk_rank(rk, user, _risk_today(user, risk, text(risk_day)).score, text(risk_day))
        return UserRank(user, day, _rank(pv), _rank(vol), _f(volume), risk_rank)

    # -- risk -----------------------------------------------------------------------

    def risk_day(self) -> str:
        """'Today' for the risk read side: the UTC day of the newest trade the risk projection applied."""
        return text(self.client.hget(self.ks("risk").clock(), "day"))

    def risk_profile(self, user_id: str) -> RiskProfile | None:
        """A user's risk as of the projection's today (see :func:`~projections.readmodels.risk.as_of`)."""
        user = check_user(user_id)
        ks = self.ks("risk")
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(ks.user_risk(user))
        pipe.hget(ks.clock(), "day")
        main, today = pipe.execute()
        if not main:
            return None
        stored: Risk = RISK.parse(("user", user), _tm(main))
        r = as_of(stored, text(today))
        active = sorted(r.active.values(), key=lambda a: (-a.raised_at, a.alert_id))
        return RiskProfile(
            user, r.day, r.daily_volume, r.daily_exposure, r.trades_today, r.largest_today, r.largest_trade,
            r.exposure, r.concentration, r.score, r.level, self._risk_rank(ks, user, r.score, text(today)), active,
            list(r.acknowledged), stored.day,
        )

    def high_risk_users(self, limit: int = 50, threshold: float = HIGH_RISK_DAILY_EXPOSURE) -> HighRiskUsers:
        """Users whose daily exposure today (the risk projection's newest day) exceeds ``threshold``:
        the first ``limit`` by score, then exposure, and the true total. ``user-daily-exposure`` holds
        each user's exposure of *their* newest day, so every member over the threshold is checked
        (chunked) before the list is cut: an earlier day's whale is never today's high-risk user."""
        ks = self.ks("risk")
        today = self.risk_day()
        out = [
            HighRiskUser(user, _f(d[4]), text(d[0]), _f(d[1]), text(d[2]), _f(d[6]), _f(d[5]))
            for _, chunk in self._risk_walk(ks, ks.user_daily_exposure(), f"({threshold}")
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
        ks = self.ks("risk")
        today = self.risk_day()
        found: list[RiskRanked] = []
        for bound, chunk in self._risk_walk(ks, ks.user_risk_scores()):
            found += [_risk_today(user, d, today) for user, d in chunk]
            found.sort(key=lambda r: -r.score)  # stable: equal scores stay in the ranking's order
            if len(found) >= limit and found[limit - 1].score >= bound:
                break
        rows = [replace(r, rank=i) for i, r in enumerate(found[:limit], 1)]
        return RiskRanking(today, rows, int(self.client.zcard(ks.user_risk_scores())))

    def active_alerts(self, limit: int = 50) -> list[Alert]:
        """Active (unacknowledged) risk alerts, newest first by event time."""
        ks = self.ks("risk")
        ids = [text(m) for m in self.client.zrevrange(ks.risk_alerts(), 0, limit - 1)]
        if not ids:
            return []
        return [Alert.from_json(json.loads(text(d))) for d in self.client.hmget(ks.risk_alert_details(), ids) if d is not None]

    def active_alert_count(self) -> int:
        """How many risk alerts are active, all of them (the badge; the list shows the newest)."""
        return int(self.client.zcard(self.ks("risk").risk_alerts()))

    def _risk_walk(self, ks: KeySpace, ranking: str, low: str = "-inf") -> Iterator[tuple[float, list[tuple[str, list[Any]]]]]:
        """``ranking``'s members from the top (stored score >= ``low``), a chunk at a time with their
        :data:`RISK_FIELDS`, each chunk with its lowest stored score."""
        start = 0
        while True:
            rows = self.client.zrevrangebyscore(ranking, "+inf", low, start=start, num=RISK_SCAN_CHUNK, withscores=True)
            if not rows:
                return
            pipe = self.client.pipeline(transaction=False)
            for member, _ in rows:
                pipe.hmget(ks.user_risk(text(member)), *RISK_FIELDS)
            yield float(rows[-1][1]), [(text(m), d) for (m, _), d in zip(rows, pipe.execute())]
            if len(rows) < RISK_SCAN_CHUNK:
                return
            start += RISK_SCAN_CHUNK

    def _risk_rank(self, ks: KeySpace, user: str, score: float, today: str) -> int | None:
        """``user``'s place in :meth:`risk_ranking`'s order given its today's ``score``; None when
        unranked or further down than :data:`RISK_RANK_SCAN` members of the stored ranking."""
        ahead, walked, seen = 0, 0, False
        for bound, chunk in self._risk_walk(ks, ks.user_risk_scores()):
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

    # -- market ---------------------------------------------------------------------

    def market_overview(self, limit: int = 10, now_ms: int | None = None) -> MarketOverview:
        """Movers, volume leaders, exchanges, latest prices, 1h changes and unexpired arbitrage
        (one round trip)."""
        ks = self.ks("market")
        pipe = self.client.pipeline(transaction=False)
        pipe.zrevrangebyscore(ks.price_changes_1h(), "+inf", "(0", start=0, num=limit, withscores=True)
        pipe.zrangebyscore(ks.price_changes_1h(), "-inf", "(0", start=0, num=limit, withscores=True)
        pipe.zrevrange(ks.volume_24h(), 0, limit - 1, withscores=True)
        pipe.zrevrange(ks.exchange_liquidity(), 0, limit - 1, withscores=True)
        pipe.hgetall(ks.latest_prices())
        pipe.hgetall(ks.arbitrage())
        pipe.zrange(ks.price_changes_1h(), 0, -1, withscores=True)
        gainers, losers, volume, exchanges, prices, arbitrage, changes = pipe.execute()
        latest: dict[str, dict[str, Quote]] = {}
        for name, quote in prices.items():
            exchange, _, pair = text(name).partition(":")
            q = json.loads(text(quote))
            latest.setdefault(pair, {})[exchange] = Quote(q["price"], q["volume"], q["spread"], q["timestamp"])
        now = int(time.time() * 1000) if now_ms is None else now_ms
        live = [o for o in (opportunity_from_json(json.loads(text(v))) for v in arbitrage.values()) if o and o.expires_at > now]
        return MarketOverview(
            _ranked(gainers), _ranked(losers), _ranked(volume), _ranked(exchanges), latest,
            {text(m): float(s) for m, s in changes}, sorted(live, key=lambda o: (-o.spread, o.pair)),
        )

    def pair_detail(self, pair: str) -> PairDetail | None:
        p = check_pair(pair)
        main = self.client.hgetall(self.ks("market").market_pair(p))
        if not main:
            return None
        m: PairMarket = MARKET.parse(("pair", p), _tm(main))
        return PairDetail(p, m.last_price, m.last_at, m.change_1h, m.volatility, m.volume_24h, dict(m.quotes), m.arbitrage)

    # -- operations -----------------------------------------------------------------

    def projection_status(self, projection: str | None = None) -> list[ProjectionStatus]:
        """Status of one or every projection, in one round trip."""
        names = [check_projection(projection)] if projection else list(PROJECTIONS)
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(keys.status(name))
            pipe.get(keys.heartbeat(name))
            pipe.hlen(keys.parked(name))
            pipe.get(keys.generation_pointer(name))
        replies = pipe.execute()
        out = []
        for i, name in enumerate(names):
            status, beat, parked, generation = replies[4 * i : 4 * i + 4]
            out.append(parse_status(name, _tm(status), beat, int(parked), _i(generation, 1)))
        return out

    def write_refusal(self) -> str:
        """Why Redis refuses writes now, with the figures ('' while it takes them): ``maxmemory`` reached under the
        ``noeviction`` policy, which evicts nothing to make room (every projector then stalls)."""
        memory: dict[str, Any] = self.client.info("memory")
        used, most = int(memory.get("used_memory", 0)), int(memory.get("maxmemory", 0))
        if not most or used <= most or memory.get("maxmemory_policy") != "noeviction":
            return ""
        return (f"Redis refuses writes (out of memory): {used / 2**20:,.1f} MiB used of its maxmemory "
                f"{most / 2**20:,.1f} MiB, policy noeviction")

    def parked_events(self, projection: str, limit: int | None = 100, newest: bool = False) -> list[ParkedEvent]:
        """Parked events of ``projection``: the oldest ``limit`` (None: all) by position, oldest first
        (``newest``: the newest ``limit``, newest first)."""
        name = check_projection(projection)
        index, end = keys.parked_index(name), -1 if limit is None else limit - 1
        members = self.client.zrevrange(index, 0, end) if newest else self.client.zrange(index, 0, end)
        ids = [text(m) for m in members]
        if not ids:
            return []
        records = self.client.hmget(keys.parked(name), ids)
        return [_parked(json.loads(text(r)), m) for m, r in zip(ids, records) if r is not None]

    def parked_member(self, projection: str, name: str) -> str:
        """The parked event of ``projection`` an operator names by ``name``: ``stream/id``, its commit position, or
        its event id alone when no other parked event has that id (event ids are unique only within a stream).
        Raises NotParked if none is, AmbiguousEvent (listing each as ``stream/id`` with its position) if several."""
        proj = check_projection(projection)
        found = sorted(self._parked_named(proj, name))
        if not found:
            raise NotParked(f"event {name} is not parked in the {proj} projection; nothing to retry")
        if len(found) == 1:
            return found[0]
        scores = self.client.zmscore(keys.parked_index(proj), found)
        listed = ", ".join(f"{m} (position {int(p) if p is not None else '?'})" for m, p in zip(found, scores))
        raise AmbiguousEvent(f"event id {name} names {len(found)} parked events of the {proj} projection: "
                             f"{listed}; name one as stream/id or by its commit position")

    def _parked_named(self, proj: str, name: str) -> set[str]:
        """The members of ``proj``'s parked hash that ``name`` may mean (see :meth:`parked_member`)."""
        found: set[str] = set()
        if self.client.hexists(keys.parked(proj), name):  # stream/id, or an id parked before issue 22
            found.add(name)
        if name.isdigit():  # event ids are UUIDs: digits alone are a commit position
            found.update(text(m) for m in self.client.zrangebyscore(keys.parked_index(proj), name, name))
        elif "/" in name:  # a record parked before issue 22 is named by its id alone: find it by its stream too
            stream, _, event_id = name.rpartition("/")
            old = self.client.hget(keys.parked(proj), event_id)
            if old is not None and json.loads(text(old)).get("stream") == stream:
                found.add(event_id)
        else:
            pattern = "*/" + "".join(f"\\{c}" if c in "*?[]\\" else c for c in name)
            found.update(text(f) for f, _ in self.client.hscan_iter(keys.parked(proj), match=pattern, count=1000))
        return found

    def lag_history(self, projection: str, now_ms: int) -> list[LagSample]:
        """Lag samples of the last hour (see ``projector/lag.py``), oldest first."""
        name = check_projection(projection)
        members = self.client.zrangebyscore(keys.lag_history(name), now_ms - keys.LAG_HISTORY_MS, "+inf")
        samples = []
        for member in members:
            at, _, lag = text(member).partition(":")
            samples.append(LagSample(int(at), float(lag)))
        return samples

    def canary(self, projection: str, now_ms: int | None = None, window_ms: int = CANARY_WINDOW_MS) -> CanaryFreshness | None:
        """``projection``'s freshness canaries (see :class:`CanaryFreshness`); None if it never committed one
        (within the hour the samples are kept)."""
        name = check_projection(projection)
        now = int(time.time() * 1000) if now_ms is None else now_ms
        pipe = self.client.pipeline(transaction=False)
        pipe.zrange(keys.canary_samples(name), -1, -1)
        pipe.zrangebyscore(keys.canary_samples(name), now - window_ms, "+inf")
        newest, recent = pipe.execute()
        if not newest:
            return None
        committed, appended, canary_id = text(newest[0]).split(":", 2)
        figures = [int(c) - int(a) for c, a, _ in (text(m).split(":", 2) for m in recent)]
        return CanaryFreshness(name, canary_id, int(appended), int(committed), len(figures), percentile(figures, 50),
                               percentile(figures, 99), window_ms, now)

    def canary_appended(self) -> CanaryAppend | None:
        """The newest canary beat appended, or None if none was."""
        d = _tm(self.client.hgetall(keys.canary_appended()))
        return CanaryAppend(d["canaryId"], int(d["appendedAt"]), _i(d.get("position"))) if d.get("canaryId") else None

    # -- infrastructure (the figures are measured in projections/infrastructure.py) ----------------

    def redis_memory(self) -> infrastructure.RedisMemory:
        return infrastructure.redis_memory(self.client)

    def projection_memory(self, max_age: float = MEMORY_ESTIMATE_CACHE_S) -> infrastructure.MemoryEstimate:
        """Memory per projection, estimated from a bounded sample of keys; measured at most every ``max_age`` s."""
        cached = self._memory
        if cached is None or time.time() - cached.measured_at > max_age:
            cached = self._memory = infrastructure.memory_by_projection(self.client, list(PROJECTIONS))
        return cached

    def redis_latency(self, n: int = infrastructure.PING_ROUND_TRIPS) -> infrastructure.Latency:
        """PING round trips from this process."""
        return infrastructure.round_trips(self.client.ping, n)

    def query_latency(self, n: int = infrastructure.QUERY_ROUND_TRIPS) -> infrastructure.Latency:
        """Round trips of a typical query (every projection's status) from this process."""
        return infrastructure.round_trips(self.projection_status, n)

    def infra_history(self, series: list[str], now_ms: int) -> dict[str, list[tuple[int, float]]]:
        """Infrastructure samples of the last hour per series, oldest first (see ``infrastructure.record_samples``)."""
        return infrastructure.read_history(self.client, series, now_ms)

    def generations(self, projection: str, max_age: float = GENERATIONS_CACHE_S) -> list[inventory.Generation]:
        """Every generation of ``projection`` present in Redis with its role, keys and memory (estimated; see
        ``projections/inventory.py``). The roles are read each time (a probe, two round trips); the keys are
        counted by a SCAN at most every ``max_age`` s, and again as soon as the probe sees a generation come or go."""
        name = check_projection(projection)
        cached = self._scans.get(name)
        if cached is not None:
            at, counted, before = cached
            seen = inventory.probe(self.client, name, inventory.numbers_to_probe(counted))
            if time.monotonic() - at <= max_age and seen.marks == before.marks:
                return inventory.describe(name, counted, seen)
        counted = inventory.count(self.client, name)
        seen = inventory.probe(self.client, name, inventory.numbers_to_probe(counted))
        self._scans[name] = (time.monotonic(), counted, seen)
        return inventory.describe(name, counted, seen)

    def health_samples(self, projection: str) -> list[HealthSample]:
        """The projector's status samples (``projector/status.py``), newest first: the health window."""
        members = self.client.lrange(keys.health_samples(check_projection(projection)), 0, -1)
        return [s for s in (HealthSample.decode(text(m)) for m in members) if s is not None]


PublishedEvent = RiskLevelChanged | PortfolioSignificantlyUpdated


def published_events(store: EventStore, user_id: str, limit: int = 20) -> list[PublishedEvent]:
    """The newest ``limit`` domain events the live projector published about the user (both kinds,
    newest first), read from their streams in the event store (:mod:`projections.published`)."""
    found: list[PublishedEvent] = []
    for stream in published_streams(check_user(user_id)):
        for item in store.read_stream_newest(stream, limit):
            try:
                event = decode(item)
            except BadEvent:
                continue
            if isinstance(event, (RiskLevelChanged, PortfolioSignificantlyUpdated)):
                found.append(event)
    return sorted(found, key=lambda e: e.envelope.position, reverse=True)[:limit]


def _parked(d: Mapping[str, Any], key: str) -> ParkedEvent:
    return ParkedEvent(
        d["eventId"], d["stream"], int(d["position"]), d["type"], d["field"], d["reason"], int(d.get("recordedAt", 0)),
        bool(d.get("retried", False)), d.get("decision", ""), key,
    )
