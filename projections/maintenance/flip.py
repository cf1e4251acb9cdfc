"""The flip: the live generation's partitions pause, the new generation's draw level, one script moves the pointer.

Contract of :func:`flip` (the third step of :func:`projections.maintenance.generations.switch_to`):

* every live partition whose projector beats is asked to pause (its ``keys.flip``); each pauses between two
  batches at its checkpoint C_i. Once every partition of G has applied everything up to the highest C_i, one Lua
  script checks that each paused partition still stands at its C_i, that the pointer still names the live
  generation, that each of G's partition leases still holds the token of its fold group's runners (and, for a
  job, that the job's lease is still this run's), then sets the pointer to G, fences G's runners for good (their leases become ``flipped``) and
  marks every flip done. The live runners then resubscribe on G from G's checkpoints: nothing lost, nothing
  applied twice; readers, who resolve the pointer at most 50 ms late, never see time go backwards;
* a live partition whose projector does not beat (dead, or paused past its heartbeat while its lease holds) is not
  waited for: G must stand at least at its checkpoint as the script reads it, and a projector that comes back
  finds the pointer moved at its next commit (refused) and resubscribes on G;
* any failure before the script ran aborts every pause it asked for: the live partitions go on where they paused.

Each partition's slot holds its own copy of the pointer (``keys.generation_pointer(tag)``), which the live
projector's commit checks; the copies follow the pointer, never lead it: the script writes the pointer, then them.

On a Redis Cluster the partitions are in different slots, so no one script can hold them all: the flip is made in
steps, each a script within one slot (:func:`_stepwise`): the paused partitions and G's are checked, then the
pointer moves (the commit point: one script in the projection's slot, refused if it no longer names the live
generation), then each live partition's copy follows and its pause is marked done, then G's runners are fenced. A
flip that stops between the pointer and the copies leaves copies behind; a live projector's commit refused by a copy
that lags the pointer moves the copy forward (``writer.Committer``), so nothing waits on the job that stopped. What
the steps give up against the script: the job's lease is checked just before the pointer moves, not with it, and a
paused partition that gives up its pause (after ``FLIP_PAUSE_S``) between the checks and the pointer may show
readers G one batch behind it for a moment; nothing is lost or applied twice (G's checkpoints fence every writer).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

from projections import keys
from projections.codec import text
from projections.connection import is_cluster, values
from projections.errors import JobLeaseLost, ProjectionError
from projections.keys import KeySpace
from projections.maintenance.control import Fence
from projections.partitions import Partition
from projections.projector.requests import ABORT
from projections.writer import FLIPPED

PAUSE_WAIT_S = 10.0  # how long to wait for the live projector to pause for the flip
CATCH_UP_WAIT_S = 3.0  # how long G may take to reach the paused checkpoint (the live projector stands still)
DRAW_LEVEL_WAIT_S = 60.0  # how long G may take to draw level with the running live projector before a pause
Failed = Callable[[], BaseException | None]  # a failure of G's runners, if any

_FLIP = """
-- KEYS: pointer, the job's lease (or the pointer again), the projection's flip record, then per live partition:
--       its flip, its checkpoint; then per partition of G: its checkpoint, its lease; then each partition's copy of
--       the pointer (live ones, then G's)
-- ARGV: from, to, fence, now (ms), unused, this run's job token ('' : none),
--       live partitions L, G's partitions N, then per live partition the checkpoint it paused at ('' : not paused),
--       then per partition of G the token of its runners (its fold group's)
local L, N = tonumber(ARGV[7]), tonumber(ARGV[8])
if ARGV[6] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[6] then
  return redis.error_reply('LOST this run no longer holds its job')
end
for j = 1, N do
  local holder = redis.call('GET', KEYS[3 + 2 * L + 2 * j])
  if holder ~= ARGV[8 + L + j] then
    return redis.error_reply('FLIP generation ' .. ARGV[2] .. ' is no longer written by this job (its lease: ' .. tostring(holder) .. ')')
  end
end
local highest = 0
for i = 1, L do
  local live_at = redis.call('GET', KEYS[3 + 2 * i]) or ''
  local at = ARGV[8 + i]
  if at ~= '' then
    if redis.call('HGET', KEYS[2 + 2 * i], 'state') ~= 'paused' then
      return redis.error_reply('FLIP the live projector is no longer paused')
    end
    if live_at ~= at then
      return redis.error_reply('FLIP the live checkpoint moved')
    end
  end
  local n = tonumber(live_at ~= '' and live_at or '0')
  if n > highest then highest = n end
end
if (redis.call('GET', KEYS[1]) or '1') ~= ARGV[1] then
  return redis.error_reply('FLIP the live generation is no longer ' .. ARGV[1])
end
-- G at least where the live generation stands now (a partition not paused may still have committed since)
for j = 1, N do
  if tonumber(redis.call('GET', KEYS[2 + 2 * L + 2 * j]) or '0') < highest then
    return redis.error_reply('FLIP the new generation is behind')
  end
end
redis.call('SET', KEYS[1], ARGV[2])
for k = 4 + 2 * L + 2 * N, #KEYS do
  redis.call('SET', KEYS[k], ARGV[2])
end
for j = 1, N do
  redis.call('SET', KEYS[3 + 2 * L + 2 * j], ARGV[3])
end
for i = 1, L do
  redis.call('HSET', KEYS[2 + 2 * i], 'state', 'done', 'from', ARGV[1], 'to', ARGV[2], 'flipped_at', ARGV[4])
end
redis.call('HSET', KEYS[3], 'state', 'done', 'from', ARGV[1], 'to', ARGV[2], 'flipped_at', ARGV[4])
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


def flip(client: redis.Redis, projection: str, live: tuple[int, Sequence[Partition]],
         new: tuple[int, Sequence[Partition]], tokens: Sequence[str], failed: Failed,
         fence: Fence | None = None) -> float:
    """Pause the live generation's partitions, wait for G's to reach their checkpoints, flip; the pause in ms
    (see the module doc). ``live`` and ``new``: each generation with its partitions; ``tokens``: the token of the
    runners of each of G's partitions (its fold group's); ``failed``: a failure of G's runners, raised at once."""
    (from_g, live_parts), (to_g, new_parts) = live, new
    flip_keys = [keys.flip(p.tag) for p in live_parts]
    live_cps = [KeySpace(projection, from_g, p.tag).checkpoint for p in live_parts]
    new_cps = [KeySpace(projection, to_g, p.tag).checkpoint for p in new_parts]
    record = keys.flip(projection)  # the last flip, as retention and the inventory read it (a partition's own, unsplit)
    new_leases = [keys.generation_lease(p.tag, to_g) for p in new_parts]
    copies = [keys.generation_pointer(p.tag) for p in (*live_parts, *new_parts)]
    script_keys = [keys.generation_pointer(projection), fence[0] if fence else keys.generation_pointer(projection), record,
                   *(k for pair in zip(flip_keys, live_cps) for k in pair),
                   *(k for pair in zip(new_cps, new_leases) for k in pair), *copies]
    script = client.register_script(_FLIP)

    def flip_at(ats: list[str]) -> None:
        try:
            if is_cluster(client):
                _stepwise(client, (script_keys[0], record), (from_g, to_g), list(zip(flip_keys, live_cps, ats)),
                          list(zip(new_cps, new_leases, tokens)), copies, fence)
                return
            script(keys=script_keys, args=[str(from_g), str(to_g), FLIPPED, str(int(time.time() * 1000)), "",
                                           fence[1] if fence else "", str(len(live_parts)), str(len(new_parts)), *ats,
                                           *tokens])
        except redis.ResponseError as exc:
            if str(exc).startswith("LOST "):
                raise JobLeaseLost(f"{projection}: not flipped to generation {to_g}: {str(exc)[5:]}") from None
            reason = str(exc).removeprefix("FLIP ")
            if reason == "the new generation is behind":
                raise FlipBehind(f"generation {to_g} is behind the live checkpoint") from None
            raise FlipFailed(f"the flip of {projection} to generation {to_g} was refused: {reason}") from None

    def lowest_new() -> int:
        return min(_int(v) for v in values(client, new_cps))

    def highest_live() -> int:
        return max(_int(v) for v in values(client, live_cps))

    beating = [bool(client.exists(keys.heartbeat(p.tag))) for p in live_parts]
    client.delete(record, *flip_keys)
    if not any(beating):  # nobody beats for the live generation: flip at its checkpoints (see the module doc)
        wait_for(lambda: lowest_new() >= highest_live(), CATCH_UP_WAIT_S, failed)
        flip_at([""] * len(live_parts))
        return 0.0
    # First let G draw level with the live partitions while they still run: the pause then only waits for the
    # events of one batch, not for G's runners settling into their live reading after a long catch-up.
    wait_for(lambda: lowest_new() >= highest_live(), DRAW_LEVEL_WAIT_S, failed)
    asked = [key for key, beats in zip(flip_keys, beating) if beats]
    for key in asked:
        client.hset(key, mapping={"from": str(from_g), "to": str(to_g), "state": "requested"})
    try:
        if not wait_for(lambda: all(text(client.hget(k, "state")) == "paused" for k in asked), PAUSE_WAIT_S, failed):
            raise NotPaused(f"the live {projection} projector did not pause for the flip within {PAUSE_WAIT_S:g} s")
        paused = time.monotonic()
        ats = [text(client.hget(key, "at")) if beats else "" for key, beats in zip(flip_keys, beating)]
        target = max([_int(at) for at in ats if at] + [highest_live()])
        if not wait_for(lambda: lowest_new() >= target, CATCH_UP_WAIT_S, failed):
            raise FlipBehind(f"generation {to_g} did not reach the live checkpoint {target} within {CATCH_UP_WAIT_S:g} s")
        flip_at(ats)
        return round((time.monotonic() - paused) * 1000, 2)
    except BaseException:
        # the live partitions go on where they paused; a flip done (the script ran) is never marked aborted
        for key in asked:
            client.eval(ABORT, 1, key, "requested", "paused", "the job gave up the flip")
        raise


_POINTER = """
-- KEYS: pointer, the projection's flip record; ARGV: from, to, now (ms). The commit point of a stepwise flip.
if (redis.call('GET', KEYS[1]) or '1') ~= ARGV[1] then
  return redis.error_reply('FLIP the live generation is no longer ' .. ARGV[1])
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], 'state', 'done', 'from', ARGV[1], 'to', ARGV[2], 'flipped_at', ARGV[3])
return 1
"""
_FOLLOWED = """
-- KEYS: a live partition's copy of the pointer, its flip; ARGV: from, to, now (ms)
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], 'state', 'done', 'from', ARGV[1], 'to', ARGV[2], 'flipped_at', ARGV[3])
return 1
"""


def _stepwise(client: redis.Redis, pointer: tuple[str, str], generations: tuple[int, int],
              live: list[tuple[str, str, str]], new: list[tuple[str, str, str]], copies: list[str],
              fence: Fence | None) -> None:
    """The flip on a Redis Cluster, a script per slot (see the module doc). ``pointer``: the pointer and the
    projection's flip record (one slot); ``live``: per live partition its flip,
    its checkpoint and where it paused ('' : not paused); ``new``: per partition of G its checkpoint, its lease and
    the token of its runners. Raises ResponseError as the one script would."""
    from_g, to_g = generations
    highest = 0
    for flip_key, checkpoint, at in live:
        pipe = client.pipeline(transaction=False)
        pipe.hget(flip_key, "state")
        pipe.get(checkpoint)
        state, stands = (text(v) for v in pipe.execute())
        if at and state != "paused":
            raise redis.ResponseError("FLIP the live projector is no longer paused")
        if at and stands != at:
            raise redis.ResponseError("FLIP the live checkpoint moved")
        highest = max(highest, _int(stands))
    for checkpoint, lease, token in new:
        if (holder := text(client.get(lease))) != token:
            raise redis.ResponseError(f"FLIP generation {to_g} is no longer written by this job (its lease: "
                                      f"{holder or None})")
        if _int(client.get(checkpoint)) < highest:
            raise redis.ResponseError("FLIP the new generation is behind")
    if fence is not None and text(client.get(fence[0])) != fence[1]:
        raise redis.ResponseError("LOST this run no longer holds its job")
    now = str(int(time.time() * 1000))
    client.eval(_POINTER, 2, *pointer, str(from_g), str(to_g), now)
    # flipped: the copies follow (a live partition's with its pause marked done), then G's runners are fenced
    for (flip_key, _, _), copy in zip(live, copies):
        client.eval(_FOLLOWED, 2, copy, flip_key, str(from_g), str(to_g), now)
    for copy in copies[len(live):]:
        client.set(copy, str(to_g))
    for _, lease, _ in new:
        client.set(lease, FLIPPED)


def _int(value: Any) -> int:
    return int(text(value) or 0)


def wait_for(condition: Callable[[], bool], seconds: float, failed: Failed) -> bool:
    """Poll ``condition`` for up to ``seconds`` (a failure of G's runners raised at once); its last value."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (failure := failed()) is not None:
            raise failure
        if condition():
            return True
        time.sleep(0.001)
    return bool(condition())
