"""A rebuild's partitions folded by several workers at once: the fold groups of a new generation, claimed by lease.

Contract:

* The partitions of generation G are dealt into ``groups`` fold groups (partition i in group i mod groups; one
  group when G has one partition or the rebuild has one worker). Each group has a lease (``keys.fold_lease``)
  holding a token; whoever holds it — the rebuild's own job or a fold job the rebuild queued — folds the group's
  partitions with one :class:`~projections.maintenance.generations.Folding` under that token, the token each of
  those partitions' generation leases then holds and the flip checks.
* The board (``keys.folds``, a hash under the projection's tag) says what the rebuild wants (``state``:
  ``folding``, ``stopping``, ``done``; ``groups``) and, per group, what its holder reports: events applied,
  whether its runners reached the head, and why it failed.
* The rebuild folds a group of its own at once and, after :data:`GRACE_S`, any group nobody holds: a fold job
  that never started (no free worker) or died (its lease expired) never holds the rebuild up.
* A fold job stops when the board says ``stopping`` or ``done``, or when it is cancelled (its groups go back to
  the rebuild); the rebuild, before it drops G after a cancel or a failure, sets ``stopping`` and waits until no
  group is held, so nothing writes G while it is dropped.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from projections import keys
from projections.codec import text
from projections.connection import values
from projections.errors import JobCancelled, JobLeaseLost, ProjectionError
from projections.maintenance.control import Control
from projections.partitions import Partition
from projections.projector.lease import Lease, new_token

log = logging.getLogger(__name__)

GRACE_S = 3.0  # how long the rebuild leaves a group to the fold jobs it queued before folding it itself
FOLDING, STOPPING, DONE = "folding", "stopping", "done"
_REPORT = """
if redis.call('HGET', KEYS[1], 'state') ~= 'folding' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""


class FoldFailed(ProjectionError):
    """A fold group's runners failed in a fold job (the reason its holder wrote on the board): the rebuild fails."""


def deal(parts: Sequence[Partition], groups: int) -> list[list[Partition]]:
    """``parts`` dealt into ``groups`` fold groups (at most one per partition): partition i in group i mod groups."""
    count = max(1, min(groups, len(parts)))
    return [list(parts[i::count]) for i in range(count)]


@dataclass(frozen=True)
class Reading:
    applied: int  # events of the history folded: each group's (its runners read the same events), averaged
    caught_up: bool  # every group's runners reached the head
    failed: str  # why a group failed ('' if none did)


class Board:
    """The board of generation ``generation`` of ``projection``'s fold (see the module doc)."""

    def __init__(self, client: redis.Redis, projection: str, generation: int) -> None:
        self.client, self.projection, self.generation = client, projection, generation
        self.key = keys.folds(projection, generation)
        self._report = client.register_script(_REPORT)

    def open(self, groups: int) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.key)  # what an earlier run of the rebuild reported is read again from the holders
        pipe.hset(self.key, mapping={"state": FOLDING, "groups": str(groups)})
        pipe.execute()

    def state(self) -> str:
        return text(self.client.hget(self.key, "state"))

    def groups(self) -> int:
        return int(text(self.client.hget(self.key, "groups")) or 0)

    def wait_open(self, cancelled: Callable[[], bool], seconds: float = 5.0) -> bool:
        """Wait for the rebuild to open the board (it does before it queues fold jobs); False if it is not open."""
        deadline = time.monotonic() + seconds
        while self.state() != FOLDING:
            if time.monotonic() > deadline or cancelled():
                return False
            time.sleep(0.1)
        return True

    def settle(self, state: str) -> None:
        self.client.hset(self.key, "state", state)

    def lease(self, group: int) -> str:
        return keys.fold_lease(self.projection, self.generation, group)

    def holders(self, groups: int) -> list[str]:
        """The token holding each group's lease ('' for none)."""
        return [text(v) for v in self.client.mget([self.lease(g) for g in range(groups)])]  # type: ignore[union-attr]

    def report(self, group: int, applied: int, caught_up: bool, failed: str = "") -> None:
        """A group's progress, written only while the rebuild still folds (never onto a board it closed)."""
        fields = [f"applied:{group}", str(applied), f"caught:{group}", "1" if caught_up else "0"]
        if failed:
            fields += [f"failed:{group}", failed[:500]]
        self._report(keys=[self.key], args=fields)

    def read(self, groups: int) -> Reading:
        found = {text(k): text(v) for k, v in self.client.hgetall(self.key).items()}  # type: ignore[union-attr]
        failed = next((found[f"failed:{g}"] for g in range(groups) if found.get(f"failed:{g}")), "")
        return Reading(sum(int(found.get(f"applied:{g}") or 0) for g in range(groups)) // max(1, groups),
                       all(found.get(f"caught:{g}") == "1" for g in range(groups)), failed)

    def close(self) -> None:
        self.client.delete(self.key)


