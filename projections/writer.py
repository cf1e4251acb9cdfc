"""The only module that writes read models to Redis.

Contract:

* :func:`load_states` reads the state of many entities in ONE round trip
  (a pipeline of HGETALL) together with the checkpoint; entities found in the
  projector's :class:`~projections.projector.cache.StateCache` are not read at all.
* :func:`plan` turns old vs new entity states into absolute writes only —
  HSET/HDEL, ZADD/ZREM, DEL and a capped ZADD + ZREMRANGEBYRANK for
  append-only history — never HINCRBY/ZINCRBY: applying a plan twice leaves
  the same keyspace as applying it once.
* :meth:`Committer.commit` applies a plan, the parked events and the new checkpoint in
  ONE Lua script, i.e. one atomic step: it first checks the fencing token
  (the projection's lease), that the checkpoint is still the one the batch
  started from and that the generation's ``state-epoch`` has not moved since
  the batch loaded its states (another writer, a per-user rebuild, changed
  entities meanwhile); otherwise nothing is written and :class:`Fenced`
  (another projector) or :class:`CheckpointMoved` is raised. The live projector's
  commit also checks that the generation pointer still names the generation the
  batch was folded for (a flip it did not see: paused past its heartbeat);
  otherwise nothing is written and :class:`GenerationMoved` is raised.
  Guards (:func:`guards`) come first in the writes: the entities the batch was folded from must still be in
  Redis as it loaded them (``lastPosition``, every key of their image); if one vanished (eviction, a lossy
  failover) nothing is written and :class:`EntityLost` names the keys, so a batch never writes a partial entity.
* :func:`write_entity` is that other writer's commit: the absolute writes of
  one entity, applied only if the entity's ``lastPosition`` is still the one
  it read (compare-and-set), bumping ``state-epoch`` in the same script.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from projections import keys
from projections.codec import text
from projections.connection import is_cluster
from projections.errors import (
    CheckpointMoved,
    EntityLost,
    EpochMoved,
    Fenced,
    Flipped,
    GenerationMoved,
    LeaseLost,
    RedisRefusesWrites,
)
from projections.keys import KeySpace
from projections.readmodels.base import Append, ReadModel, Ref, Rendered

FLIPPED = "flipped"  # the lease token a flip leaves on a rebuild's generation: its writer is fenced for good
Write = tuple[str, ...]  # one Redis write: the command name and its arguments
CHUNK = 400  # members per write: keeps every Lua unpack() far below its stack limit

_COMMIT = """
local holder = redis.call('GET', KEYS[1])
if holder ~= ARGV[1] then
  return redis.error_reply('FENCED ' .. tostring(holder))
end
local cp = redis.call('GET', KEYS[2]) or ''
if cp ~= ARGV[2] then
  return redis.error_reply('CHECKPOINT ' .. cp)
end
local epoch = redis.call('GET', KEYS[3]) or ''
if epoch ~= ARGV[5] then
  return redis.error_reply('EPOCH ' .. epoch)
end
local live = redis.call('GET', KEYS[4]) or ARGV[7]
if ARGV[6] ~= '' and live ~= ARGV[6] then
  return redis.error_reply('GENERATION ' .. live)
end
local i, n = 8, #ARGV
local lost = {}
while i <= n and string.sub(ARGV[i + 1], 1, 1) == '?' do
  -- a guard: ?LAST main expected | ?EXISTS main key | ?MEMBER main key member; a failed one names its entity (main)
  local c, op, main = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2]
  local ok
  if op == '?LAST' then
    ok = (redis.call('HGET', main, 'lastPosition') or '') == ARGV[i + 3]
  elseif op == '?EXISTS' then
    ok = redis.call('EXISTS', ARGV[i + 3]) == 1
  else
    ok = redis.call('ZSCORE', ARGV[i + 3], ARGV[i + 4]) ~= false
  end
  if not ok and lost[#lost] ~= main then lost[#lost + 1] = main end
  i = i + c + 1
end
if #lost > 0 then
  return redis.error_reply('LOST ' .. table.concat(lost, ' '))
end
-- the first write is a deny-OOM command: out of memory, Redis refuses the script whole (after a first write
-- it lets a script's every later write through, past maxmemory)
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
while i <= n do
  local c = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + c))
  i = i + c + 1
