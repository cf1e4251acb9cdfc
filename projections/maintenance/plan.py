"""The dry run of a full rebuild: the events to read and the memory a second generation takes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from projections import keys, layout
from projections.maintenance.generations import head_position, live_generation
from projections.maintenance.retention import next_generation
from projections.partitions import MAX_PARTITIONS
from projections.projector.runner import RunnerConfig
from projections.readmodels import model


@dataclass(frozen=True)
class RebuildPlan:
    """What a full rebuild would do, shown before it starts (a dry run)."""

    projection: str
    live: int
    target: int
    events: int  # an upper bound: the commit position of the head of the projection's events
    keys: int  # keys of the live generation (a rebuild writes as many again)
    estimated_bytes: int
    used_bytes: int
    max_bytes: int  # 0: no maxmemory set
    refusal: str  # why it would not fit; empty when it can start
    live_partitions: int = 1  # the live generation's partition count
    partitions: int = 1  # the new generation's

    def eta_seconds(self, rate: float | None) -> float | None:
        return self.events / rate if rate else None

    @property
    def split(self) -> str:
        """How the new generation is split, as the console and the command line say it."""
        said = f"{self.partitions} partition{'s' if self.partitions != 1 else ''}"
        if self.partitions == self.live_partitions:
            return f"{said}, as the live one"
        return f"{said}; the live one has {self.live_partitions}: the members move to the new ones at the flip"

    @property
    def choices(self) -> list[int]:
        """The partition counts a rebuild of the projection may ask for (one for the market, keyed by pair)."""
        return [2**n for n in range(MAX_PARTITIONS.bit_length())] if model(self.projection).user_kind else [1]


@dataclass(frozen=True)
class SecondGeneration:
    """The memory a second generation of a projection takes, against what Redis holds and may hold."""

    keys: int  # keys of the live generation (a rebuild writes as many again)
    estimated_bytes: int
    used_bytes: int
    max_bytes: int  # 0: no maxmemory set
    refusal: str  # why it would not fit; empty when it fits


def second_generation(client: redis.Redis, projection: str, sample: int = 200) -> SecondGeneration:
    """The live generation's keys (counted by SCAN) times a sampled ``MEMORY USAGE``, against Redis's memory."""
    live = live_generation(client, projection)
    count, sizes = 0, list[int]()
    found = (key for part in layout.partitions(client, projection, live)
             for key in client.scan_iter(match=keys.generation_pattern(part.tag, live), count=1000))
    for key in found:
        count += 1
        if len(sizes) < sample:
            sizes.append(int(client.memory_usage(key) or 0))  # type: ignore[arg-type]
    estimate = int(sum(sizes) / len(sizes) * count) if sizes else 0
    memory: dict[str, Any] = client.info("memory")  # type: ignore[assignment]
    used, most = int(memory.get("used_memory", 0)), int(memory.get("maxmemory", 0))
    refusal = ""
    if most and used + estimate > most * 0.95:
        refusal = (f"a second generation needs about {estimate / 2**20:,.1f} MiB and Redis has {used / 2**20:,.1f} of "
                   f"{most / 2**20:,.1f} MiB in use: drop a kept generation or raise maxmemory first")
    return SecondGeneration(count, estimate, used, most, refusal)


def plan_rebuild(client: redis.Redis, base: RunnerConfig, partitions: int | None = None, configured: int = 1,
                 sample: int = 200) -> RebuildPlan:
    """The dry run of a rebuild of ``base.projection``: events to read, the memory a second generation takes and its
    partition count (``partitions`` if asked, else the live generation's: :func:`projections.layout.next_count`)."""
    projection = base.projection
    memory = second_generation(client, projection, sample)
    live = live_generation(client, projection)
    return RebuildPlan(projection, live, next_generation(client, projection),
                       head_position(base), memory.keys, memory.estimated_bytes, memory.used_bytes, memory.max_bytes,
                       memory.refusal, len(layout.partitions(client, projection, live)),
                       layout.next_count(client, projection, partitions, configured))