class Folded(Protocol):
    """What a participant needs of a group's running fold (a :class:`~projections.maintenance.generations.Folding`)."""

    failures: list[BaseException]

    @property
    def applied(self) -> int: ...
    @property
    def caught_up(self) -> bool: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


Fold = Callable[[list[Partition], str], Folded]  # a group's runners under a token, not started


class Share:
    """The fold groups one participant (the rebuild's job, or a fold job) holds and runs (see the module doc).
    Thread-safe: the rebuild tends it from a thread of its own."""

    def __init__(self, board: Board, groups: list[list[Partition]], fold: Fold, ttl_ms: int) -> None:
        self.board, self.groups, self.fold, self.ttl_ms = board, groups, fold, ttl_ms
        self.held: dict[int, tuple[Lease, Folded]] = {}
        self._renewed = 0.0
        self._lock = threading.RLock()

    def claim(self, most: int) -> int:
        """Take up to ``most`` free groups and start folding them; how many were taken."""
        taken = 0
        with self._lock:
            for group, parts in enumerate(self.groups):
                if taken >= most:
                    break
                if group in self.held:
                    continue
                token = new_token()
                lease = Lease(self.board.client, f"{self.board.projection} fold group {group}", token, self.ttl_ms,
                              key=self.board.lease(group))
                if not self.board.client.set(lease.key, token, nx=True, px=self.ttl_ms):
                    continue  # another participant holds it
                self.board.report(group, 0, False)  # not caught up until its new runners say so
                folded = self.fold(parts, token)
                self.held[group] = (lease, folded)
                folded.start()
                taken += 1
                log.info("%s generation %s: fold group %d (%s) taken by %s", self.board.projection,
                         self.board.generation, group, ", ".join(p.label for p in parts), token)
        return taken

    def tend(self) -> None:
        """Renew the held groups' leases (a third of the TTL apart), report their progress, and drop a group whose
        lease was lost (its runners stop; their generation leases fence whatever they still try to commit)."""
        lost: list[Folded] = []
        with self._lock:
            now = time.monotonic()
            renew = now - self._renewed >= self.ttl_ms / 3000
            if renew:
                self._renewed = now
            for group, (lease, folded) in list(self.held.items()):
                if renew and not lease.renew():
                    log.warning("%s generation %s: fold group %d lost its lease", self.board.projection,
                                self.board.generation, group)
                    lost.append(self.held.pop(group)[1])
                    continue
                failure = folded.failures[0] if folded.failures else None
                # a cancel, or a job lost by this participant, is its own end, not the fold's failure
                failed = "" if failure is None or isinstance(failure, (JobCancelled, JobLeaseLost)) else \
                    f"{type(failure).__name__}: {failure}"
                self.board.report(group, folded.applied, folded.caught_up, failed)
        for folded in lost:  # outside the lock: a runner stopping may be in its hook, reading the progress
            folded.stop()

    # read without the lock (a snapshot of the held groups): G's runners read them from their hook

    @property
    def applied(self) -> int:
        return sum(folded.applied for _, folded in list(self.held.values()))

    @property
    def caught_up(self) -> bool:
        return all(folded.caught_up for _, folded in list(self.held.values()))

    def failure(self) -> BaseException | None:
        return next((f.failures[0] for _, f in list(self.held.values()) if f.failures), None)

    def stop(self) -> None:
        """Stop every held group's runners and release its lease."""
        with self._lock:
            held, self.held = self.held, {}
        for lease, folded in held.values():
            folded.stop()
            try:
                lease.release()
            except redis.RedisError:
                pass  # it expires


