"""The generation pointer as the maintenance engines read it (the projector reads its own in ``runner``), and the
key spaces of the live generation's partitions that per-user work goes through.

Per-user work (a per-user rebuild, a repair, a consistency check and its explanation, the healer of vanished
entities) acts on one partition: the one holding the user's entities (:func:`user_space`). There it reads the
replicated entities (portfolio's marks), writes the user's entities and ranking members, and is fenced by that
partition's ``state-epoch`` — the one its live runner checks. A generation in one partition has one key space
under the projection's own tag, exactly as before partitions (tag ``""``).
"""
from __future__ import annotations

import redis

from projections import layout
from projections.errors import ProjectionError
from projections.keys import KeySpace
from projections.layout import live_generation as live_generation  # re-exported: the engines read it here
from projections.layout import space as space  # re-exported
from projections.partitions import Partition, partition_of, partitions_of


def owner(client: redis.Redis, projection: str, generation: int, user_id: str) -> Partition:
    """The partition of ``generation`` that holds ``user_id``'s entities (its layout never changes)."""
    count = layout.recorded(client, projection, generation) or 1
    return Partition(projection, partition_of(user_id, count), count)


def user_space(client: redis.Redis, projection: str, user_id: str) -> tuple[KeySpace, Partition]:
    """The live generation's key space holding ``user_id``'s entities, and its partition. The pointer is read once
    and the layout is that generation's (it never changes), so the two always agree."""
    generation = live_generation(client, projection)
    partition = owner(client, projection, generation, user_id)
    return space(partition, generation), partition


def live_spaces(client: redis.Redis, projection: str) -> list[KeySpace]:
    """The key space of every partition of the live generation (one for a projection in one partition)."""
    generation = live_generation(client, projection)
    return [space(p, generation) for p in layout.partitions(client, projection, generation)]


def partition_of_space(client: redis.Redis, ks: KeySpace) -> Partition:
    """The partition whose keys ``ks`` names (``ks.tag`` ``""``: the projection in one partition)."""
    if not ks.tag:
        return Partition(ks.projection)
    for partition in partitions_of(ks.projection, layout.recorded(client, ks.projection, ks.generation) or 1):
        if partition.tag == ks.tag:
            return partition
    raise ProjectionError(f"projection {ks.projection!r}: generation {ks.generation} has no partition tagged {ks.tag!r} "
                          "(its layout names another count); nothing was written")
