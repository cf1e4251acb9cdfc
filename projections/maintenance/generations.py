"""Generations: a projection folded into another generation beside the live one, then one atomic flip.

:func:`switch_to` is the engine of a full rebuild (into a new, empty generation) and of a
rollback (back to an older generation, caught up from its own checkpoint):

1. *Fold.* G's partitions are dealt into fold groups that up to ``workers`` job workers fold at once
   (:mod:`projections.maintenance.folds`): per group, a :class:`~projections.projector.runner.Runner` per
   partition (:class:`Folding`, reading ``$all`` once) writes G under each partition's generation lease, with no
   status hash and no change notices (replays have no side effects), from G's checkpoints on, and stays live once
   it reaches the head. G's layout is recorded first (the live generation's count, or the one the rebuild asked
   for: the members re-split what they share at the flip). Between batches it slows down while the live
   projector's lag is above ``max_lag_s``, reports progress and checks for a cancel.
2. *Verify* (a rebuild): entities sampled from the live generation are compared field by field
   with G's where both stand at the same position; the differences go into the result, and above
   ``budget`` there is no flip unless ``flip_anyway``.
3. *Flip* (:mod:`projections.maintenance.flip`). The live projector is asked to pause (``keys.flip``, each
   partition); once it paused at checkpoint C and G has applied everything up to C, one Lua script sets the
   pointer to G, fences G's runners (their leases become ``flipped``) and marks the flip done. The live projector then resubscribes
   on G from G's checkpoint: nothing lost, nothing applied twice, and readers (who resolve the
   pointer at most 50 ms late) never see time go backwards. With no live projector beating (dead, or
   paused past its heartbeat while its lease holds), the pointer is flipped at once, G being at least
   at the live generation's checkpoint as the script reads it; a paused projector that comes back
   finds the pointer moved at its next commit (refused) and resubscribes on G — it never writes the
   old generation again. The flip is made only while G's lease holds this job's runner's token and,
   for a job, while the job's lease is still this run's (``control.fence()``, checked by the same script).
4. *Leases.* Only the run holding the job (``control``: JobLeaseLost at its next safe point, before any
   further commit of G) and G's lease writes G; a failed or cancelled rebuild's cleanup, :func:`abandon`,
   drops G only under both, and a run that could not take G's lease (:class:`GenerationTaken`) deletes
   nothing.

:mod:`projections.maintenance.retention` keeps generations at rest: the kept one, the next number, the
bookkeeping after a flip and the drop of a generation in chunks (UNLINK over SCAN). The dry
run of a rebuild is :mod:`projections.maintenance.plan`.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import redis

from projections import keys, layout
from projections.codec import text
from projections.connection import values
from projections.errors import Fenced, Flipped, JobLeaseLost, ProjectionError
from projections.eventstore import EventStore
from projections.keys import KeySpace
from projections.layout import space
from projections.maintenance.control import Control, Fence, Unattended, check, owned
from projections.maintenance.flip import FlipAgain, FlipFailed, flip
from projections.maintenance.folds import DONE, STOPPING, Board, Coordinator, Share, deal, help_fold
from projections.maintenance.pointer import live_generation as live_generation  # re-exported: callers read it here
from projections.maintenance.retention import drop_generation
from projections.maintenance.sample import Sample, compare
from projections.maintenance.user_rebuild import heal
from projections.partitions import Partition, partitions_of
from projections.projector.lease import Lease, new_token
from projections.projector.runner import Runner, RunnerConfig, shared_reader
from projections.readmodels import model
from projections.writer import FLIPPED

log = logging.getLogger(__name__)

QUIET_S = 5.0  # G level with the live generation as far as it gets when its checkpoint stands still this long
FLIP_ATTEMPTS = 5  # pauses tried before the job fails (each aborted one costs the live projector CATCH_UP_WAIT_S)


class GenerationTaken(Fenced):
    """Another run holds G's lease (it still writes G): this run stopped, and its cleanup deletes nothing."""


