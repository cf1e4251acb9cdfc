"""Generations: a projection folded into another generation beside the live one, then one atomic flip.

:func:`switch_to` is the engine of a full rebuild (into a new, empty generation) and of a
rollback (back to an older generation, caught up from its own checkpoint):

1. *Fold.* A :class:`~projections.projector.runner.Runner` writes generation G under G's own
   lease, with no status hash and no change notices (replays have no side effects), from G's
   checkpoint on, and stays live once it reaches the head. Between batches it slows down while
   the live projector's lag is above ``max_lag_s``, reports progress and checks for a cancel.
2. *Verify* (a rebuild): entities sampled from the live generation are compared field by field
   with G's where both stand at the same position; the differences go into the result, and above
   ``budget`` there is no flip unless ``flip_anyway``.
3. *Flip.* The live projector is asked to pause (``keys.flip``); once it paused at checkpoint C
   and G has applied everything up to C, one Lua script sets the pointer to G, fences G's runner
   (its lease becomes ``flipped``) and marks the flip done. The live projector then resubscribes
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

from projections import keys
from projections.codec import text
from projections.errors import Fenced, Flipped, JobLeaseLost, ProjectionError
from projections.eventstore import EventStore
from projections.keys import KeySpace
from projections.maintenance.control import Control, Fence, check, owned
from projections.maintenance.pointer import live_generation as live_generation  # re-exported: callers read it here
from projections.maintenance.retention import drop_generation
from projections.maintenance.user_rebuild import heal
from projections.projector.lease import Lease, new_token
from projections.projector.requests import ABORT
from projections.projector.runner import Runner, RunnerConfig
from projections.writer import FLIPPED

log = logging.getLogger(__name__)

PAUSE_WAIT_S = 10.0  # how long to wait for the live projector to pause for the flip
CATCH_UP_WAIT_S = 3.0  # how long G may take to reach the paused checkpoint (the live projector stands still)
DRAW_LEVEL_WAIT_S = 60.0  # how long G may take to draw level with the running live projector before a pause
QUIET_S = 5.0  # G level with the live generation as far as it gets when its checkpoint stands still this long
FLIP_ATTEMPTS = 5  # pauses tried before the job fails (each aborted one costs the live projector CATCH_UP_WAIT_S)
SAMPLE = 200  # entities compared before a flip
DIFFERENCES_KEPT = 20

_FLIP = """
-- KEYS: pointer, flip, live checkpoint, G's checkpoint, G's lease[, the job's lease]
-- ARGV: from, to, paused-at, paused ('1'/'0'), fence, now (ms), the token of G's runner[, this run's job token]
local holder = redis.call('GET', KEYS[5])
if holder ~= ARGV[7] then
  return redis.error_reply('FLIP generation ' .. ARGV[2] .. ' is no longer written by this job (its lease: ' .. tostring(holder) .. ')')
end
if KEYS[6] and redis.call('GET', KEYS[6]) ~= ARGV[8] then
  return redis.error_reply('LOST this run no longer holds its job')
end
local live_at = redis.call('GET', KEYS[3]) or ''
if ARGV[4] == '1' then
  if redis.call('HGET', KEYS[2], 'state') ~= 'paused' then
    return redis.error_reply('FLIP the live projector is no longer paused')
  end
  if live_at ~= ARGV[3] then
    return redis.error_reply('FLIP the live checkpoint moved')
  end
end
if (redis.call('GET', KEYS[1]) or '1') ~= ARGV[1] then
  return redis.error_reply('FLIP the live generation is no longer ' .. ARGV[1])
end
-- G at least where the live generation stands now (with no pause: a projector may still have committed since)
if tonumber(redis.call('GET', KEYS[4]) or '0') < tonumber(live_at ~= '' and live_at or '0') then
  return redis.error_reply('FLIP the new generation is behind')
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[5], ARGV[5])
redis.call('HSET', KEYS[2], 'state', 'done', 'from', ARGV[1], 'to', ARGV[2], 'flipped_at', ARGV[6])
return 1
"""


class FlipFailed(ProjectionError):
    """The flip could not be made (the live projector did not pause, or moved); nothing changed."""


class FlipAgain(FlipFailed):
    """The flip was not made but can be tried again (the pause, if any, was aborted)."""


class FlipBehind(FlipAgain):
    """G did not reach the (paused) live checkpoint in time."""


class NotPaused(FlipAgain):
    """The live projector did not pause in time: stalled, or paused itself; the next attempt looks at its
    heartbeat again (none: the flip is made at once, and its commit check catches it up)."""


class GenerationTaken(Fenced):
    """Another run holds G's lease (it still writes G): this run stopped, and its cleanup deletes nothing."""


