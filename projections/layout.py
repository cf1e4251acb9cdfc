"""How each generation of a projection is split into partitions: its layout, recorded beside the generation pointer.

Contract:

* a generation's layout (``keys.layout``: ``partitions``, ``hash``) is written once, when the generation is first
  run or built, and never changes: the partition count P changes only through a rebuild into a new generation;
* a user-keyed projection takes the configured count (``LUCENT_PARTITIONS``); the market (keyed by pair) is always
  one partition (:func:`count_for`);
* a generation that already holds read models under the projection's own tag (built before partitions existed)
  is recorded as one partition, whatever the setting, so its keys stay readable;
* readers and jobs ask :func:`partitions` which partitions a generation has; a generation with no layout yet is
  read as one partition.
"""
from __future__ import annotations

from typing import Any

from projections import keys
from projections.codec import text
from projections.keys import KeySpace
from projections.partitions import Partition, check_count, partitions_of
from projections.readmodels import model

HASH = "crc32"


def count_for(projection: str, configured: int) -> int:
    """The partition count a new generation of ``projection`` gets: ``configured`` for a user-keyed projection."""
    return check_count(configured, "LUCENT_PARTITIONS") if model(projection).user_kind else 1


def next_count(client: Any, projection: str, asked: int | None, configured: int) -> int:
    """The count a rebuild of ``projection`` splits its new generation into: ``asked`` if the operator asked for one,
    else the live generation's (a rebuild never changes the count by surprise; ``configured`` is what a live
    generation with no layout yet gets)."""
    if asked:
        return count_for(projection, asked)
    live = live_generation(client, projection)
    return recorded(client, projection, live) or _first_count(client, projection, live, configured)


def recorded(client: Any, projection: str, generation: int) -> int | None:
    """The partition count recorded for ``generation`` (None: none yet)."""
    value = text(client.hget(keys.layout(projection, generation), "partitions"))
    return int(value) if value else None


def record(client: Any, projection: str, generation: int, configured: int) -> int:
    """The generation's partition count, recording it first if it has none (see the module doc)."""
    found = recorded(client, projection, generation)
    if found is not None:
        return found
    count = _first_count(client, projection, generation, configured)
    key = keys.layout(projection, generation)
    client.hsetnx(key, "partitions", str(count))
    client.hsetnx(key, "hash", HASH)
    return recorded(client, projection, generation) or count


def _first_count(client: Any, projection: str, generation: int, configured: int) -> int:
    """The count ``generation`` is recorded with first: one if it holds keys of before partitions, else ``configured``."""
    legacy = client.exists(keys.KeySpace(projection, generation).checkpoint)
    return 1 if legacy else count_for(projection, configured)


def partitions(client: Any, projection: str, generation: int) -> list[Partition]:
    """Every partition of ``generation`` (one if it has no layout yet)."""
    return partitions_of(projection, recorded(client, projection, generation) or 1)


def space(partition: Partition, generation: int) -> KeySpace:
    """The key space of ``partition`` in ``generation`` (tag ``""`` for a projection in one partition: its own keys)."""
    return KeySpace(partition.projection, generation, partition.tag if partition.count > 1 else "")


def live_generation(client: Any, projection: str) -> int:
    """The live generation of ``projection`` (1 before any flip)."""
    return int(text(client.get(keys.generation_pointer(projection))) or 1)


def live_partitions(client: Any, projection: str, configured: int) -> list[Partition]:
    """The partitions of ``projection``'s live generation, its layout recorded first if it has none."""
    return partitions_of(projection, record(client, projection, live_generation(client, projection), configured))
