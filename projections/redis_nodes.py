"""The Redis servers the console's Redis is made of, as the Infrastructure page lists them: the primary the client
talks to (through Sentinels: the one they name now) and each replica it reports, with role, memory, operations a
second, replication offset and link. Every read model, so every partition, lives on the primary; a replica holds a
copy up to its offset. A failover shows at the next look: another primary, the old one gone from its replicas."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

PRIMARY, REPLICA = "primary", "replica"


@dataclass(frozen=True)
class RedisNode:
    address: str  # host:port
    role: str  # PRIMARY or REPLICA
    used_bytes: int | None  # None: the node did not answer from here
    ops_per_sec: int | None
    offset: int  # replication offset (the primary's, or how far the replica has copied)
    link: str  # the primary: "up"; a replica: its state as the primary reports it ("online", "wait_bgsave", …)
    lag_s: int | None = None  # a replica: seconds since it last acknowledged (None for the primary)


def redis_nodes(client: redis.Redis, timeout: float = 0.5) -> list[RedisNode]:
    """The primary ``client`` talks to, then each replica it reports (asked for its memory and operations a second
    with ``timeout``; one that does not answer is listed with what the primary says of it)."""
    c: Any = client  # a sync client (redis-py types replies as "Awaitable | value")
    replication, memory, stats = c.info("replication"), c.info("memory"), c.info("stats")
    nodes = [RedisNode(_address(client), PRIMARY if replication.get("role") == "master" else REPLICA,
                       int(memory.get("used_memory", 0)), int(stats.get("instantaneous_ops_per_sec", 0)),
                       int(replication.get("master_repl_offset", 0)), "up")]
    kwargs = client.connection_pool.connection_kwargs
    for n in range(int(replication.get("connected_slaves", 0))):
        found = replication.get(f"slave{n}")
        if not isinstance(found, dict):
            continue
        host, port = str(found.get("ip")), int(found.get("port", 0))
        used, ops = _ask(host, port, kwargs, timeout)
        nodes.append(RedisNode(f"{host}:{port}", REPLICA, used, ops, int(found.get("offset", 0)),
                               str(found.get("state", "")), int(found.get("lag", 0))))
    return nodes


def _address(client: redis.Redis) -> str:
    pool: Any = client.connection_pool
    if hasattr(pool, "get_master_address"):  # through Sentinels: the primary they name now
        host, port = pool.get_master_address()
        return f"{host}:{port}"
    kwargs = pool.connection_kwargs
    return str(kwargs.get("path") or f"{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}")


def _ask(host: str, port: int, kwargs: dict[str, Any], timeout: float) -> tuple[int | None, int | None]:
    """A replica's memory and operations a second, asked directly (None, None if it does not answer)."""
    node = redis.Redis(host=host, port=port, username=kwargs.get("username"), password=kwargs.get("password"),
                       socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        memory: Any = node.info("memory")
        stats: Any = node.info("stats")
        return int(memory.get("used_memory", 0)), int(stats.get("instantaneous_ops_per_sec", 0))
    except redis.RedisError:
        return None, None
    finally:
        node.close()
