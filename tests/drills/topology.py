"""Where a stack's read models live: the stack's one Redis (the default), a Redis Cluster, or a primary behind
Sentinels (``python -m tests.drills --redis cluster|sentinel``, ``make drills REDIS=…``).

On a cluster every process is given ``redis+cluster://…`` for its read models and the stack's own Redis for Celery
and Channels (``LUCENT_BROKER_URL``, ``LUCENT_CHANNELS_URL``: neither takes a cluster); the projections are built on
the cluster from the store when the processes start. Behind Sentinels every process is given
``redis+sentinel://…/lucent/0`` and the stack's Redis is the primary, with a replica and three Sentinels beside it.
The fresh projection the judge compares with always goes to a database of the stack's own Redis.
"""
from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING, Any

import redis
from redis.sentinel import MasterNotFoundError, Sentinel

from tests.drills.processes import RedisServer, SentinelServer
from tests.fixtures.topologies import cluster_port, redis_cli
from tests.waiting import wait_until

if TYPE_CHECKING:
    from tests.drills.stack import Stack

ONE, CLUSTER, SENTINEL = "one", "cluster", "sentinel"
TOPOLOGIES = (ONE, CLUSTER, SENTINEL)
CHOSEN = {"name": ONE}  # the topology of every stack of the run (``python -m tests.drills --redis NAME``)
SERVICE = "lucent"  # the Sentinels' name of the stack's primary
SETTINGS = ("LUCENT_BROKER_URL", "LUCENT_CHANNELS_URL")  # what a topology sets for every process of the stack


def reply(value: Any) -> dict[str, Any]:
    """A dict reply of the synchronous client (redis-py types every reply as possibly awaitable)."""
    return dict(value)


# -- Redis Cluster ---------------------------------------------------------------------------------------------


def onto_cluster(stack: Stack) -> list[RedisServer]:
    """Three primaries and three replicas started beside the stack (``cluster-node-timeout`` 1 s) and the stack's
    processes pointed at them (effective when they next start); the six nodes, primaries first."""
    ports = [cluster_port() for _ in range(6)]
    nodes = [RedisServer(stack.files.root / f"cluster{port}", stack.files.logs, f"cluster{port}", (
        "--cluster-enabled", "yes", "--cluster-node-timeout", "1000",
        "--cluster-config-file", str(stack.files.root / f"cluster{port}" / "nodes.conf")), port=port).start()
        for port in ports]
    stack.extra += nodes
    subprocess.run([redis_cli(), "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "1",
                    "--cluster-yes"], check=True, capture_output=True, timeout=60)
    wait_until(lambda: len(cluster_primaries(ports)) == 3, 30, what="the cluster to agree on its slots", interval=0.1)
    stack.redis_url = f"redis+cluster://{','.join(f'127.0.0.1:{p}' for p in ports[:3])}"
    stack.settings.update({"LUCENT_BROKER_URL": stack.redis.url(), "LUCENT_CHANNELS_URL": stack.redis.url()})
    stack.cluster = nodes
    return nodes


def cluster_primaries(ports: list[int]) -> list[int]:
    """The live primaries holding slots, as the first node that answers sees them."""
    for port in ports:
        try:
            table = redis.Redis(port=port, socket_timeout=1, decode_responses=True).cluster("NODES")
        except redis.RedisError:
            continue
        return sorted(int(address.split(":")[1].split("@")[0]) for address, node in table.items()
                      if "master" in node["flags"] and "fail" not in node["flags"] and node["slots"])
    return []


# -- Sentinels -------------------------------------------------------------------------------------------------


def replicated(primary: redis.Redis, replica: redis.Redis) -> bool:
    """The replica linked and holding everything the primary has written."""
    info = reply(replica.info("replication"))
    return (info.get("master_link_status") == "up" and not info.get("master_sync_in_progress")
            and int(info.get("slave_repl_offset", -1)) == int(reply(primary.info("replication"))["master_repl_offset"]))


def onto_sentinels(stack: Stack) -> tuple[RedisServer, Sentinel]:
    """A replica of the stack's Redis and three Sentinels watching it (failing over one second after the primary
    stops answering), the stack's processes pointed at the Sentinels (effective when they next start); the
    replica, and a client of the Sentinels."""
    primary = stack.redis
    replica = RedisServer(stack.files.root / "replica", stack.files.logs, "replica",
                          ("--replicaof", "127.0.0.1", str(primary.port))).start()
    sentinels = [SentinelServer(stack.files.root / f"sentinel{i}", stack.files.logs, f"sentinel{i}", primary.port,
                                SERVICE).start() for i in range(3)]
    stack.extra += [replica, *sentinels]
    with primary.client() as p, replica.client() as r:
        wait_until(lambda: replicated(p, r), 30, what="the replica to hold everything the primary holds", interval=0.1)
    watcher = Sentinel([("127.0.0.1", s.port) for s in sentinels], socket_timeout=2)
    wait_until(lambda: primary_of(watcher) == primary.port and len(watcher.discover_slaves(SERVICE)) == 1, 30,
               what="the Sentinels to see the primary and its replica", interval=0.1)
    stack.redis_url = f"redis+sentinel://{','.join(f'127.0.0.1:{s.port}' for s in sentinels)}/{SERVICE}/0"
    stack.sentinels = (replica, watcher)
    return replica, watcher


def primary_of(watcher: Sentinel) -> int:
    """The port of the primary the Sentinels name (0 while they name none)."""
    try:
        return int(watcher.discover_master(SERVICE)[1])
    except (redis.RedisError, MasterNotFoundError):
        return 0


def arrange(stack: Stack) -> None:
    """Put the stack on the run's topology before its processes first start (nothing to do for one Redis)."""
    if CHOSEN["name"] == CLUSTER:
        onto_cluster(stack)
        stack.seed()  # the template's read models are in the stack's Redis, not on the cluster
    elif CHOSEN["name"] == SENTINEL:
        onto_sentinels(stack)
