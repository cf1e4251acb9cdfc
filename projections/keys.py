"""Every Redis key name of Lucent, built by functions (no f-string keys elsewhere).

Layout::

    lucent:{<projection>}:generation              pointer: the live generation (int, default 1)
    lucent:{<projection>}:g<N>:checkpoint         commit position of the last applied event
    lucent:{<projection>}:g<N>:state-epoch        bumped by any writer but the projector (see cache.py)
    lucent:{<projection>}:g<N>:<read model key>   e.g. lucent:{portfolio}:g1:portfolio:alice
    lucent:{<projection>}:kept                    hash: the generation kept for a rollback, since when
    lucent:{<projection>}:g<N>-lease              fencing token of the job writing generation N (not live)
    lucent:{<projection>}:lease                   fencing token of the projector that owns it
    lucent:{<projection>}:epoch                   bumped on each acquisition of that lease (fencing epoch)
    lucent:{members}:live                         sorted set: projector members by announcement expiry
    lucent:{members}:member:<id>                  hash: what a member says of itself (TTL)
    lucent:{<projection>}:heartbeat               refreshed with a TTL while a projector runs
    lucent:{<projection>}:status                  hash: state, checkpoint, head, lag, ...
    lucent:{<projection>}:parked                  hash: event id -> parked event (JSON)
    lucent:{<projection>}:parked:index            sorted set: event id by commit position
    lucent:{<projection>}:canary-samples          sorted set: freshness canaries the live projector committed
    lucent:{<projection>}:outbox                  hash: published events not yet appended to the store

Read-model key names after the generation prefix keep the platform document's
vocabulary (``portfolio:{userId}``, ``portfolio-values``, ``user-risk-scores``,
``user-daily-exposure``, ``risk-alerts``, ``latest-prices``, ``volume-24h``,
``daily-volume-leaders``, ...).

Hash tags (decision for Redis Cluster): the projection name in braces is the
hash tag, so every key of one projection, all its generations, its checkpoint,
lease and parked events hash to one slot. That is what lets a batch's writes,
its checkpoint and the fencing check commit in one transaction (MULTI/EXEC and
Lua scripts must stay within one slot), and lets a rebuild flip the generation
pointer atomically. The price: one projection lives on one cluster node. A
partitioned projection (:mod:`projections.partitions`) gives each partition its
own tag, e.g. ``{portfolio.p03}``, with its own checkpoint, lease and epoch; the
tag is built in one place (:func:`tag`, from ``Partition.tag``) for that reason.
"""
from __future__ import annotations

from dataclasses import dataclass

PREFIX = "lucent"
CHANNELS_PREFIX = f"{PREFIX}:asgi"  # the Channels layer's keys (channels_redis "prefix")
CELERY_PREFIX = f"{PREFIX}:celery:"  # Celery's broker and result keys (kombu "global_keyprefix")
LAG_HISTORY_MS = 3_600_000  # lag samples are kept for an hour
CANARY_HISTORY_MS = 3_600_000  # canary samples are kept for an hour
CANARY_SAMPLES_CAP = 10_000  # and at most this many (a canary a second is 3,600 an hour)


def tag(projection: str) -> str:
    """The hash-tagged root of a projection's keys: ``lucent:{portfolio}``."""
    return f"{PREFIX}:{{{projection}}}"


def generation_pointer(projection: str) -> str:
    return f"{tag(projection)}:generation"


def lease(projection: str) -> str:
    return f"{tag(projection)}:lease"


def partition_epoch(tag_name: str) -> str:
    """Counter bumped each time a partition's lease is taken: its fencing epoch (in the lease's value, so a
    commit carrying an older epoch is refused even by the member that owns the partition again)."""
    return f"{tag(tag_name)}:epoch"


def members() -> str:
    """Sorted set: each projector member by the time (ms) its announcement expires (renewed while it runs)."""
    return f"{PREFIX}:{{members}}:live"


def member_info(member: str) -> str:
    """Hash (with a TTL) of what a member says of itself: host, pid, partitions, events/s, CPU, memory."""
    return f"{PREFIX}:{{members}}:member:{member}"


def heartbeat(projection: str) -> str:
    return f"{tag(projection)}:heartbeat"


def status(projection: str) -> str:
    return f"{tag(projection)}:status"


def parked(projection: str) -> str:
    """Hash: parked event (:func:`parked_member`) -> its record (JSON: id, stream, position, type, field, reason...)."""
    return f"{tag(projection)}:parked"


