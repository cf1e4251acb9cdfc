"""The sample a rebuild compares before its flip: entities of the live generation against the new one's, where
both stand at the same position (:func:`compare`)."""
from __future__ import annotations

from dataclasses import dataclass, field

import redis

from projections import keys
from projections.codec import text
from projections.layout import space
from projections.partitions import Partition, partition_of
from projections.readmodels import model

SAMPLE = 200  # entities compared before a flip
DIFFERENCES_KEPT = 20


@dataclass
class Sample:
    """Entities compared before a flip, and the differing fields (the first DIFFERENCES_KEPT kept)."""

    sampled: int = 0
    compared: int = 0
    count: int = 0
    kept: list[dict[str, str]] = field(default_factory=list)


def compare(client: redis.Redis, projection: str, live: tuple[int, list[Partition]], new: tuple[int, list[Partition]],
            size: int = SAMPLE) -> Sample:
    """Entity hashes of the live generation against G's, where both say the same ``lastPosition``: up to ``size``
    in all, taken from every partition in turn. Split alike, an entity is in the same partition of both; split
    into another count, the users' entities are compared, each looked up in its partition of G."""
    pairs = _alike(client, projection, live, new, size) if len(live[1]) == len(new[1]) else \
        _by_user(client, projection, live, new, size)
    out = Sample()
    pipe = client.pipeline(transaction=False)
    for _, a, b in pairs:
        pipe.hgetall(a)
        pipe.hgetall(b)
    replies = pipe.execute()
    for i, (name, _, _) in enumerate(pairs):
        old = {text(k): text(v) for k, v in replies[2 * i].items()}
        rebuilt = {text(k): text(v) for k, v in replies[2 * i + 1].items()}
        out.sampled += 1
        if "lastPosition" not in old or old.get("lastPosition") != rebuilt.get("lastPosition"):
            continue  # not an entity at one position in both (moved since, or a table without one)
        out.compared += 1
        for field_name in sorted({*old, *rebuilt}):
            if old.get(field_name) != rebuilt.get(field_name):
                out.count += 1
                if len(out.kept) < DIFFERENCES_KEPT:
                    out.kept.append({"key": name, "field": field_name, "live": old.get(field_name, "")[:200],
                                     "rebuilt": rebuilt.get(field_name, "")[:200]})
    return out


def _alike(client: redis.Redis, projection: str, live: tuple[int, list[Partition]], new: tuple[int, list[Partition]],
           size: int) -> list[tuple[str, str, str]]:
    """(name, live key, G's key) of hashes sampled from each live partition and the same partition of G."""
    (from_g, live_parts), (to_g, new_parts) = live, new
    pairs: list[tuple[str, str, str]] = []
    each = max(1, size // len(live_parts))
    for old_part, new_part in zip(live_parts, new_parts):
        a, b = space(old_part, from_g), space(new_part, to_g)
        for n, key in enumerate(client.scan_iter(match=keys.generation_pattern(old_part.tag, from_g), count=1000,
                                                  _type="hash")):
            if n >= each:
                break
            name = a.name_of(text(key))
            pairs.append((name, a.key(name), b.key(name)))
    return pairs


def _by_user(client: redis.Redis, projection: str, live: tuple[int, list[Partition]], new: tuple[int, list[Partition]],
             size: int) -> list[tuple[str, str, str]]:
    """(name, live key, G's key) of users' main hashes sampled from each live partition, each user's key in G taken
    from the partition of G holding the user."""
    (from_g, live_parts), (to_g, new_parts) = live, new
    m = model(projection)
    if m.user_kind is None:
        return []
    pairs: list[tuple[str, str, str]] = []
    each = max(1, size // len(live_parts))
    for old_part in live_parts:
        a = space(old_part, from_g)
        prefix = m.main_key(a, (m.user_kind, ""))
        found = 0
        for key in client.scan_iter(match=prefix + "*", count=1000, _type="hash"):
            user = text(key)[len(prefix):]
            if ":" in user:
                continue  # one of the user's other hashes
            if found >= each:
                break
            found += 1
            b = space(new_parts[partition_of(user, len(new_parts))], to_g)
            pairs.append((a.name_of(text(key)), text(key), m.main_key(b, (m.user_kind, user))))
    return pairs
