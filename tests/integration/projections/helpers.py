"""Shared helpers: simulated events, running projections, comparing keyspaces."""
from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from projections import keys, layout
from projections.eventstore import EventStore
from projections.maintenance.user_rebuild import heal
from projections.partitions import Partition, partitions_of
from projections.projector.runner import Runner, RunnerConfig
from projections.readmodels import PROJECTIONS
from projections.simulation.appender import append_events
from projections.simulation.market import Market
from tests.fixtures.projections import MemberProcess

OPERATIONAL = ("status", "heartbeat", "lease", "lag-history", "health-samples")


def append_market(uri: str, n: int, seed: int = 11, start: int = 0, bad_ratio: float = 0.02) -> int:
    """Append events ``start .. start+n`` of a seeded simulated market; returns the head position."""
    market = Market(seed=seed, users=25, pairs=4, exchanges=3, bad_ratio=bad_ratio)
    items = list(market.events(start + n))[start:]
    with EventStore(uri) as store:
        append_events(store, items, batch_size=50)
        return store.client.get_commit_position()


def head_for(uri: str, projection: str) -> int:
    """Commit position of the newest event of ``projection``'s types."""
    from projections.readmodels import model

    with EventStore(uri) as store:
        head = store.head(model(projection).event_types)
        return head.position if head else 0


def config(projection: str, redis_url: str, uri: str, **over: Any) -> RunnerConfig:
    base: dict[str, Any] = {"batch_size": 50, "lease_ms": 1500, "status_interval": 0.2, "backoff_initial": 0.05,
                            "backoff_max": 0.5, "exit_when_caught_up": True}
    base.update(over)
    return RunnerConfig(projection, redis_url, uri, **base)


def run_to_end(redis_url: str, uri: str, projections: tuple[str, ...] = PROJECTIONS, **over: Any) -> None:
    for name in projections:
        Runner(config(name, redis_url, uri, **over), healer=heal).run()


def keyspace(client: redis.Redis) -> dict[str, Any]:
    """Logical content + TTL of every key but the per-run operational ones (status, heartbeat, lease).

    Compared logically, not as DUMP bytes: a hash's internal field order depends
    on insertion order, which legitimately differs when batches are cut differently.
    """
    out: dict[str, Any] = {}
    for raw in client.scan_iter(match="lucent:*", count=1000):
        key = raw.decode()
        if key.rsplit(":", 1)[-1] in OPERATIONAL:
            continue
        kind = client.type(key).decode()
        if kind == "hash":
            value: Any = client.hgetall(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            value = sorted(client.smembers(key))
        else:
            value = client.get(key)
        out[key] = (kind, value, client.pttl(key) > 0)
    return out


def dumps(client: redis.Redis) -> dict[str, tuple[bytes, int]]:
    """DUMP bytes and PTTL of every key but the operational ones (byte-exact comparison)."""
    out = {}
    for raw in client.scan_iter(match="lucent:*", count=1000):
        key = raw.decode()
        if key.rsplit(":", 1)[-1] not in OPERATIONAL:
            out[key] = (client.dump(key), client.pttl(key))
    return out


def checkpoint(client: redis.Redis, projection: str) -> int:
    value = client.get(keys.KeySpace(projection).checkpoint)
    return int(value) if value else 0


def in_thread(runner: Runner) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            runner.run()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, errors


def generation_content(client: redis.Redis, generation: int, projection: str = "portfolio") -> dict[str, Any]:
    """Every read-model key of one generation of ``projection``, by its name after the generation prefix."""
    ks = keys.KeySpace(projection, generation)
    out: dict[str, Any] = {}
    for raw in client.scan_iter(match=keys.generation_pattern(projection, generation), count=1000):
        key = raw.decode()
        name = ks.name_of(key)
        if name == "state-epoch":
            continue
        kind = client.type(key).decode()
        out[name] = client.hgetall(key) if kind == "hash" else client.zrange(key, 0, -1, withscores=True) \
            if kind == "zset" else client.get(key)
    return out


# -- members over split projections on any Redis (one server, Sentinels, a cluster) ---------------------------------


def split(count: int, names: Sequence[str] = tuple(PROJECTIONS)) -> list[Partition]:
    """Every partition of ``names``, the user-keyed ones split ``count`` ways (the market whole)."""
    return [p for name in names for p in partitions_of(name, layout.count_for(name, count))]


def split_content(client: redis.Redis, part: Partition, generation: int = 1) -> dict[str, Any]:
    """A partition's read models in ``generation``, its checkpoint left out."""
    found = generation_content(client, generation, part.tag)
    found.pop("checkpoint", None)
    return found


def split_at_head(client: redis.Redis, uri: str, parts: Sequence[Partition], generation: int = 1) -> bool:
    return all(int(client.get(layout.space(p, generation).checkpoint) or 0) >= head_for(uri, p.projection) for p in parts)


def start_members(tmp_path: Path, redis_url: str, uri: str, count: int, names: Sequence[str] = tuple(PROJECTIONS),
                  batch_size: int = 50) -> list[MemberProcess]:
    """Members "a" and "b" over ``names`` split ``count`` ways on ``redis_url`` (any form REDIS_URL takes), started."""
    settings = {"projection": "", "redis_url": redis_url, "eventstore_uri": uri, "batch_size": batch_size,
                "lease_ms": 1500, "status_interval": 0.2, "backoff_initial": 0.05, "backoff_max": 0.5}
    members = [MemberProcess(tmp_path / f"{n}.log", n, list(names), count, **settings) for n in ("a", "b")]
    for member in members:
        member.start()
    return members


def equal_to_fresh_split(client: redis.Redis, fresh_url: str, uri: str, parts: Sequence[Partition],
                         generation: int = 1) -> None:
    """Each of ``parts`` in ``client``'s ``generation`` equals a fresh projection into ``fresh_url`` (emptied first)."""
    fresh = redis.Redis.from_url(fresh_url)
    fresh.flushdb()
    for part in parts:
        Runner(config(part.projection, fresh_url, uri, partition=part.index, partitions=part.count)).run()
    for part in parts:
        live = split_content(client, part, generation)
        assert live and live == split_content(fresh, part), part.label