@dataclass(frozen=True)
class SwitchResult:
    projection: str
    from_generation: int
    to_generation: int
    checkpoint: int  # G's checkpoint at the flip
    applied: int  # events G's runner applied
    seconds: float
    sampled: int = 0
    compared: int = 0
    differences: list[dict[str, str]] = field(default_factory=list)
    difference_count: int = 0
    flipped: bool = True
    pause_ms: float = 0.0  # how long the live projector stood still for the flip


def switch_to(
    client: redis.Redis, base: RunnerConfig, generation: int, control: Control, *, verify: bool = True,
    budget: int = 0, flip_anyway: bool = False, max_lag_s: float = 2.0,
    decide: Callable[[Sample], bool] | None = None, resumed: int = 0,
) -> SwitchResult:
    """Fold ``base.projection`` into ``generation`` and flip the pointer to it (see the module doc).

    Above ``budget`` differences, ``decide(sample)`` (an operator's decision; it may block while G's
    runner keeps following the head) says whether to flip anyway; without it, or if it says no,
    FlipFailed."""
    projection = base.projection
    live = live_generation(client, projection)
    if generation == live:
        raise ProjectionError(f"generation {generation} of {projection} is already live; nothing to switch to")
    lease = keys.generation_lease(projection, generation)
    if text(client.get(lease)) == FLIPPED:  # this generation was flipped live before: its old writer is long done
        client.delete(lease)
    started = time.monotonic()
    head = head_position(base)
    start = int(text(client.get(KeySpace(projection, generation).checkpoint)) or 0)
    between = _Between(client, projection, control, max_lag_s)
    # a rebuild parks bad events whatever the live policy: it must not wait for an operator midway
    runner = Runner(replace(base, generation=generation, publish_status=False, exit_when_caught_up=False,
                            on_bad_event="park"), hook=between.hook, healer=heal, client=client)
    between.progress = lambda: _progress(runner, start, head, resumed)
    between.caught_up = lambda: runner.caught_up
    failures: list[BaseException] = []
    thread = threading.Thread(target=_run, args=(runner, failures), daemon=True, name=f"switch-{projection}-g{generation}")
    thread.start()
    try:
        while not runner.caught_up:
            _raise_failure(failures)
            check(control)
            control.report(*_progress(runner, start, head, resumed), "folding the history")
            time.sleep(0.1)
        _draw_level(client, KeySpace(projection, live).checkpoint, runner, control, failures,
                    lambda: _progress(runner, start, head, resumed))
        done = resumed + runner.status.applied
        control.report(done, done, "caught up; verifying")
        sample = compare(client, projection, live, generation) if verify else Sample()
        if sample.count > budget and not flip_anyway and not (decide is not None and decide(sample)):
            raise FlipFailed(f"{sample.count} differences between generation {live} and {generation} on a sample of "
                             f"{sample.compared} entities, above the budget of {budget}; not flipped (start it again "
                             f"with flip anyway to flip regardless). First: {sample.kept[:3]}")
        control.report(done, done, "flipping")
        for attempt in range(1, FLIP_ATTEMPTS + 1):
            try:
                pause_ms = flip(client, projection, live, generation, runner, failures, control.fence())
                break
            except FlipAgain as exc:
                if attempt == FLIP_ATTEMPTS:
                    raise
                log.warning("%s; trying the flip again (%d of %d)", exc, attempt + 1, FLIP_ATTEMPTS)
                check(control)
    except Fenced as exc:
        if isinstance(exc, Flipped):
            raise
        raise GenerationTaken(f"generation {generation} of {projection} is written by another run (its lease: "
                              f"{text(client.get(lease)) or 'expired'}); this run stopped and deleted nothing") from exc
    finally:
        runner.stop()
        thread.join(30)
    return SwitchResult(projection, live, generation, runner.status.checkpoint, runner.status.applied,
                        round(time.monotonic() - started, 3), sample.sampled, sample.compared, sample.kept, sample.count,
                        True, pause_ms)


