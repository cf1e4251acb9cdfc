"""The Redis servers the console's Redis is made of, as the Infrastructure page lists them, with role, memory,
operations a second, replication offset and link, and which partitions each holds.

* One Redis, or a primary named by Sentinels: the primary the client talks to (through Sentinels: the one they name
  now) and each replica it reports. Every partition lives on the primary; a replica holds a copy up to its offset. A
  failover shows at the next look: another primary, the old one gone from its replicas.
* A Redis Cluster: every node the cluster knows (``CLUSTER NODES``, asked of the first node that answers), each
  primary with its slot ranges and the partitions whose hash tag falls in them, each replica with its primary. A node
  the cluster marks failed, or that does not answer from here, is listed as such with the partitions waiting on it;
  a failover shows as a replica become primary of the failed node's slots.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.crc import key_slot

from projections.connection import is_cluster
from projections.partitions import Partition

PRIMARY, REPLICA = "primary", "replica"


@dataclass(frozen=True)
class RedisNode:
    address: str  # host:port
    role: str  # PRIMARY or REPLICA
    used_bytes: int | None  # None: the node did not answer from here
    ops_per_sec: int | None
    offset: int  # replication offset (the primary's, or how far the replica has copied)
    link: str  # the primary: "up" ("failed" on a cluster that marks it so); a replica: its link to its primary
    lag_s: int | None = None  # a replica: seconds since it last acknowledged (None for the primary)
    slots: str = ""  # a cluster's primary: its slot ranges ("0-5460")
    partitions: tuple[str, ...] = ()  # the partitions it holds (a primary), by label
    primary: str = ""  # a cluster's replica: the address of its primary


def redis_nodes(client: redis.Redis, timeout: float = 0.5, partitions: Sequence[Partition] = ()) -> list[RedisNode]:
    """The servers behind ``client`` (see the module doc), each asked for its figures with ``timeout``; ``partitions``
    are placed on the primaries that hold them."""
    if is_cluster(client):
        return _cluster(client, timeout, partitions)
    c: Any = client  # a sync client (redis-py types replies as "Awaitable | value")
    replication, memory, stats = c.info("replication"), c.info("memory"), c.info("stats")
    nodes = [RedisNode(_address(client), PRIMARY if replication.get("role") == "master" else REPLICA,
                       int(memory.get("used_memory", 0)), int(stats.get("instantaneous_ops_per_sec", 0)),
                       int(replication.get("master_repl_offset", 0)), "up",
                       partitions=tuple(p.label for p in partitions))]
    kwargs = client.connection_pool.connection_kwargs
    for n in range(int(replication.get("connected_slaves", 0))):
        found = replication.get(f"slave{n}")
        if not isinstance(found, dict):
            continue
        host, port = str(found.get("ip")), int(found.get("port", 0))
        info = _ask(host, port, kwargs, timeout)
        nodes.append(RedisNode(f"{host}:{port}", REPLICA, info.used, info.ops, int(found.get("offset", 0)),
                               str(found.get("state", "")), int(found.get("lag", 0))))
    return nodes


def _cluster(client: Any, timeout: float, partitions: Sequence[Partition]) -> list[RedisNode]:
    kwargs = client.nodes_manager.connection_kwargs
    table: dict[str, dict[str, Any]] = {}
    for known in client.get_nodes():  # the first node that answers says what the cluster is made of
        node: Any = _direct(known.host, known.port, kwargs, timeout)
        try:
            table = {address.split("@")[0]: info for address, info in node.cluster("NODES").items()}
            break
        except redis.RedisError:
            continue
        finally:
            node.close()
    by_id = {info["node_id"]: address for address, info in table.items()}
    nodes = []
    for address, info in sorted(table.items(), key=lambda row: ("master" not in row[1]["flags"], row[0])):
        host, port = address.rsplit(":", 1)
        failed = "fail" in info["flags"].replace("pfail", "") or not info.get("connected", True)
        asked = Info() if failed else _ask(host, int(port), kwargs, timeout)
        if "master" in info["flags"]:
            ranges = [(int(r[0]), int(r[-1])) for r in info["slots"]]
            held = tuple(p.label for p in partitions if any(lo <= key_slot(p.tag.encode()) <= hi for lo, hi in ranges))
            nodes.append(RedisNode(address, PRIMARY, asked.used, asked.ops, asked.offset,
                                   "failed" if failed or asked.used is None else "up",
                                   slots=", ".join(f"{lo}-{hi}" for lo, hi in ranges), partitions=held))
        else:
            nodes.append(RedisNode(address, REPLICA, asked.used, asked.ops, asked.offset,
                                   "failed" if failed else asked.link, primary=by_id.get(info["master_id"], "")))
    return nodes


def _address(client: redis.Redis) -> str:
    pool: Any = client.connection_pool
    if hasattr(pool, "get_master_address"):  # through Sentinels: the primary they name now
        host, port = pool.get_master_address()
        return f"{host}:{port}"
    kwargs = pool.connection_kwargs
    return str(kwargs.get("path") or f"{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}")


@dataclass(frozen=True)
class Info:
    """What a node says of itself (None: it did not answer)."""

    used: int | None = None
    ops: int | None = None
    offset: int = 0
    link: str = "no answer"


def _direct(host: str, port: int, kwargs: dict[str, Any], timeout: float) -> redis.Redis:
    return redis.Redis(host=host, port=port, username=kwargs.get("username"), password=kwargs.get("password"),
                       socket_timeout=timeout, socket_connect_timeout=timeout)


def _ask(host: str, port: int, kwargs: dict[str, Any], timeout: float) -> Info:
    """A node's memory, operations a second, replication offset and (a replica) link to its primary, asked directly."""
    node: Any = _direct(host, port, kwargs, timeout)
    try:
        memory, stats, replication = node.info("memory"), node.info("stats"), node.info("replication")
        primary = replication.get("role") == "master"
        return Info(int(memory.get("used_memory", 0)), int(stats.get("instantaneous_ops_per_sec", 0)),
                    int(replication.get("master_repl_offset" if primary else "slave_repl_offset", 0)),
                    "up" if primary else str(replication.get("master_link_status", "")))
    except redis.RedisError:
        return Info()
    finally:
        node.close()
