"""The subscription loop of one projection, or of one partition of it: lease, sessions, catch-up, live loop (one
batch's steps are :mod:`projections.projector.batch`).

Contract of :meth:`Runner.run`:

* takes the partition's lease (waits up to one lease period for a dead
  holder; a live holder makes it raise :class:`Fenced` — the loser stops);
  a member's runner starts with the token of the lease its member claimed;
* reads ``$all`` after the stored checkpoint, from the process's shared reader
  (:mod:`projections.projector.fanout`; a runner far behind while others are live
  catches up alone first) or, without one, on a subscription of its own with a
  server-side filter on the read model's event types (checkpoint markers included);
* a partition folds an event only for the entities it holds (``Placement``);
* per batch: decode, load the touched entities in one round trip (those
  committed by an earlier batch come from the state cache, see
  :mod:`projections.projector.cache`), fold in memory, commit writes + parked events +
  checkpoint in one Lua script; catch-up batches fill up to ``batch_size``;
  live, a batch is flushed after ``live_flush_ms`` of quiet;
* a catch-up longer than ``reader_process_after`` events goes on with the
  reading in a child process (:mod:`projections.projector.reader`), then back to an
  in-process subscription to go live;
* event store or Redis unreachable: retry with exponential backoff and full
  jitter, logged; the batch is re-read from the checkpoint, so an event is
  never lost nor applied twice;
* a bad event is parked (policy ``park``) or stops the projection (``stop``)
  after committing everything before it; stopped, the runner stays alive and
  resumes once an operator decides to park that event (``exit_when_caught_up``
  raises :class:`ProjectionStopped` instead);
* an event that decodes but whose fold raises (valid but absurd values, see
  :mod:`projections.projector.fold`) is always parked, whatever the policy, in
  the commit of its batch (reason ``fold failed: ...``): the states stay as
  before it and the runner goes on — it never dies of an event;
* the stop flag (SIGTERM / Ctrl-C) finishes the batch in flight and returns.
* a freshness canary (:mod:`projections.projector.canary`) is folded by nothing; the live
  runner records it in the commit of its batch and names it in the change notice.

``hook(step)`` is called at "read", "fold", "write" and "commit" for fault
injection in tests; ``notifier(notice)`` after each committed batch. The live runner
(``publish_events``, no ``generation``, ``publish_status``: never a rebuild's) also writes the
domain events its batches cause to the outbox in the same commit and appends them after it
(:mod:`projections.projector.publisher`).
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis

from projections import keys, layout
from projections.codec import text
from projections.connection import AWAY, connect, is_cluster
from projections.errors import (
    CheckpointMoved,
    EventStoreUnavailable,
    Fenced,
    Flipped,
    LayoutChanged,
    LeaseLost,
    ProjectionStopped,
    RedisRefusesWrites,
    ResyncRequested,
)
from projections.events import Recorded
from projections.eventstore import EventStore, Marker, Subscription
from projections.layout import live_generation, space
from projections.partitions import Partition
from projections.projector import vanished
from projections.projector.batch import BatchSteps
from projections.projector.batches import Collected, collect_direct, collect_live
from projections.projector.cache import StateCache
from projections.projector.config import RunnerConfig as RunnerConfig
from projections.projector.config import shared_reader as shared_reader
from projections.projector.config import window_of
from projections.projector.fanout import SharedReader, Tap
from projections.projector.feed import Feed, pump
from projections.projector.lease import Lease, new_token
from projections.projector.parking import Parking
from projections.projector.publisher import Publisher
from projections.projector.reader import ReaderProcess
from projections.projector.requests import POLL_S as REQUEST_POLL_S
from projections.projector.requests import Requests
from projections.projector.status import Reporter, RunStatus
from projections.projector.vanished import Healer
from projections.published import builder_for
from projections.readmodels import model as model_named
from projections.status import ProjectionState as State
from projections.writer import Committer

log = logging.getLogger(__name__)

Notifier = Callable[[dict[str, Any]], None]
Hook = Callable[[str], None]
RETURN, LIVE, SWITCH = "return", "live", "switch"  # outcomes of Runner._catch_up
# Redis refusing writes (out of memory; a replica, during a failover) is a stall to wait out, like Redis away.
RETRYABLE: tuple[type[Exception], ...] = (EventStoreUnavailable, *AWAY, CheckpointMoved, LeaseLost, RedisRefusesWrites,
                                          redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError, OSError)
AWAY_OR_LOST: tuple[type[Exception], ...] = (*AWAY, LeaseLost)  # a stall after which the lease is taken again


def _noop(_: Any) -> None:
    return None


class Runner(BatchSteps):
    def __init__(self, config: RunnerConfig, notifier: Notifier | None = None, hook: Hook | None = None,
                 healer: Healer | None = None, token: str | None = None, client: redis.Redis | None = None,
                 shared: SharedReader | None = None) -> None:
        """``token``: the fencing token of an ownership already taken (a member's claim, ``member#epoch``);
        by default a new one, the runner taking the lease itself. ``client``: the Redis client to use, handed in
        by whoever composes the process (thread-safe, shared by its runners); by default one of ``redis_url``.
        ``shared``: the process's one reading of ``$all`` (:mod:`projections.projector.fanout`); by default the
        runner subscribes on its own."""
        self.config = config
        self.healer = healer  # heals entities that vanished behind the projector (see projector/vanished.py)
        self.model = model_named(config.projection)
        self.notifier = notifier or _noop
        self.hook = hook or _noop
        self.stop_flag = threading.Event()
        self.token = token or new_token()
        self.redis = client if client is not None and not is_cluster(client) else connect(config.redis_url)  # cluster: own client
        self.partition = Partition(config.projection, config.partition, config.partitions)
        tag = self.tag = self.partition.tag  # the partition's keys: its checkpoint, lease, status, parked events, ...
        self.status = RunStatus(tag, self.token)
        self.ks = space(self.partition, 1)
        lease_key = keys.lease(tag) if config.generation is None else keys.generation_lease(tag, config.generation)
        self.lease = Lease(self.redis, tag, self.token, config.lease_ms, key=lease_key)
        self.committer = Committer(self.redis, config.projection, self.token, config.lease_ms, lease_key,
                                   live=config.generation is None)  # the live runner commits only to the pointer's generation
        self.parking = Parking(self.redis, tag)
        live = config.publish_events and config.generation is None and config.publish_status
        build = builder_for(config.projection, config.significant_move) if live else None
        self.publisher = None if build is None else Publisher(self.redis, tag, build)
        self.build = None if self.publisher is None else self.publisher.events_of
        self.requests = Requests(self.redis, tag, self.lease, config.lease_ms, self.stop_flag, self._tick,
                                 keys.generation_pointer(config.projection))
        self.caught_up = False
        self.shared = shared
        self.tap: Tap | None = None
        self._target = 0
        self.cache = StateCache(config.state_cache_entries)
        self._store: EventStore | None = None
        self._checkpoint_text = ""
        self._healed: set[str] = set()  # users healed in the batch in flight (each once)
        self._known = vanished.Known()  # a session from nothing: the users it committed (others absent are new)

    # -- lifecycle ---------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish the batch in flight and return (thread- and signal-safe)."""
        self.stop_flag.set()

    def run(self) -> None:
        reporter = Reporter(self.status, self.redis, self._new_store, self.model.event_types,
                            self.config.status_interval, self.config.events_behind_bound)
        if self.config.publish_status:
            reporter.start()
        if self.shared is not None:
            self.tap = self.shared.attach(self.tag, self.model.event_types, self.config.batch_size * 8)
        try:
            while True:
                try:
                    self._run_with_retries()
                    return
                except ProjectionStopped as exc:
                    self.status.fail(State.FAILED, str(exc), self.status.failing_event)
                    log.error("%s", exc)
                    if self.config.exit_when_caught_up:
                        raise
                    if not self._await_park_decision(exc.event_id):
                        return  # stopped while waiting: the status keeps the error and the failing event
                    log.info("projection %s: an operator parked %s (or asked for a resync); resuming", self.config.projection,
                             exc.event_id)
                    self.status.fail(State.CATCHING_UP, "")
        except Flipped as exc:
            log.info("%s", exc)  # a rebuild's writer after its flip: done, not a failure
        except Fenced as exc:
            self.status.fail(State.FAILED, str(exc), self.status.failing_event)
            log.error("%s", exc)
            raise
        finally:
            if self.status.state is not State.FAILED:
                self.status.state = State.PAUSED
            if self.config.publish_status:
                reporter.stop()
            if self.shared is not None and self.tap is not None:
                self.shared.detach(self.tap)
            self._release()

    def _await_park_decision(self, member: str) -> bool:
        """Stopped on a bad event: stay alive (heartbeat, state ``failed``) until an operator parks
        it (True: resume) or the projector is stopped (False)."""
        while not self.stop_flag.wait(0.5):
            self.status.tick = time.monotonic()
            try:
                if self.parking.park_decided(member) or self.requests.resync_asked():
                    return True
            except redis.RedisError:
                continue
        return False

    def _release(self) -> None:
        try:
            self.lease.release()
        except redis.RedisError:
            pass
        if self._store is not None:
            self._store.close()

    def _run_with_retries(self) -> None:
        delay = self.config.backoff_initial
        acquired = False
        while not self.stop_flag.is_set():
            try:
                if not acquired:
                    if not self.lease.acquire(self.config.lease_ms + 1000, self.stop_flag):
                        return
                    acquired = True
                if self._session():
                    return
                delay = self.config.backoff_initial
            except ResyncRequested as exc:
                log.info("projection %s: %s", self.config.projection, exc)
                self.status.fail(State.CATCHING_UP, "")
                delay = self.config.backoff_initial
            except RETRYABLE as exc:
                acquired = acquired and not isinstance(exc, AWAY_OR_LOST)
                self._store = None if isinstance(exc, EventStoreUnavailable) else self._store
                self.status.fail(State.STALLED, f"{type(exc).__name__}: {exc}")
                sleep = random.uniform(0, delay)  # full jitter: many projectors must not retry in step
                log.warning("projection %s stalled (%s); retrying in %.2fs", self.config.projection, exc, sleep)
                self.requests.back_off(sleep)
                delay = min(self.config.backoff_max, delay * 2)

    def _tick(self) -> None:
        self.status.tick = time.monotonic()

    def _generation(self) -> int:
        """The generation this runner writes: the configured one, else the live pointer's (default 1)."""
        if self.config.generation is not None:
            return self.config.generation
        return live_generation(self.redis, self.config.projection)

    def _new_store(self) -> EventStore:
        return EventStore(self.config.eventstore_uri)

    # -- one subscription lifetime ---------------------------------------------------

    def _session(self) -> bool:
        """Process events until stopped (True), caught up with exit_when_caught_up (True) or an error."""
        generation = self._generation()
        # a live runner of a partition the live generation no longer has (a rebuild into another count was flipped)
        # stops: its member runs the new layout's partitions (a layout is recorded here if there is none yet)
        if self.config.generation is None and layout.record(self.redis, self.config.projection, generation,
                                                            self.partition.count) != self.partition.count:
            raise LayoutChanged(f"generation {generation} of {self.config.projection} is split otherwise: the runner "
                                f"of {self.partition.label} stops (its member runs the new partitions)")
        self.ks = space(self.partition, generation)
        self.cache.clear()
        self.status.sessions += 1
        self.status.generation = self.ks.generation
        self._checkpoint_text = text(self.redis.get(self.ks.checkpoint))
        self._known = vanished.Known(from_nothing=not self._checkpoint_text)
        checkpoint = int(self._checkpoint_text) if self._checkpoint_text else 0
        if checkpoint < self.status.checkpoint:  # Redis lost what this runner had committed: a cold start
            self.status.cold_start(self.status.checkpoint)
        self.status.checkpoint = checkpoint
        if self._store is None:
            self._store = self._new_store()
        self._publish()  # what an earlier run committed but did not append goes first
        head = self._store.head(self.model.event_types)
        target = head.position if head else 0
        if self.publisher is not None:
            self.publisher.begin(checkpoint, target)
        self.status.state = State.CATCHING_UP
        self.caught_up = False
        self._target = target
        alone = target > checkpoint and (self.tap is None or self._far_behind(checkpoint))
        if alone and self._catch_up_alone(target) == RETURN:
            return True
        if self.tap is not None and self.shared is not None:
            self.shared.restart(self.tap, self.status.checkpoint)
            return self._loop(self.tap.feed)
        # Live on a subscription of its own: a reader thread feeds the loop, so a quiet stream can close a batch on time.
        sub = self._subscribe()
        feed = Feed(self.config.batch_size * 8)
        reader = threading.Thread(target=pump, args=(iter(sub), feed), daemon=True, name=f"read-{self.config.projection}")
        try:
            reader.start()
            return self._loop(feed)
        finally:
            sub.stop()
            feed.close()
            reader.join(2)

    def _far_behind(self, checkpoint: int) -> bool:
        """Whether to catch up alone before reading from the shared reader (see :mod:`projections.projector.fanout`)."""
        assert self.tap is not None and self.shared is not None and self._store is not None
        return self.shared.far_behind(self.tap, checkpoint, self._store.count_after, self.config.reader_process_after)

    def _catch_up_alone(self, target: int) -> str:
        """Catch up to ``target`` on a subscription of its own, read in this thread, and for a long catch-up in a
        reader process (see :mod:`projections.projector.reader`)."""
        sub: Subscription | ReaderProcess = self._subscribe()
        try:
            outcome = self._catch_up(iter(sub), target, self.config.reader_process_after)
            if outcome == SWITCH:
                sub.stop()
                sub = self._reader_process(target)
                outcome = self._catch_up(iter(sub), target, None)
            return outcome
        finally:
            sub.stop()

    def _window(self) -> int:
        return window_of(self.config)

    def _subscribe(self) -> Subscription:
        assert self._store is not None
        return self._store.subscribe(self.status.checkpoint or None, self.model.event_types, window=self._window())

    def _reader_process(self, target: int) -> ReaderProcess:
        log.info("projection %s: long catch-up from %s to %s continues in a reader process",
                 self.config.projection, self.status.checkpoint, target)
        return ReaderProcess(self.config.eventstore_uri, self.status.checkpoint or None, self.model.event_types,
                             self._window(), flush_at=target)

    def _catch_up(self, stream: Iterator[Recorded | Marker], target: int, switch_after: int | None) -> str:
        """Read in this thread (no hand-off: events keep coming) up to ``target``, the head when the
        session began, or the caught-up marker (servers before 23.10 send none).

        Returns RETURN (stopped, or caught up with exit_when_caught_up), LIVE (go on live) or
        SWITCH (``switch_after`` events were read and ``target`` is still ahead).
        """
        read = 0
        while True:
            self.status.tick = time.monotonic()
            batch, marker, caught_up, ended = collect_direct(stream, self.config.batch_size, target)
            if batch or marker > self.status.checkpoint:
                self._apply(batch, marker)
            read += len(batch)
            if caught_up or self.status.checkpoint >= target:
                self._live()
                # exit_when_caught_up waits for the marker (or quiet) in the loop, which also
                # applies the store's final checkpoint: the same checkpoint as a live run's
                done = (caught_up and self.config.exit_when_caught_up) or self.stop_flag.is_set()
                return RETURN if done else LIVE
            if self.stop_flag.is_set():
                return RETURN
            if ended:
                raise EventStoreUnavailable("the subscription to $all ended")
            if switch_after is not None and 0 <= switch_after <= read:
                return SWITCH

    def _live(self) -> None:
        self.caught_up = True
        if self.tap is not None:
            self.tap.live = True
        self.status.state = State.LIVE
        log.info("projection %s caught up at %s", self.config.projection, self.status.checkpoint)

    def _loop(self, feed: Feed) -> bool:
        last_renew = last_item = resync_checked = time.monotonic()
        while True:
            self.status.tick = time.monotonic()
            if self.status.tick - resync_checked > REQUEST_POLL_S:
                resync_checked = self.status.tick
                self.requests.act(self.ks.generation, self._checkpoint_text, self.config.generation is None)
            batch, marker, caught_up, ended = self._collect(feed)
            if batch or marker > self.status.checkpoint:
                self._apply(batch, marker)
                last_renew = time.monotonic()
            elif self.tap is not None and self.shared is not None and self.tap.overflowed:
                self.shared.restart(self.tap, self.status.checkpoint)  # left behind by the shared reader: the gap again
            if (caught_up or self.status.checkpoint >= self._target) and not self.caught_up:
                self._live()
            if batch or marker:
                last_item = time.monotonic()
            if self.caught_up and self.config.exit_when_caught_up and (caught_up or time.monotonic() - last_item > 2):
                return True  # the caught-up marker, or 2 s of quiet from a server that sends none
            if self.stop_flag.is_set():
                return True
            if ended:
                raise EventStoreUnavailable("the subscription to $all ended")
            if time.monotonic() - last_renew > self.config.lease_ms / 3000:
                if not self.lease.renew():
                    holder = self.lease.holder()
                    if holder is None:  # Redis emptied or failed over under us: take it again, and see what is left
                        raise LeaseLost(f"projection {self.config.projection!r}: the lease vanished from Redis")
                    raise Fenced(f"projection {self.config.projection!r}: lease lost to {holder!r}; this projector stops")
                last_renew = time.monotonic()
                self._retry_parked()

    def _collect(self, feed: Feed) -> Collected:
        c = self.config
        return collect_live(feed, c.batch_size, c.live_flush_ms / 1000, c.live_max_batch_ms / 1000 if self.caught_up else None)