@dataclass(frozen=True)
class SwitchResult:
    projection: str
    from_generation: int
    to_generation: int
    checkpoint: int  # G's checkpoint at the flip
    applied: int  # events G's runners applied
    seconds: float
    sampled: int = 0
    compared: int = 0
    differences: list[dict[str, str]] = field(default_factory=list)
    difference_count: int = 0
    flipped: bool = True
    pause_ms: float = 0.0  # how long the live projector stood still for the flip
    groups: int = 1  # fold groups: how many workers could fold G at once


def switch_to(
    client: redis.Redis, base: RunnerConfig, generation: int, control: Control, *, verify: bool = True,
    budget: int = 0, flip_anyway: bool = False, max_lag_s: float = 2.0,
    decide: Callable[[Sample], bool] | None = None, resumed: int = 0, partitions: int = 1, workers: int = 1,
    ask_helpers: Callable[[int], None] | None = None,
) -> SwitchResult:
    """Fold ``base.projection`` into ``generation`` and flip the pointer to it (see the module doc).

    ``generation`` is split as its layout says; a new one (none recorded) into ``partitions``
    (:func:`projections.layout.count_for`; :func:`projections.layout.next_count` is what a rebuild asks for). G may be
    split into another count than the live generation: the members move to G's partitions after the flip. Up to
    ``workers`` fold G's partitions at once (:mod:`projections.maintenance.folds`): this run folds one fold group and
    ``ask_helpers(n)`` queues fold jobs for the others (what none of them takes, this run folds too). Above ``budget``
    differences, ``decide(sample)`` (an operator's decision; it may block while G's runners keep following the head)
    says whether to flip anyway; without it, or if it says no, FlipFailed."""
    projection = base.projection
    live = live_generation(client, projection)
    if generation == live:
        raise ProjectionError(f"generation {generation} of {projection} is already live; nothing to switch to")
    live_parts = layout.partitions(client, projection, live)
    parts = partitions_of(projection, layout.record(client, projection, generation, partitions))
    for part in parts:
        if text(client.get(keys.generation_lease(part.tag, generation))) == FLIPPED:  # flipped live before: done
            client.delete(keys.generation_lease(part.tag, generation))
    started = time.monotonic()
    new_cps = [space(p, generation).checkpoint for p in parts]
    between = _Between(client, [p.tag for p in live_parts], control, max_lag_s)
    board, groups = Board(client, projection, generation), deal(parts, workers)
    board.open(len(groups))
    share = Share(board, groups, lambda group, token: Folding(client, base, generation, group, between.hook, token),
                  base.lease_ms)
    fold = Coordinator(share, new_cps, head_position(base), resumed)
    between.progress, between.caught_up = fold.progress, lambda: fold.caught_up
    share.claim(1)
    fold.start()
    outcome = STOPPING  # what the board says at the end: the fold jobs stop (a failure, a cancel) or are done
    try:
        if len(groups) > 1 and ask_helpers is not None:
            ask_helpers(len(groups) - 1)
        while not fold.caught_up:
            fold.raise_failure()
            check(control)
            control.report(*fold.progress(), "folding the history")
            time.sleep(0.1)
        live_cps = [KeySpace(projection, live, p.tag).checkpoint for p in live_parts]
        _draw_level(client, live_cps, fold, control)
        done = resumed + fold.applied
        control.report(done, done, "caught up; verifying")
        sample = compare(client, projection, (live, live_parts), (generation, parts)) if verify else Sample()
        if sample.count > budget and not flip_anyway and not (decide is not None and decide(sample)):
            raise FlipFailed(f"{sample.count} differences between generation {live} and {generation} on a sample of "
                             f"{sample.compared} entities, above the budget of {budget}; not flipped (start it again "
                             f"with flip anyway to flip regardless). First: {sample.kept[:3]}")
        control.report(done, done, "flipping")
        for attempt in range(1, FLIP_ATTEMPTS + 1):
            try:
                pause_ms = flip(client, projection, (live, live_parts), (generation, parts), fold.tokens(), fold.failure,
                                control.fence())
                break
            except FlipAgain as exc:
                if attempt == FLIP_ATTEMPTS:
                    raise
                log.warning("%s; trying the flip again (%d of %d)", exc, attempt + 1, FLIP_ATTEMPTS)
                check(control)
        outcome = DONE
    except (Fenced, JobLeaseLost) as exc:
        outcome = ""  # another run holds the job, or writes G: the board is that run's
        if isinstance(exc, Flipped) or not isinstance(exc, Fenced):
            raise
        raise GenerationTaken(f"generation {generation} of {projection} is written by another run (its lease: "
                              f"{text(client.get(keys.generation_lease(parts[0].tag, generation))) or 'expired'}); "
                              "this run stopped and deleted nothing") from exc
    finally:
        fold.stop(outcome)
    return SwitchResult(projection, live, generation, fold.checkpoint, fold.applied,
                        round(time.monotonic() - started, 3), sample.sampled, sample.compared, sample.kept, sample.count,
                        True, pause_ms, len(groups))


