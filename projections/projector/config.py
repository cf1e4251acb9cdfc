"""What a runner is told: its projection (and partition), where Redis and the store are, and how to batch, retry and
report (plain values from the settings; ``lucent_admin/bootstrap.py`` builds them on the Django side)."""
from __future__ import annotations

from dataclasses import dataclass

from projections.projector.fanout import SharedReader, Sources
from projections.published import SignificantMove


@dataclass
class RunnerConfig:
    projection: str
    redis_url: str
    eventstore_uri: str
    on_bad_event: str = "park"
    batch_size: int = 500
    live_flush_ms: int = 2
    live_max_batch_ms: int = 5
    lease_ms: int = 10_000
    status_interval: float = 1.0
    events_behind_bound: int = 1000
    state_cache_entries: int = 20_000  # entities kept in memory between batches (see cache.py)
    reader_process_after: int = 5_000  # events read in-process before a long catch-up moves to a reader process; -1: never
    backoff_initial: float = 0.2
    backoff_max: float = 10.0
    exit_when_caught_up: bool = False
    generation: int | None = None  # None: the live generation (its pointer); a rebuild names a new one
    partition: int = 0  # which partition of the projection this runner folds (projections.partitions)
    partitions: int = 1  # into how many the generation is split (its layout)
    publish_status: bool = True  # the live projector's status hash and heartbeat (a rebuild's runner has none)
    publish_events: bool = False  # append domain events (projections.published); only ever by the live runner
    significant_move: SignificantMove = SignificantMove()  # a portfolio move worth PortfolioSignificantlyUpdated


def window_of(config: RunnerConfig) -> int:
    """The subscription's checkpoint window: a checkpoint marker every few of its batches."""
    return max(30, config.batch_size // 5)


def shared_reader(config: RunnerConfig) -> SharedReader:
    """The one reading of ``$all`` a projector process shares among its runners (see :mod:`projections.projector.fanout`)."""
    sources = Sources(config.eventstore_uri, window_of(config), config.reader_process_after)
    return SharedReader(sources.open, backoff_initial=config.backoff_initial, backoff_max=config.backoff_max)