end
redis.call('SET', KEYS[2], ARGV[3])
return 1
"""


@dataclass
class Plan:
    """Absolute writes, grouped per key, plus what changed (for the change notice)."""

    writes: list[Write] = field(default_factory=list)
    changed_zsets: dict[str, set[str]] = field(default_factory=dict)
    images: dict[Ref, Rendered] = field(default_factory=dict)  # the new Redis image of each changed entity

    def extend(self, other: Plan) -> None:
        self.writes.extend(other.writes)
        for key, members in other.changed_zsets.items():
            self.changed_zsets.setdefault(key, set()).update(members)


def _score(value: float) -> str:
    # NaN is not a Redis score; it can only come from inf - inf on absurd inputs.
    return "0" if math.isnan(value) else repr(float(value))


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _hash_writes(key: str, old: Mapping[str, str], new: Mapping[str, str]) -> list[Write]:
    if not new:
        return [("DEL", key)] if old else []
    out: list[Write] = []
    changed = [x for f, v in new.items() if old.get(f) != v for x in (f, v)]
    for part in _chunks(changed, 2 * CHUNK):
        out.append(("HSET", key, *part))
    removed = [f for f in old if f not in new]
    for part in _chunks(removed, CHUNK):
        out.append(("HDEL", key, *part))
    return out


def _zset_writes(key: str, old: Mapping[str, float], new: Mapping[str, float], plan: Plan) -> None:
    added = [m for m, s in new.items() if old.get(m) != s]
    removed = [m for m in old if m not in new]
    if not added and not removed:
        return
    plan.changed_zsets.setdefault(key, set()).update(added, removed)
    pairs = [x for m in added for x in (_score(new[m]), m)]
    for part in _chunks(pairs, 2 * CHUNK):
        plan.writes.append(("ZADD", key, *part))
    for part in _chunks(removed, CHUNK):
        plan.writes.append(("ZREM", key, *part))


def diff(old: Rendered, new: Rendered, plan: Plan) -> None:
    """Add to ``plan`` the absolute writes that turn ``old``'s image into ``new``'s."""
    for key in {*old.owned, *new.owned}:
        plan.writes.extend(_hash_writes(key, old.owned.get(key, {}), new.owned.get(key, {})))
    for key in {*old.zsets, *new.zsets}:
        _zset_writes(key, old.zsets.get(key, {}), new.zsets.get(key, {}), plan)
    for key in {*old.hfields, *new.hfields}:
        old_f, new_f = old.hfields.get(key, {}), new.hfields.get(key, {})
        writes = _hash_writes(key, old_f, new_f) if new_f else [("HDEL", key, *old_f)] if old_f else []
        plan.writes.extend(writes)


def plan(
    model: ReadModel, ks: KeySpace, old: Mapping[Ref, Any], new: Mapping[Ref, Any], appends: Sequence[Append],
    old_images: Mapping[Ref, Rendered] | None = None,
) -> Plan:
    """The writes turning the ``old`` states of the changed entities into ``new`` (see module doc).

    ``old_images`` gives old Redis images already known (from the cache), so they are not rendered again.
    """
    out = Plan()
    known = old_images or {}
    for ref, state in new.items():
        before = known.get(ref)
        if before is None:
            state_before = old.get(ref)
            before = Rendered() if state_before is None else model.render(ks, ref, state_before)
        image = out.images[ref] = model.render(ks, ref, state)
        diff(before, image, out)
    caps: dict[str, int] = {}
    for entry in appends:
        out.writes.append(("ZADD", entry.key, _score(entry.score), entry.member))
        caps[entry.key] = entry.cap
    for key, cap in caps.items():
        out.writes.append(("ZREMRANGEBYRANK", key, "0", str(-(cap + 1))))
    return out


def guards(model: ReadModel, ks: KeySpace, states: Mapping[Ref, Any], images: Mapping[Ref, Rendered],
           refs: Iterable[Ref]) -> list[Write]:
    """The commit's checks that each user entity of ``refs`` is in Redis as the batch loaded it: its main
    hash's ``lastPosition`` ('' for an entity the batch starts), every non-empty hash of its image, and its
    members of the rankings. (Market entities are not one user's: a full check finds their losses.)"""
    out: list[Write] = []
    for ref in refs:
        if ref[0] != model.user_kind:
            continue
        state = states.get(ref)
        if state is None:
            out.append(("?LAST", model.main_key(ks, ref), ""))
            continue
        image = images.get(ref) or model.render(ks, ref, state)
        main = model.main_key(ks, ref)
        out.append(("?LAST", main, image.owned.get(main, {}).get("lastPosition", "")))
        out.extend(("?EXISTS", main, key) for key, fields in image.owned.items() if fields and key != main)
        out.extend(("?MEMBER", main, key, member) for key, members in image.zsets.items() for member in members)
    return out


@dataclass
class Loaded:
    """What a batch starts from: the touched entities found in Redis, the old images already
    known (from the projector's cache; empty here), the checkpoint and the generation's state
    epoch ('' where absent)."""

    states: dict[Ref, Any]
    images: dict[Ref, Rendered]
    checkpoint: str
    epoch: str = ""


def load_states(client: redis.Redis, model: ReadModel, ks: KeySpace, refs: Sequence[Ref]) -> Loaded:
    """States of ``refs``, the checkpoint and the state epoch, in one round trip.

    An absent entity is left out (not parsed as empty): its old Redis image is nothing at all.
    """
    pipe = client.pipeline(transaction=False)
    # The epoch first: an entity write landing between two of these replies then shows as a
    # moved epoch at commit (refused), never as a new epoch over states read before it.
    pipe.get(ks.state_epoch)
    for ref in refs:
        pipe.hgetall(model.main_key(ks, ref))
    pipe.get(ks.checkpoint)
    replies = pipe.execute()
    states = {ref: model.parse(ref, _text_map(fields)) for ref, fields in zip(refs, replies[1:]) if fields}
    return Loaded(states, {}, text(replies[-1]), text(replies[0]))


def _text_map(fields: Mapping[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in fields.items()}


class Committer:
    """Commits batches for one projection holding lease ``token`` (see module doc)."""

    def __init__(self, client: redis.Redis, projection: str, token: str, lease_ms: int, lease_key: str | None = None,
                 live: bool = False) -> None:
        """``live``: the live projector's committer, which writes only while the generation pointer names the
        generation its batch was folded for."""
        self.client = client
        self.live = live
        self.projection = projection
        self.token = token
        self.lease_ms = lease_ms
        self.lease_key = lease_key or keys.lease(projection)
        self._script = client.register_script(_COMMIT)
        self._cluster = is_cluster(client)

    def commit(self, ks: KeySpace, expected: str, checkpoint: int, writes: Sequence[Write], epoch: str) -> None:
        """Apply ``writes`` and move the checkpoint from ``expected`` to ``checkpoint``, if the
        lease, the checkpoint and the state epoch (as loaded: ``epoch``) are as expected."""
        live = str(ks.generation) if self.live else ""
        # the live generation as the partition's own slot holds it: its copy of the projection's pointer (the
        # pointer itself for a projection in one partition, where absent means generation 1)
        pointer = keys.generation_pointer(ks.root)
        own = ks.root == self.projection
        args: list[str] = [self.token, expected, str(checkpoint), str(self.lease_ms), epoch, live, "1" if own else "",
                           *_flatten(writes)]
        script_keys = [self.lease_key, ks.checkpoint, ks.state_epoch, pointer, *(touched(writes) if self._cluster else ())]
        try:
            try:
                self._script(keys=script_keys, args=args)
            except redis.ResponseError as exc:
                if own or not str(exc).startswith("GENERATION") or not self._follow(pointer, str(exc)[11:], live):
                    raise
                self._script(keys=script_keys, args=args)
        except redis.ResponseError as exc:
            reply = str(exc)
            if reply == "FENCED false":
                raise LeaseLost(f"projection {self.projection!r}: the lease expired") from None
            if reply == f"FENCED {FLIPPED}":
                raise Flipped(f"projection {self.projection!r}: generation {ks.generation} was flipped live; "
                              "the live projector writes it from here") from None
            if reply.startswith("FENCED"):
                raise Fenced(
                    f"projection {self.projection!r}: the lease is held by {reply[7:]!r}, not this projector "
                    f"({self.token}); this projector stops — run one projector per projection"
                ) from None
            if reply.startswith("CHECKPOINT"):  # not "MOVED": redis-py reads that as a cluster redirect
                raise CheckpointMoved(f"projection {self.projection!r}: checkpoint is {reply[11:]!r}, expected {expected!r}") from None
            if "OOM" in reply:
                raise RedisRefusesWrites(reply) from None
            if reply.startswith("LOST"):
                lost = tuple(reply[5:].split(" "))
                raise EntityLost(f"projection {self.projection!r}: keys of {len(lost)} entities of the batch vanished or "
                                 f"moved behind the projector (e.g. {lost[0]!r})", lost) from None
            if reply.startswith("GENERATION"):
                raise GenerationMoved(f"projection {self.projection!r}: generation {reply[11:]} is live now, not "
                                      f"{ks.generation} (a flip); the batch was not written, resubscribing there") from None
            if reply.startswith("EPOCH"):
                raise EpochMoved(f"projection {self.projection!r}: another writer changed entities (state epoch "
                                      f"{reply[6:]!r}, loaded {epoch!r}); the batch is read again") from None
            raise


    def _follow(self, copy_key: str, copy: str, live: str) -> bool:
        """A partition's copy of the pointer says ``copy`` where the projection's pointer names ``live``: the copy
        lags (a flip moved the pointer and had not yet written the copy, or stopped in between; the copy was never
        written or was evicted). The copy follows the pointer, never the other way (a flip writes the pointer
        first), so it is moved to ``live`` (if it still says ``copy``); True if the commit may be tried again."""
        if (text(self.client.get(keys.generation_pointer(self.projection))) or "1") != live:
            return False
        self.client.eval(_FOLLOW, 1, copy_key, copy, live)
        return True


_FOLLOW = """
if (redis.call('GET', KEYS[1]) or '') == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) end
return 1
"""


def touched(writes: Sequence[Write]) -> list[str]:
    """Every key ``writes`` (and their guards) touch, to be declared to a Redis Cluster: a script whose keys are all
    declared is checked before it runs (during a slot's migration it is redirected, or told to try again, as a
    whole), where a key reached only through its arguments would fail the script between two writes."""
    found = dict.fromkeys(w[2] if w[0] in ("?EXISTS", "?MEMBER") else w[1] for w in writes)
    return list(found)


def _flatten(writes: Sequence[Write]) -> list[str]:
    """Writes as script arguments: each one's length, then its words."""
    args: list[str] = []
    for write in writes:
        args.append(str(len(write)))
        args.extend(write)
    return args


_WRITE_ENTITY = """
local last = redis.call('HGET', KEYS[1], 'lastPosition') or ''
if last ~= ARGV[1] then
  return redis.error_reply('ENTITY ' .. last)
end
local epoch = redis.call('INCR', KEYS[2])  -- first, a deny-OOM write: out of memory, nothing is written
local i, n = 2, #ARGV
while i <= n do
  local c = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + c))
  i = i + c + 1
end
return epoch
"""


def write_entity(client: redis.Redis, ks: KeySpace, main_key: str, expected_last: str, writes: Sequence[Write]) -> bool:
    """Apply ``writes`` (one entity's, all in ``ks``'s slot) if the entity's main hash still says
    ``lastPosition`` = ``expected_last`` ('' for an absent entity), bumping the state epoch so the
    projector's cache and batches in flight notice; False (nothing written) if it moved."""
    declared = [main_key, ks.state_epoch, *(touched(writes) if is_cluster(client) else ())]
    try:
        client.eval(_WRITE_ENTITY, len(declared), *declared, expected_last, *_flatten(writes))
    except redis.ResponseError as exc:
        if str(exc).startswith("ENTITY"):
            return False
        raise
    return True


def parked_writes(projection: str, member: str, position: int, record: str) -> list[Write]:
    """Writes recording a parked event (idempotent: keyed by ``member``, :func:`keys.parked_member`)."""
    return [
        ("HSET", keys.parked(projection), member, record),
        ("ZADD", keys.parked_index(projection), str(position), member),
    ]


def unpark_writes(projection: str, member: str) -> list[Write]:
    return [("HDEL", keys.parked(projection), member), ("ZREM", keys.parked_index(projection), member)]


def outbox_writes(projection: str, entries: Sequence[tuple[str, str]]) -> list[Write]:
    """Writes putting ``(event id, JSON)`` entries in the projection's outbox of events to publish, in the
    commit of the batch that caused them (idempotent: keyed by the published event's id)."""
    flat = [x for entry in entries for x in entry]
    return [("HSET", keys.outbox(projection), *part) for part in _chunks(flat, 2 * CHUNK)]