def fold_part(client: redis.Redis, base: RunnerConfig, generation: int, control: Control, max_lag_s: float = 2.0) -> int:
    """A fold job's work: one fold group of the rebuild of ``base.projection`` into ``generation``, folded until the
    rebuild flips or stops, slowed down like the rebuild's own while the live projector lags; the events applied."""
    projection = base.projection
    live_parts = layout.partitions(client, projection, live_generation(client, projection))
    between = _Between(client, [p.tag for p in live_parts], Unattended(), max_lag_s)
    board = Board(client, projection, generation)
    if not board.wait_open(control.cancelled):
        return 0
    share = Share(board, deal(layout.partitions(client, projection, generation), board.groups()),
                  lambda group, token: Folding(client, base, generation, group, between.hook, token), base.lease_ms)
    between.caught_up = lambda: share.caught_up
    return help_fold(share, control)


class Folding:
    """The runners of a fold group of G, one per partition, under one token (the flip checks it on each partition's
    lease), reading ``$all`` once for all of them when there are several (:mod:`projections.projector.fanout`)."""

    def __init__(self, client: redis.Redis, base: RunnerConfig, generation: int, parts: list[Partition],
                 hook: Callable[[str], None], token: str | None = None) -> None:
        self.token = token or new_token()
        self.failures: list[BaseException] = []
        self.shared = shared_reader(base) if len(parts) > 1 else None
        # a rebuild parks bad events whatever the live policy: it must not wait for an operator midway
        self.runners = [Runner(replace(base, generation=generation, partition=p.index, partitions=p.count,
                                       publish_status=False, exit_when_caught_up=False, on_bad_event="park"),
                               hook=hook, healer=heal, client=client, token=self.token, shared=self.shared)
                        for p in parts]
        self.threads = [threading.Thread(target=_run, args=(r, self.failures), daemon=True,
                                         name=f"switch-{r.tag}-g{generation}") for r in self.runners]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    @property
    def caught_up(self) -> bool:
        return all(r.caught_up for r in self.runners)

    @property
    def applied(self) -> int:
        """Events of the history the group folded: each of its runners passes over the same events (and folds those
        of its partition's entities)."""
        return max(r.status.applied for r in self.runners)

    def stop(self) -> None:
        for runner in self.runners:
            runner.stop()
        for thread in self.threads:
            thread.join(30)
        if self.shared is not None:
            self.shared.stop()


def _draw_level(client: redis.Redis, live_checkpoints: list[str], fold: Coordinator, control: Control) -> None:
    """Wait while G applies what the live projector applied meanwhile: G's runners are "caught up" at the
    head as their sessions began, which after a long rebuild is far behind the live generation, and both
    the verification (entities at one position in both) and the flip's pause need G level with it."""
    moved, seen = time.monotonic(), fold.lowest()
    while (at := fold.lowest()) < max(_int(v) for v in values(client, live_checkpoints)):
        if at != seen:
            moved, seen = time.monotonic(), at
        elif time.monotonic() - moved > QUIET_S:  # nothing more to apply (a checkpoint G's subscription has not sent yet)
            return
        fold.raise_failure()
        check(control)
        control.report(*fold.progress(), "drawing level with the live generation")
        time.sleep(0.1)