class Coordinator(threading.Thread):
    """The rebuild's side of the fold: tends its own share, takes the groups nobody took after GRACE_S, and reads
    the board and G's checkpoints for the rebuild's loop (progress, caught up, a failure, the flip's tokens)."""

    def __init__(self, share: Share, checkpoints: list[str], head: int, resumed: int) -> None:
        super().__init__(daemon=True, name=f"fold-{share.board.projection}-g{share.board.generation}")
        self.share, self.board, self.checkpoints = share, share.board, checkpoints
        self.count = len(share.groups)
        self.head, self.resumed = head, resumed
        self.halt = threading.Event()
        self.reading = Reading(0, False, "")
        self.held = [""] * self.count
        self.started = self.points = self._checkpoints()

    def run(self) -> None:
        opened = time.monotonic()
        while not self.halt.wait(0.1):
            try:
                self.share.tend()
                if time.monotonic() - opened > GRACE_S:
                    self.share.claim(self.count)
                self.reading, self.held = self.board.read(self.count), self.board.holders(self.count)
                self.points = self._checkpoints()
            except redis.RedisError as exc:  # Redis away: G's runners retry on their own; so does this
                log.warning("%s generation %s: the fold's board not read (%s)", self.board.projection,
                            self.board.generation, exc)

    def _checkpoints(self) -> list[int]:
        return [_int(v) for v in values(self.board.client, self.checkpoints)]

    def lowest(self) -> int:
        """G's lowest partition checkpoint (read now)."""
        return min(self._checkpoints())

    @property
    def checkpoint(self) -> int:
        """G's lowest partition checkpoint (as last read)."""
        return min(self.points)

    @property
    def caught_up(self) -> bool:
        """Every group held, and its runners at the head."""
        return self.reading.caught_up and all(self.held)

    @property
    def applied(self) -> int:
        """Events of the history folded (see :class:`Reading`; one group: its own count, which the board trails)."""
        return self.share.applied if self.count == 1 else self.reading.applied

    def progress(self) -> tuple[int, int | None]:
        """(events done, estimated total): the rest extrapolated from the commit positions covered so far, summed
        over G's partitions (the groups do not move together: one not started yet has all of its history ahead)."""
        done, applied = self.resumed + self.applied, self.applied
        points = self.points
        covered = sum(max(0, at - start) for at, start in zip(points, self.started))
        if covered <= 0 or applied == 0:
            return done, None
        return done, done + round(applied * sum(max(0, self.head - at) for at in points) / covered)

    def failure(self) -> BaseException | None:
        """Its own runners' failure, or a fold job's (FoldFailed with the reason it reported)."""
        own = self.share.failure()
        if own is not None:
            return own
        return FoldFailed(f"a fold job of generation {self.board.generation} failed: {self.reading.failed}") \
            if self.reading.failed else None

    def raise_failure(self) -> None:
        if (failure := self.failure()) is not None:
            raise failure

    def tokens(self) -> list[str]:
        """The token of the runners of each of G's partitions: its group's lease (read now)."""
        held = self.board.holders(self.count)
        return [held[i % self.count] for i in range(sum(len(g) for g in self.share.groups))]

    def stop(self, outcome: str) -> None:
        """End the fold: ``outcome`` (DONE, STOPPING) on the board for the fold jobs; on STOPPING wait until they
        let go of their groups (or their leases expire), so nothing writes G once this returns. '' (another run
        holds the rebuild): the board is left to it."""
        self.halt.set()
        self.join(5)
        if outcome:
            try:
                self.share.tend()
                self.reading = self.board.read(self.count)  # the last count, for the result
            except redis.RedisError:
                pass
            self.board.settle(outcome)
        self.share.stop()
        if outcome == STOPPING:
            deadline = time.monotonic() + self.share.ttl_ms / 1000 + 1
            while any(self.board.holders(self.count)) and time.monotonic() < deadline:
                time.sleep(0.1)
        if outcome:
            self.board.close()


def help_fold(share: Share, control: Control) -> int:
    """A fold job's part: take one free group and fold it until the rebuild flips or stops, or the job is cancelled
    (its group goes back to the rebuild); the events its runners applied (0: no group was left to take)."""
    if not share.claim(1):
        return 0
    applied = 0
    try:
        while share.held and share.board.state() == FOLDING and not control.cancelled():
            share.tend()
            applied = max(applied, share.applied)
            control.report(applied, None, "folding its part of the rebuild")
            if (failure := share.failure()) is not None:
                share.tend()  # the reason, on the board for the rebuild
                raise failure
            time.sleep(0.1)
        share.tend()
        return max(applied, share.applied)
    finally:
        share.stop()


def _int(value: Any) -> int:
    return int(text(value) or 0)