def _draw_level(client: redis.Redis, live_checkpoint: str, runner: Runner, control: Control,
                failures: list[BaseException], progress: Callable[[], tuple[int, int | None]]) -> None:
    """Wait while G applies what the live projector applied meanwhile: G's runner is "caught up" at the
    head as its session began, which after a long rebuild is far behind the live generation, and both
    the verification (entities at one position in both) and the flip's pause need G level with it."""
    moved, seen = time.monotonic(), runner.status.checkpoint
    while runner.status.checkpoint < int(text(client.get(live_checkpoint)) or 0):
        if runner.status.checkpoint != seen:
            moved, seen = time.monotonic(), runner.status.checkpoint
        elif time.monotonic() - moved > QUIET_S:  # nothing more to apply (a checkpoint G's subscription has not sent yet)
            return
        _raise_failure(failures)
        check(control)
        control.report(*progress(), "drawing level with the live generation")
        time.sleep(0.1)


def _progress(runner: Runner, start: int, head: int, resumed: int) -> tuple[int, int | None]:
    """(events done, estimated total): the rest extrapolated from the commit positions covered so far."""
    done = resumed + runner.status.applied
    covered = runner.status.checkpoint - start
    if covered <= 0 or runner.status.applied == 0:
        return done, None
    return done, done + round(runner.status.applied * max(0, head - runner.status.checkpoint) / covered)


def _run(runner: Runner, failures: list[BaseException]) -> None:
    try:
        runner.run()
    except BaseException as exc:  # noqa: BLE001 - handed to the job, which decides
        failures.append(exc)


def _raise_failure(failures: list[BaseException]) -> None:
    if failures:
        raise failures[0]


def head_position(base: RunnerConfig) -> int:
    """The commit position of the newest event of ``base.projection``'s types (0: none)."""
    from projections.readmodels import model

    with EventStore(base.eventstore_uri) as store:
        found = store.head(model(base.projection).event_types)
    return found.position if found else 0


class _Between:
    """Runs between two of G's batches: progress, cancel, and a pause while the live projector lags."""

    def __init__(self, client: redis.Redis, projection: str, control: Control, max_lag_s: float) -> None:
        self.client, self.projection, self.control, self.max_lag_s = client, projection, control, max_lag_s
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
        while (lag := float(text(self.client.hget(keys.status(self.projection), "lagSeconds")) or 0)) > self.max_lag_s:
            self.control.report(*self.progress(),
                                f"throttled: the live projector is {lag:.1f} s behind (over {self.max_lag_s:g} s)")
            check(self.control)
            time.sleep(0.2)