def _int(value: Any) -> int:
    return int(text(value) or 0)


def _run(runner: Runner, failures: list[BaseException]) -> None:
    try:
        runner.run()
    except BaseException as exc:  # noqa: BLE001 - handed to the job, which decides
        failures.append(exc)


def head_position(base: RunnerConfig) -> int:
    """The commit position of the newest event of ``base.projection``'s types (0: none)."""
    with EventStore(base.eventstore_uri) as store:
        found = store.head(model(base.projection).event_types)
    return found.position if found else 0


class _Between:
    """Runs between two of G's batches: progress, cancel, and a pause while the live projector lags."""

    def __init__(self, client: redis.Redis, tags: list[str], control: Control, max_lag_s: float) -> None:
        self.client, self.tags, self.control, self.max_lag_s = client, tags, control, max_lag_s
        self.checked = 0.0
        self.progress: Callable[[], tuple[int, int | None]] = lambda: (0, None)
        self.caught_up: Callable[[], bool] = lambda: False

    def hook(self, step: str) -> None:
        if step == "write":  # before G's commit: a cancel, or a job this run lost, writes nothing more
            check(self.control)
        if step != "commit":
            return
        now = time.monotonic()
        if now - self.checked < 0.5 or self.caught_up():  # at the head G must keep up, for the flip
            return
        self.checked = now
        while (lag := self._live_lag()) > self.max_lag_s:
            self.control.report(*self.progress(),
                                f"throttled: the live projector is {lag:.1f} s behind (over {self.max_lag_s:g} s)")
            check(self.control)
            time.sleep(0.2)

    def _live_lag(self) -> float:
        """The live projector's lag: its furthest-behind partition's."""
        pipe = self.client.pipeline(transaction=False)
        for tag in self.tags:
            pipe.hget(keys.status(tag), "lagSeconds")
        return max(float(text(lag) or 0) for lag in pipe.execute())


CLEANUP_LEASE_MS = 10_000  # G's lease as the cleanup holds it (renewed before each chunk it deletes)


def abandon(client: redis.Redis, projection: str, generation: int, control: Control) -> int:
    """After a rebuild's cancel or failure, drop ``generation``, which this job created; how many keys.

    Only while this run still holds its job (:func:`~projections.maintenance.control.owned`: JobLeaseLost
    otherwise, nothing deleted) and under G's lease, taken here with a token of its own and renewed before
    each chunk: a generation whose lease another run holds (it still writes it), or flipped live, is left
    alone (0). A run that never got G's lease (GenerationTaken) does not call this at all."""
    owned(control)
    if generation == live_generation(client, projection):
        return 0
    lease = Lease(client, f"{projection} generation {generation}", new_token(), CLEANUP_LEASE_MS,
                  key=keys.generation_lease(projection, generation))
    try:
        lease.acquire(0, threading.Event())
    except Fenced:
        log.warning("generation %s of %s not dropped: its lease is held by %s", generation, projection, lease.holder())
        return 0
    try:
        return drop_generation(client, projection, generation, _Holding(control, lease))
    finally:
        lease.release()


class _Holding:
    """The control of a cleanup's drop: before each chunk, the job must still be this run's and G's lease
    renewed (else it stops deleting); never cancelled, reports nowhere."""

    def __init__(self, control: Control, lease: Lease) -> None:
        self.control, self.lease = control, lease

    def report(self, done: int, total: int | None, phase: str = "") -> None:
        return None

    def fence(self) -> Fence | None:
        return self.control.fence()

    def cancelled(self) -> bool:
        owned(self.control)
        if not self.lease.renew():
            raise GenerationTaken(f"{self.lease.projection}: the lease was lost while dropping; the rest is left")
        return False
