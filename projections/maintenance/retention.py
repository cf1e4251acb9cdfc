"""Generations at rest: which one a rollback goes back to (the kept one), the number a new rebuild takes, the
bookkeeping after a flip (the generation left becomes the kept one; any other is dropped, so at most two remain),
a flip an earlier attempt of a job made, and the drop of a generation in chunks (UNLINK over SCAN).

The rebuild, the verification and the flip that move generations are :mod:`projections.maintenance.generations`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis

from projections import inventory, keys, layout
from projections.codec import text
from projections.errors import ProjectionError
from projections.keys import KeySpace
from projections.maintenance.control import Control, check
from projections.maintenance.pointer import live_generation


@dataclass(frozen=True)
class Kept:
    """The generation the last flip left behind, kept for a rollback until it is dropped."""

    generation: int
    flipped_at_ms: int


def kept_generation(client: redis.Redis, projection: str) -> Kept | None:
    """The generation a rollback goes back to, if its keys are still there: the last flip's source, as recorded
    by :func:`settle_flip` (or by the flip itself until then); a failed or aborted flip since changes nothing."""
    kept = inventory.kept_of(client, projection)
    return None if kept is None else Kept(*kept)


def next_generation(client: redis.Redis, projection: str) -> int:
    """A generation number no key uses yet: one past the live one, every one present beside it (a half dropped
    one included) and any the last flip or the kept record names (so a stale record never names a new one)."""
    present = inventory.count(client, projection, sample=0)
    c: Any = client  # redis-py types replies as "Awaitable | value"; this is a sync client
    named = [*c.hmget(keys.flip(projection), ["from", "to"]), c.hget(keys.kept(projection), "generation")]
    return max({live_generation(client, projection), *present, *(int(text(n)) for n in named if text(n).isdigit())}) + 1


def drop_generation(client: redis.Redis, projection: str, generation: int, control: Control, chunk: int = 500) -> int:
    """UNLINK every key of a generation that is not live, ``chunk`` keys at a time; how many. Its checkpoint
    goes first, so from then on it is no rollback target and no reader takes it for a generation."""
    if generation == live_generation(client, projection):
        raise ProjectionError(f"generation {generation} of {projection} is live; flip to another before dropping it")
    parts = layout.partitions(client, projection, generation)
    checkpoints = [KeySpace(projection, generation, p.tag).checkpoint for p in parts]
    dropped = int(client.unlink(*checkpoints))  # type: ignore[arg-type]
    _forget_kept(client, projection, generation)
    batch: list[Any] = []
    for part in parts:
        for key in client.scan_iter(match=keys.generation_pattern(part.tag, generation), count=chunk):
            batch.append(key)
            if len(batch) >= chunk:
                check(control)
                dropped += int(client.unlink(*batch))  # type: ignore[arg-type]
                batch = []
                control.report(dropped, None, f"dropping generation {generation}")
    if batch:
        dropped += int(client.unlink(*batch))  # type: ignore[arg-type]
    client.delete(*(keys.generation_lease(p.tag, generation) for p in parts), keys.layout(projection, generation),
                  keys.folds(projection, generation))
    control.report(dropped, dropped, f"dropped generation {generation}")
    return dropped


_FORGET_KEPT = """
if redis.call('HGET', KEYS[1], 'generation') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


def _forget_kept(client: redis.Redis, projection: str, generation: int) -> None:
    """``generation`` is no rollback target any more (it is being dropped; its checkpoint went first, so the last
    flip's record cannot name it either)."""
    client.eval(_FORGET_KEPT, 1, keys.kept(projection), str(generation))


def flipped_earlier(client: redis.Redis, projection: str, generation: int) -> int | None:
    """The generation the last flip left, if that flip made ``generation`` live and it is live still: what a
    redelivered job finds when an earlier attempt of it flipped and died before saying so (only the job that
    picked a generation writes and flips it). None: ``generation`` was not flipped live."""
    if live_generation(client, projection) != generation:
        return None
    flip_state = {text(k): text(v) for k, v in client.hgetall(keys.flip(projection)).items()}  # type: ignore[union-attr]
    if flip_state.get("state") != "done" or flip_state.get("to") != str(generation) or not flip_state.get("from", "").isdigit():
        return None
    return int(flip_state["from"])


def settle_flip(client: redis.Redis, projection: str, left: int, control: Control) -> list[int]:
    """After a flip left ``left`` for the live generation: ``left`` becomes the generation kept for a rollback
    (since the flip), and every other generation but the live one and one being written — the generation kept
    before, a leftover — is dropped, so at most the live and one kept generation remain. Idempotent (a
    redelivered job settles again); returns the generations dropped."""
    present = inventory.count(client, projection, sample=0)
    seen = inventory.probe(client, projection, present)
    if seen.live == left:
        raise ProjectionError(f"generation {left} of {projection} is live again; nothing to settle")
    flip_state = {text(k): text(v) for k, v in client.hgetall(keys.flip(projection)).items()}  # type: ignore[union-attr]
    since = flip_state.get("flipped_at") if flip_state.get("from") == str(left) else None
    client.hset(keys.kept(projection), mapping={"generation": str(left), "since": since or str(int(time.time() * 1000))})
    dropped = []
    for n in sorted(present):
        if n not in (seen.live, left) and not seen.marks[n][1]:
            drop_generation(client, projection, n, control)
            dropped.append(n)
    return dropped


def drop_refusal(client: redis.Redis, projection: str, generation: int) -> str:
    """Why ``generation`` may not be dropped now ('' if it may): it is live, or a writer holds its lease."""
    if generation == live_generation(client, projection):
        return f"generation {generation} of {projection} is live; flip to another before dropping it"
    if inventory.role(inventory.probe(client, projection, [generation]), generation) is inventory.Role.WRITING:
        return (f"generation {generation} of {projection} is being written (its lease is held); cancel the job "
                "writing it first")
    return ""