def parked_index(projection: str) -> str:
    """Sorted set: parked event (:func:`parked_member`) scored by its commit position."""
    return f"{tag(projection)}:parked:index"


def parked_member(stream: str, event_id: str) -> str:
    """How a parked event is named in :func:`parked`, :func:`parked_index` and the request sets: ``stream/id``,
    since event ids are unique only within a stream (records parked before issue 22 are named by id alone)."""
    return f"{stream}/{event_id}"


def outbox(projection: str) -> str:
    """Hash: published event id -> the event to publish (``published.Outgoing``), written in a batch's commit and
    emptied once appended to the store (see ``projector/publisher.py``); in the projection's slot, not a generation's."""
    return f"{tag(projection)}:outbox"


def outbox_horizon(projection: str) -> str:
    """Commit position up to which the projection's events are history, never published (set once)."""
    return f"{tag(projection)}:outbox:horizon"


def retry_requests(projection: str) -> str:
    """Set of parked events (:func:`parked_member`) an operator asked to retry."""
    return f"{tag(projection)}:parked:retry"


def park_requests(projection: str) -> str:
    """Set of bad events (:func:`parked_member`) an operator decided to park (a ``stop``-policy projection resumes
    past them)."""
    return f"{tag(projection)}:parked:decided"


def resync_request(projection: str) -> str:
    """Set (with a TTL) when an operator asks the running projector to drop its state and resubscribe."""
    return f"{tag(projection)}:resync"


def flip(projection: str) -> str:
    """Hash of a flip in progress: from, to, state (requested, paused, done, aborted), at, job."""
    return f"{tag(projection)}:flip"


def kept(projection: str) -> str:
    """Hash of the generation kept for a rollback: ``generation``, ``since`` (ms: the flip that left it), written
    after each flip; a failed or aborted flip leaves it as it was."""
    return f"{tag(projection)}:kept"


def layout(projection: str, generation: int) -> str:
    """Hash: how a generation is split, ``partitions`` (a power of two) and ``hash`` (``crc32``), written once when
    the generation is first built, beside the pointer; P changes only through a rebuild into a new generation."""
    return f"{tag(projection)}:g{generation}-layout"


def folds(projection: str, generation: int) -> str:
    """Hash: the board of a rebuild's fold of a generation shared among workers: ``state``, ``groups`` and per fold
    group ``applied:<i>``, ``caught:<i>``, ``failed:<i>`` (``maintenance/folds.py``); gone once the rebuild ends."""
    return f"{tag(projection)}:g{generation}-folds"


def fold_lease(projection: str, generation: int, group: int) -> str:
    """The lease of one fold group of a rebuild: the token of the worker folding that group's partitions."""
    return f"{tag(projection)}:g{generation}-fold{group}-lease"


def generation_lease(projection: str, generation: int) -> str:
    """Fencing token of the job writing a generation that is not live (a rebuild's, a rollback's)."""
    return f"{generation_prefix(projection, generation)}-lease"


def generation_prefix(projection: str, generation: int) -> str:
    return f"{tag(projection)}:g{generation}"


def generation_pattern(projection: str, generation: int) -> str:
    """SCAN pattern matching every key of one generation."""
    return f"{generation_prefix(projection, generation)}:*"


def projection_pattern(projection: str) -> str:
    """SCAN pattern matching every key of a projection (all generations)."""
    return f"{PREFIX}:{{{projection}}}:*"