def flip(client: redis.Redis, projection: str, live: int, generation: int, runner: Runner,
         failures: list[BaseException], fence: Fence | None = None) -> float:
    """Pause the live projector, wait for G to reach its checkpoint, flip; the pause in ms. With ``fence`` (the
    job's lease as this run holds it), the script flips only while the lease is still this run's: a run that lost
    its job between two checks (JobLeaseLost) never flips the generation the run now holding it is writing.

    Decision: a live projector whose heartbeat expired while it holds its lease (a paused process) is not
    waited for: the pointer is flipped at once, G at least where the live generation stands as the script
    reads it, and the projector's commit, which checks the pointer, refuses its next batch and sends it to G
    (``writer.Committer``, ``live``). Waiting for its lease to expire would hold the flip for a lease period
    and still race with a projector that comes back."""
    g = KeySpace(projection, generation)
    pointer, flip_key = keys.generation_pointer(projection), keys.flip(projection)
    live_checkpoint = KeySpace(projection, live).checkpoint
    script = client.register_script(_FLIP)
    script_keys = [pointer, flip_key, live_checkpoint, g.checkpoint, keys.generation_lease(projection, generation),
                   *([fence[0]] if fence else [])]
    fenced_by = [fence[1]] if fence else []

    def flip_at(at: str, paused: bool) -> None:
        try:
            script(keys=script_keys, args=[str(live), str(generation), at, "1" if paused else "0", FLIPPED,
                                           str(int(time.time() * 1000)), runner.token, *fenced_by])
        except redis.ResponseError as exc:
            if str(exc).startswith("LOST "):
                raise JobLeaseLost(f"{projection}: not flipped to generation {generation}: {str(exc)[5:]}") from None
            reason = str(exc).removeprefix("FLIP ")
            if reason == "the new generation is behind":
                raise FlipBehind(f"generation {generation} is behind the live checkpoint") from None
            raise FlipFailed(f"the flip of {projection} to generation {generation} was refused: {reason}") from None

    beating = bool(client.exists(keys.heartbeat(projection)))
    client.delete(flip_key)
    if not beating:  # nobody beats for the live generation: flip at its checkpoint (see the decision above)
        _wait_for(lambda: int(text(client.get(g.checkpoint)) or 0) >= int(text(client.get(live_checkpoint)) or 0),
                  CATCH_UP_WAIT_S, failures)
        flip_at("", False)
        return 0.0
    # First let G draw level with the live projector while it still runs: the pause then only waits for the
    # events of one batch, not for G's runner settling into its live subscription after a long catch-up.
    _wait_for(lambda: int(text(client.get(g.checkpoint)) or 0) >= int(text(client.get(live_checkpoint)) or 0),
              DRAW_LEVEL_WAIT_S, failures)
    client.hset(flip_key, mapping={"from": str(live), "to": str(generation), "state": "requested"})
    try:
        if not _wait_for(lambda: text(client.hget(flip_key, "state")) == "paused", PAUSE_WAIT_S, failures):
            raise NotPaused(f"the live {projection} projector did not pause for the flip within {PAUSE_WAIT_S:g} s")
        paused = time.monotonic()
        at = text(client.hget(flip_key, "at"))
        if not _wait_for(lambda: int(text(client.get(g.checkpoint)) or 0) >= int(at or 0), CATCH_UP_WAIT_S, failures):
            raise FlipBehind(f"generation {generation} did not reach the live checkpoint {at} within {CATCH_UP_WAIT_S:g} s")
        flip_at(at, True)
        return round((time.monotonic() - paused) * 1000, 2)
    except BaseException:
        # the live projector goes on where it paused; a flip done (the script ran) is never marked aborted
        client.eval(ABORT, 1, flip_key, "requested", "paused", "the job gave up the flip")
        raise


def _wait_for(condition: Any, seconds: float, failures: list[BaseException]) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _raise_failure(failures)
        if condition():
            return True
        time.sleep(0.001)
    return bool(condition())


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


@dataclass
class Sample:
    """Entities compared before a flip, and the differing fields (the first DIFFERENCES_KEPT kept)."""

    sampled: int = 0
    compared: int = 0
    count: int = 0
    kept: list[dict[str, str]] = field(default_factory=list)


def compare(client: redis.Redis, projection: str, live: int, generation: int, size: int = SAMPLE) -> Sample:
    """Entity hashes of the live generation against G's, where both say the same ``lastPosition``."""
    a, b = KeySpace(projection, live), KeySpace(projection, generation)
    out = Sample()
    names = []
    for key in client.scan_iter(match=keys.generation_pattern(projection, live), count=1000, _type="hash"):
        names.append(a.name_of(text(key)))
        if len(names) >= size:
            break
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(a.key(name))
        pipe.hgetall(b.key(name))
    replies = pipe.execute()
    for i, name in enumerate(names):
        old = {text(k): text(v) for k, v in replies[2 * i].items()}
        new = {text(k): text(v) for k, v in replies[2 * i + 1].items()}
        out.sampled += 1
        if "lastPosition" not in old or old.get("lastPosition") != new.get("lastPosition"):
            continue  # not an entity at one position in both (moved since, or a table without one)
        out.compared += 1
        for field_name in sorted({*old, *new}):
            if old.get(field_name) != new.get(field_name):
                out.count += 1
                if len(out.kept) < DIFFERENCES_KEPT:
                    out.kept.append({"key": name, "field": field_name, "live": old.get(field_name, "")[:200],
                                     "rebuilt": new.get(field_name, "")[:200]})
    return out
