"""One batch of the subscription loop: decode, park, load, fold, commit, count, publish, notify (the second half of
:class:`~projections.projector.runner.Runner`, which owns the lease, the sessions and the loop).

Contract of :meth:`BatchSteps._apply`: the batch's read-model writes, its parked events, its outbox entries,
its canary samples and the checkpoint commit in one script fenced by the runner's lease (and, live, by the
generation pointer); a per-user rebuild that wrote under the batch makes it fold again from Redis (at most
``EPOCH_RETRIES`` times); entities that vanished behind the projector are healed first (see
:mod:`projections.projector.vanished`). Only after the commit: the state cache, the status counters, the
outbox flush and the change notice.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from redis import Redis

from projections import keys
from projections.errors import BadEvent, CheckpointMoved, EntityLost, EpochMoved, ProjectionStopped
from projections.events import CanaryAppended, DomainEvent, Ignored, Recorded, decode, envelope_of
from projections.eventstore import EventStore
from projections.keys import KeySpace
from projections.partitions import Partition
from projections.projector import vanished
from projections.projector.cache import StateCache
from projections.projector.canary import now_ms, sample_writes
from projections.projector.fanout import Fanned
from projections.projector.fanout import decoded as decode_once
from projections.projector.fold import FoldResult, fold_and_plan, fold_batch, touched_refs
from projections.projector.notices import notice_for
from projections.projector.parking import Parking
from projections.projector.publisher import Publisher
from projections.projector.status import RunStatus
from projections.projector.vanished import Healer
from projections.published import Builder
from projections.readmodels.base import ReadModel
from projections.status import ProjectionState as State
from projections.writer import Committer, Plan, load_states, outbox_writes
from projections.writer import guards as writer_guards

if TYPE_CHECKING:
    from projections.projector.config import RunnerConfig

log = logging.getLogger(__name__)

EPOCH_RETRIES = 5  # a batch refolded at once when a per-user rebuild wrote entities under it


class BatchSteps:
    """The batch half of a runner (a mixin: the runner sets these attributes)."""

    config: RunnerConfig
    model: ReadModel
    ks: KeySpace
    redis: Redis
    cache: StateCache
    committer: Committer
    parking: Parking
    publisher: Publisher | None
    build: Builder | None
    status: RunStatus
    healer: Healer | None
    partition: Partition
    tag: str
    caught_up: bool
    hook: Callable[[str], None]
    notifier: Callable[[dict[str, Any]], None]
    _store: EventStore | None
    _checkpoint_text: str
    _healed: set[str]
    _known: vanished.Known

    # -- one batch -----------------------------------------------------------------

    def _apply(self, raw: list[Recorded], marker: int) -> None:
        decoded: list[DomainEvent] = []
        parked: list[tuple[str, ...]] = []
        canaries: list[CanaryAppended] = []  # no fold touches them; the live runner records them in the commit
        end = max(self.status.checkpoint, marker, raw[-1].envelope.position if raw else 0)  # raw is in $all order
        for index, item in enumerate(raw):
            try:
                event = decode_once(item) if item.__class__ is Fanned else decode(item)
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
            first = vanished.first_positions(self.model, events, self.partition)
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