@dataclass(frozen=True, slots=True)
class KeySpace:
    """The read-model keys of one generation of one projection, or of one partition of it (``tag``: the
    partition's hash tag, ``Partition.tag``; empty for a projection in one partition)."""

    projection: str
    generation: int = 1
    tag: str = ""

    @property
    def root(self) -> str:
        """The hash tag the keys live under: the partition's, else the projection's."""
        return self.tag or self.projection

    def key(self, *parts: str) -> str:
        return ":".join((generation_prefix(self.root, self.generation), *parts))

    def name_of(self, key: str) -> str:
        """The document-vocabulary name of ``key`` (its part after the generation prefix)."""
        return key[len(generation_prefix(self.root, self.generation)) + 1 :]

    @property
    def checkpoint(self) -> str:
        return self.key("checkpoint")

    @property
    def state_epoch(self) -> str:
        return self.key("state-epoch")

    # portfolio
    def portfolio(self, user_id: str) -> str:
        return self.key("portfolio", user_id)

    def portfolio_positions(self, user_id: str) -> str:
        return self.key("portfolio", user_id, "positions")

    def portfolio_history(self, user_id: str) -> str:
        return self.key("portfolio-history", user_id)

    def portfolio_values(self) -> str:
        return self.key("portfolio-values")

    def marks(self) -> str:
        return self.key("marks")

    def rebalance_marks(self) -> str:
        """The marks each rebalance was folded with, by commit position (the per-user rebuild's index)."""
        return self.key("rebalance-marks")

    # risk
    def user_risk(self, user_id: str) -> str:
        return self.key("user-risk", user_id)

    def user_risk_scores(self) -> str:
        return self.key("user-risk-scores")

    def user_daily_exposure(self) -> str:
        return self.key("user-daily-exposure")

    def risk_alerts(self) -> str:
        return self.key("risk-alerts")

    def risk_alert_details(self) -> str:
        return self.key("risk-alert-details")

    # market
    def market_pair(self, pair: str) -> str:
        return self.key("market", pair)

    def market_exchange(self, exchange: str) -> str:
        return self.key("exchange", exchange)

    def latest_prices(self) -> str:
        return self.key("latest-prices")

    def price_changes_1h(self) -> str:
        return self.key("price-changes-1h")

    def volume_24h(self) -> str:
        return self.key("volume-24h")

    def volatility(self) -> str:
        return self.key("volatility")

    def exchange_liquidity(self) -> str:
        return self.key("exchange-liquidity")

    def arbitrage_opportunities(self) -> str:
        return self.key("arbitrage-opportunities")

    def arbitrage(self) -> str:
        return self.key("arbitrage")

    # leaderboards
    def trader(self, user_id: str) -> str:
        return self.key("trader", user_id)

    def daily_volume_leaders(self, day: str) -> str:
        return self.key("daily-volume-leaders", day)

    def strategy(self, strategy_id: str) -> str:
        return self.key("strategy", strategy_id)

    def strategy_performance(self) -> str:
        return self.key("strategy-performance")

    # shared by risk and leaderboards: the newest event time the projection has seen
    def clock(self) -> str:
        return self.key("clock")


def arbitrage_member(pair: str, buy_exchange: str, sell_exchange: str) -> str:
    """Member name of an opportunity in ``arbitrage-opportunities`` (the document's form)."""
    return f"{pair}:{buy_exchange}:{sell_exchange}"


def latest_price_field(exchange: str, pair: str) -> str:
    """Field of ``latest-prices`` (the document's ``exchange:pair``)."""
    return f"{exchange}:{pair}"


def lag_history(projection: str) -> str:
    """Sorted set of lag samples (member ``<at ms>:<lag seconds>``, score at ms), trimmed to LAG_HISTORY_MS."""
    return f"{tag(projection)}:lag-history"


def canary_samples(projection: str) -> str:
    """Sorted set of the freshness canaries the live projector committed (member
    ``<committed ms>:<appended ms>:<canary id>``, score committed ms), trimmed to CANARY_HISTORY_MS and
    CANARY_SAMPLES_CAP. In the projection's hash tag: it is written by the batch's commit script."""
    return f"{tag(projection)}:canary-samples"


def canary_appended() -> str:
    """Hash of the newest canary beat appended: ``canaryId``, ``appendedAt`` (ms), ``position``."""
    return f"{PREFIX}:canary:appended"


HEALTH_SAMPLES = 300  # status samples kept per projection (one a second: five minutes)


def health_samples(projection: str) -> str:
    """List of the projector's status samples, newest first (``HealthSample.encode``), capped at HEALTH_SAMPLES."""
    return f"{tag(projection)}:health-samples"


def recovery(projection: str, name: str) -> str:
    """The recovery rules' own keys for a projection: ``since:<rule>``, ``cooldown:<rule>``, ``attempts``,
    ``lock``, ``escalated``, ``cold-start`` (see ``projections/recovery.py``)."""
    return f"{PREFIX}:recovery:{projection}:{name}"


def job_lease(job_id: int) -> str:
    """Fencing token of the worker running job ``job_id`` (a job never runs twice at once)."""
    return f"{PREFIX}:jobs:{job_id}:lease"


def consistency_cursor() -> str:
    """Where the rolling sample of scheduled consistency checks has got to (a counter)."""
    return f"{PREFIX}:consistency:cursor"


INFRA_HISTORY_MS = 3_600_000  # infrastructure samples are kept for an hour


def infra_history(series: str) -> str:
    """Sorted set of one infrastructure series' samples (member ``<at ms>:<value>``, score at ms), trimmed to
    INFRA_HISTORY_MS (see ``projections/infrastructure.py``; a per-projection series is named ``<figure>:<projection>``)."""
    return f"{PREFIX}:infra:{series}"
