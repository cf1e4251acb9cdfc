"""The subscription loop of one projection: batch, fold, commit, checkpoint, notify.

Contract of :meth:`Runner.run`:

* takes the projection's lease (waits up to one lease period for a dead
  holder; a live holder makes it raise :class:`Fenced` — the loser stops);
* subscribes to ``$all`` with a server-side filter on the read model's event
  types, after the stored checkpoint (checkpoint markers included);
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from projections import keys
from projections.codec import text
from projections.errors import (
    BadEvent,
    CheckpointMoved,
    EntityLost,
    EpochMoved,
    EventStoreUnavailable,
    Fenced,
    Flipped,
    LeaseLost,
    ProjectionStopped,
    RedisRefusesWrites,
    ResyncRequested,
)
from projections.events import CanaryAppended, DomainEvent, Ignored, Recorded, decode, envelope_of
from projections.eventstore import EventStore, Marker, Subscription
from projections.keys import KeySpace
from projections.partitions import Partition
from projections.projector import vanished
from projections.projector.batches import Collected, collect_direct, collect_live
from projections.projector.cache import StateCache
from projections.projector.canary import now_ms, sample_writes
from projections.projector.fanout import SharedReader, Sources, Tap
from projections.projector.feed import Feed, pump
from projections.projector.fold import FoldResult, fold_and_plan, fold_batch, touched_refs
from projections.projector.lease import Lease, new_token
from projections.projector.notices import notice_for
from projections.projector.parking import Parking
from projections.projector.publisher import Publisher
from projections.projector.reader import ReaderProcess
from projections.projector.requests import POLL_S as REQUEST_POLL_S
from projections.projector.requests import Requests
from projections.projector.status import Reporter, RunStatus
from projections.projector.vanished import Healer
from projections.published import SignificantMove, builder_for
from projections.readmodels import model as model_named
from projections.status import ProjectionState as State
from projections.writer import Committer, Plan, load_states, outbox_writes
from projections.writer import guards as writer_guards

log = logging.getLogger(__name__)

Notifier = Callable[[dict[str, Any]], None]
Hook = Callable[[str], None]
RETURN, LIVE, SWITCH = "return", "live", "switch"  # outcomes of Runner._catch_up
EPOCH_RETRIES = 5  # a batch refolded at once when a per-user rebuild wrote entities under it
# Redis refusing writes (out of memory; a replica, during a failover) is a stall to wait out, like Redis away.
RETRYABLE = (EventStoreUnavailable, redis.ConnectionError, redis.TimeoutError, CheckpointMoved, LeaseLost,
             RedisRefusesWrites, redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError, OSError)


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


def _noop(_: Any) -> None:
    return None


class Runner:
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
        self.redis = client or redis.Redis.from_url(config.redis_url, socket_timeout=5, socket_connect_timeout=2)
        self.partition = Partition(config.projection, config.partition, config.partitions)
        tag = self.tag = self.partition.tag  # the partition's keys: its checkpoint, lease, status, parked events, ...
        self.status = RunStatus(tag, self.token)
        self.ks = KeySpace(config.projection, tag=self._ks_tag())
        lease_key = keys.lease(tag) if config.generation is None else keys.generation_lease(tag, config.generation)
        self.lease = Lease(self.redis, tag, self.token, config.lease_ms, key=lease_key)
        self.committer = Committer(self.redis, config.projection, self.token, config.lease_ms, lease_key,
                                   live=config.generation is None)  # the live runner commits only to the pointer's generation
        self.parking = Parking(self.redis, tag)
        live = config.publish_events and config.generation is None and config.publish_status
        build = builder_for(config.projection, config.significant_move) if live else None
        self.publisher = None if build is None else Publisher(self.redis, tag, build)
        self.build = None if self.publisher is None else self.publisher.events_of
        self.requests = Requests(self.redis, tag, self.lease, config.lease_ms, self.stop_flag, self._tick)
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
                acquired = acquired and not isinstance(exc, (redis.ConnectionError, redis.TimeoutError, LeaseLost))
                self._store = None if isinstance(exc, EventStoreUnavailable) else self._store
                self.status.fail(State.STALLED, f"{type(exc).__name__}: {exc}")
                sleep = random.uniform(0, delay)  # full jitter: many projectors must not retry in step
                log.warning("projection %s stalled (%s); retrying in %.2fs", self.config.projection, exc, sleep)
                self.requests.back_off(sleep)
                delay = min(self.config.backoff_max, delay * 2)

    def _ks_tag(self) -> str:
        return self.tag if self.partition.count > 1 else ""

    def _tick(self) -> None:
        self.status.tick = time.monotonic()

    def _generation(self) -> int:
        """The generation this runner writes: the configured one, else the live pointer's (default 1)."""
        if self.config.generation is not None:
            return self.config.generation
        return int(text(self.redis.get(keys.generation_pointer(self.config.projection))) or 1)

    def _new_store(self) -> EventStore:
        return EventStore(self.config.eventstore_uri)

    # -- one subscription lifetime ---------------------------------------------------

    def _session(self) -> bool:
        """Process events until stopped (True), caught up with exit_when_caught_up (True) or an error."""
        self.ks = KeySpace(self.config.projection, self._generation(), self._ks_tag())
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

    # -- one batch -----------------------------------------------------------------

    def _apply(self, raw: list[Recorded], marker: int) -> None:
        decoded: list[DomainEvent] = []
        parked: list[tuple[str, ...]] = []
        canaries: list[CanaryAppended] = []  # no fold touches them; the live runner records them in the commit
        end = max(self.status.checkpoint, marker, raw[-1].envelope.position if raw else 0)  # raw is in $all order
        for index, item in enumerate(raw):
            try:
                event = decode(item)
            except BadEvent as exc:
                env = item.envelope
                if self.partition.index != 0:  # undecodable, so no partition's own: partition 0 parks it (or stops)
                    continue
                if self.config.on_bad_event == "stop":
                    member = keys.parked_member(env.stream, env.event_id)
                    if self.parking.park_decided(member):
                        parked.extend(self.parking.park_writes(item, exc, decided=True))
                        continue
                    self._commit(decoded, parked, env.position - 1, raw[:index], canaries)
                    self.status.fail(State.FAILED, str(exc), env)
                    raise ProjectionStopped(
                        f"projection {self.config.projection!r} stopped on bad event {env.event_id} "
                        f"({env.type} in {env.stream} at {env.position}): {exc}; to go on past it, park it: "
                        f"manage.py projections park {self.config.projection} {env.event_id} (or the console's "
                        "Projections page)", member,
                    ) from None
                parked.extend(self.parking.park_writes(item, exc))
                continue
            if isinstance(event, CanaryAppended):
                canaries.append(event)
            elif not isinstance(event, Ignored):
                decoded.append(event)
        self._commit(decoded, parked, end, raw, canaries)

    def _commit(self, events: list[DomainEvent], parked: list[tuple[str, ...]], checkpoint: int, raw: list[Recorded],
                canaries: Sequence[CanaryAppended] = ()) -> None:
        self.hook("read")
        # only the live projector records canaries (in partition 0's keys, the one the console reads)
        canaries = canaries if self.config.publish_status and self.partition.index == 0 else ()
        self._healed = set()
        for attempt in range(1, EPOCH_RETRIES + 1):
            try:
                result, writes, parked_now = self._fold_and_commit(events, parked, checkpoint, canaries)
                break
            except EntityLost as exc:
                self.cache.clear()  # keys vanished under the batch: heal those entities, then fold it again
                if attempt == EPOCH_RETRIES:
                    raise
                self._heal(vanished.users_of_keys(self.model, self.ks, touched_refs(self.model, events, self.partition),
                                                             exc.keys))
            except EpochMoved:
                self.cache.clear()  # a per-user rebuild wrote entities: fold this batch again from Redis
                if attempt == EPOCH_RETRIES:
                    raise
            except BaseException:
                self.cache.clear()  # the outcome is unknown: Redis may not hold what the cache would
                raise
        parked = parked_now
        for ref, state in result.changed.items():
            self.cache.put(ref, state, writes.images[ref])
        self._known.add(ref[1] for ref in result.changed if ref[0] == self.model.user_kind)
        self._checkpoint_text = str(checkpoint)
        self.status.checkpoint = checkpoint
        self.status.applied += len(raw)
        self.status.parked += sum(1 for command in parked if command[0] == "HSET")
        if raw:
            self.status.last_event_at = envelope_of(raw[-1]).recorded_at
        if self.status.state is State.STALLED:
            self.status.fail(State.LIVE if self.caught_up else State.CATCHING_UP, "")
        self.hook("commit")  # committed and counted (a rebuild's progress includes this batch); not yet published
        if result.published:
            self._publish()
        self._notify(result.changed, writes.changed_zsets, checkpoint, canaries, parked=bool(parked))

    def _fold_and_commit(self, events: list[DomainEvent], parked: list[tuple[str, ...]], checkpoint: int,
                         canaries: Sequence[CanaryAppended] = ()) -> tuple[FoldResult, Plan, list[tuple[str, ...]]]:
        """Load, fold, plan and commit one batch; the folded result, its plan and what it parked."""
        refs = touched_refs(self.model, events, self.partition)
        loaded = self.cache.load(self.redis, self.model, self.ks, refs)
        if loaded.checkpoint != self._checkpoint_text:
            raise CheckpointMoved(f"checkpoint is {loaded.checkpoint!r}, this batch started from {self._checkpoint_text!r}")
        if self.healer is not None and self._store is not None:
            first = vanished.first_positions(self.model, events)
            if self._heal(vanished.lost_users(self._store, self.model, loaded.states, first, self._healed, self._known)):
                loaded = self.cache.load(self.redis, self.model, self.ks, refs)  # the healed entities, whole
        guards = [] if self.healer is None else writer_guards(self.model, self.ks, loaded.states, loaded.images, refs)
        result = fold_batch(self.model, self.ks, loaded.states, events, publish=self.build, partition=self.partition)
        self.hook("fold")
        result, writes = fold_and_plan(self.model, self.ks, loaded.states, events, result, loaded.images, self.build,
                                       self.partition)
        parked = [*parked, *self._park_failed(result.failed)]
        self.hook("write")
        samples = sample_writes(self.tag, canaries, now_ms()) if canaries else []
        self.committer.commit(self.ks, self._checkpoint_text, checkpoint,
                              [*guards, *writes.writes, *parked, *self._outbox(result), *samples], loaded.epoch)
        return result, writes, parked

    def _heal(self, users: Sequence[str]) -> bool:
        """Rebuild ``users``' entities that vanished, at this runner's checkpoint (True if any)."""
        users = [u for u in dict.fromkeys(users) if u not in self._healed]
        if not users or self.healer is None or self._store is None:
            return False
        log.warning("projection %s: the keys of %d user(s) vanished behind the projector (%s); rebuilding them at "
                    "checkpoint %s before the next write", self.config.projection, len(users), ", ".join(users[:5]),
                    self._checkpoint_text or 0)
        self.healer(self.redis, self._store, self.ks, users)
        self._healed.update(users)
        self.status.healed += len(users)
        self.cache.clear()
        return True

    def _outbox(self, result: FoldResult) -> list[tuple[str, ...]]:
        return outbox_writes(self.tag, [(o.event_id, o.to_json()) for o in result.published])

    def _publish(self) -> None:
        """Append what the outbox holds (the store down: raises, and the next session starts with it)."""
        if self.publisher is not None and self._store is not None:
            self.publisher.flush(self._store)

    def _park_failed(self, failed: list[tuple[DomainEvent, BadEvent]], retried: bool = False) -> list[tuple[str, ...]]:
        """Writes parking the events whose fold raised (always parked, whatever the policy)."""
        writes: list[tuple[str, ...]] = []
        for event, error in failed:
            env = event.envelope
            log.warning("projection %s: parked %s (%s in %s at %s): %s",
                        self.config.projection, env.event_id, env.type, env.stream, env.position, error)
            writes.extend(self.parking.park_writes(event, error, retried=retried))
        return writes

    def _notify(self, changed: dict[Any, Any], zsets: dict[str, set[str]], checkpoint: int,
                canaries: Sequence[CanaryAppended] = (), parked: bool = False) -> None:
        if not changed and not canaries and not parked:
            return
        try:
            notice = notice_for(self.config.projection, self.ks, checkpoint, changed, zsets)
            if canaries:
                notice["canary"] = canaries[-1].canary_id  # the console's freshness widget re-renders
            if parked:
                notice["parked"] = True  # an event parked or unparked: the Projections page lists them
            self.notifier(notice)
        except Exception as exc:  # noqa: BLE001 - a failing notifier must not stop the projection
            log.warning("change notice of %s not delivered: %s", self.config.projection, exc)

    def _retry_parked(self) -> None:
        """Apply parked events an operator asked to retry (see :mod:`projections.projector.parking`)."""
        if self._store is None or not self._checkpoint_text:
            return
        for member, item in self.parking.due(self._store):
            try:
                event = decode(item)
            except BadEvent as exc:
                self._commit_retry([], self.parking.park_writes(item, exc, retried=True))
                continue
            events = [] if isinstance(event, (Ignored, CanaryAppended)) else [event]
            self._commit_retry(events, self.parking.unpark_writes(member))

    def _commit_retry(self, events: list[DomainEvent], extra: list[tuple[str, ...]]) -> None:
        """Fold ``events`` at the current state and commit with ``extra`` (un/park writes). A retried
        event whose fold fails stays parked, marked retried: its park writes come after ``extra``'s
        unpark writes in the same script, so the record is rewritten, not lost."""
        self.cache.clear()  # rare: simpler to reload than to keep the cache through it
        loaded = load_states(self.redis, self.model, self.ks, touched_refs(self.model, events, self.partition))
        stored = loaded.checkpoint
        if stored != self._checkpoint_text:
            raise CheckpointMoved(f"checkpoint is {stored!r}, expected {self._checkpoint_text!r}")
        result, writes = fold_and_plan(self.model, self.ks, loaded.states, events, publish=self.build,
                                       partition=self.partition)
        failed = self._park_failed(result.failed, retried=True)
        self.committer.commit(self.ks, stored, int(stored), [*writes.writes, *extra, *failed, *self._outbox(result)],
                              loaded.epoch)
        self.status.parked = self.parking.count()
        if result.published:
            self._publish()
        self._notify(result.changed, writes.changed_zsets, int(stored), parked=True)
