"""The dry run of a full rebuild: the events to read and the memory a second generation takes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from projections import keys, layout
from projections.maintenance.generations import head_position, live_generation
from projections.maintenance.retention import next_generation
from projections.projector.runner import RunnerConfig


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

    def eta_seconds(self, rate: float | None) -> float | None:
        return self.events / rate if rate else None


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


def plan_rebuild(client: redis.Redis, base: RunnerConfig, sample: int = 200) -> RebuildPlan:
    """The dry run of a rebuild of ``base.projection``: events to read and the memory a second generation takes."""
    projection = base.projection
    memory = second_generation(client, projection, sample)
    return RebuildPlan(projection, live_generation(client, projection), next_generation(client, projection),
                       head_position(base), memory.keys, memory.estimated_bytes, memory.used_bytes, memory.max_bytes,
                       memory.refusal)
