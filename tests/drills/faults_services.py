"""Drills on the services the stack depends on: Redis out of memory, killed, failed over; the event store down."""
from __future__ import annotations

import json
import time

import redis
from redis.crc import key_slot

from lucent_admin.embedded import free_port
from projections import layout
from projections.readmodels import PROJECTIONS, model
from tests.drills import compare, topology
from tests.drills.drill import Context
from tests.drills.processes import RedisServer

OUTAGE_S = 30.0  # the duration for Redis out of memory and the event store down
BALLAST = "lucent-drills:ballast"  # not a Lucent key: the memory that keeps Redis over its limit
BALLAST_EVERY_S = 0.02
WINDOW_EVENTS = 60  # events the primary commits that its replica never receives


def _oom(client: redis.Redis) -> bool:
    """True once a write is refused for memory (the ballast write itself may be the last one accepted)."""
    try:
        client.append(BALLAST, "x" * 65536)
    except redis.exceptions.OutOfMemoryError:
        return True
    return False


def redis_oom(ctx: Context) -> None:
    """maxmemory set 64 KiB above what Redis uses (noeviction) and a ballast written until writes are refused, and
    written again whenever memory freed elsewhere (a list trimmed, a message consumed) lets writes in, for 30 s;
    then the limit and policy restored and the ballast deleted."""
    client = ctx.stack.client()
    saved = {name: str(topology.reply(client.config_get(name))[name]) for name in ("maxmemory", "maxmemory-policy")}
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", int(topology.reply(client.info("memory"))["used_memory"]) + 64 * 1024)
    try:
        ctx.wait(lambda: _oom(client), 10, "Redis to refuse writes for memory", interval=0.05)
        full, before = time.monotonic(), compare.checkpoint(client, "portfolio")
        probes = refused = 0
        shown = ""
        while time.monotonic() - full < OUTAGE_S:  # the fault's own duration, kept full
            probes, refused = probes + 1, refused + _oom(client)
            if not shown and time.monotonic() - full > OUTAGE_S / 2:
                shown = _health_shown(ctx)
            time.sleep(BALLAST_EVERY_S)
        ctx.note(f"while Redis refused writes, the console said: {shown}")
        ctx.note(f"Redis full for {time.monotonic() - full:.1f} s ({refused} of {probes} ballast writes refused); "
                 f"meanwhile the portfolio checkpoint went from {before} to {compare.checkpoint(client, 'portfolio')}")
    finally:
        for name, value in saved.items():
            client.config_set(name, value)
        client.delete(BALLAST)
    ctx.lifted()


def _health_shown(ctx: Context) -> str:
    """What ``manage.py projections status`` says of every projection mid-outage: each must be STALLED with the
    reason (Redis refuses writes, out of memory), never DEAD; a problem otherwise."""
    done = ctx.stack.manage("projections", "status", "--json", timeout=60.0)
    rows = json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else []
    said = {row["projection"]: f"{row['health']}: {row['health_reason']}" for row in rows}
    wrong = {name: text for name, text in said.items()
             if not text.startswith("stalled: ") or "Redis refuses writes (out of memory)" not in text}
    if not said or wrong:
        ctx.problem(f"out of memory, the projections should show STALLED with the reason; they show "
                    f"{wrong or done.stderr[-300:]}")
    return next(iter(said.values()), "")


def redis_kill9_aof(ctx: Context) -> None:
    """redis-server killed with -9 and started again on its port and directory (its append-only file)."""
    ctx.stack.redis.kill()
    ctx.stack.redis.start()
    ctx.lifted()


def eventstore_down(ctx: Context) -> None:
    """eventstore_lite killed with -9, 30 s later started again on its port and SQLite file."""
    ctx.stack.store.kill()
    time.sleep(OUTAGE_S)  # the fault's own duration
    ctx.stack.store.start()
    ctx.lifted()


def sentinel_failover(ctx: Context) -> None:
    """The stack moved onto Sentinels (a replica and three Sentinels beside its Redis, every process started again
    on ``redis+sentinel://…``; already there under ``--redis sentinel``), then the primary killed -9 under a live
    market: the Sentinels promote the replica and every process (projector, Celery workers and beat, Channels)
    follows by itself, with no restart."""
    stack = ctx.stack
    primary = stack.redis
    if stack.sentinels is None:
        stack.stop_apps()
        topology.onto_sentinels(stack)
        stack.start_apps()
    assert stack.sentinels is not None
    replica, watcher = stack.sentinels
    cut = compare.heads(stack.store.uri, PROJECTIONS)
    with stack.eventstore() as store:  # live traffic committed through the Sentinels' primary before it dies
        ctx.wait(lambda: store.count_after(cut["market"], model("market").event_types, 1000) >= WINDOW_EVENTS,
                 60, "the market to append events on the Sentinels' primary", interval=0.1)
    primary.kill()
    ctx.wait(lambda: topology.primary_of(watcher) == replica.port, 30,
             "the Sentinels to promote the replica", interval=0.1)
    ctx.note(f"primary {primary.port} killed, replica {replica.port} promoted by the Sentinels; no process restarted")
    stack.redis = replica
    ctx.lifted()


def cluster_primary_kill(ctx: Context) -> None:
    """The stack moved onto a Redis Cluster (three primaries, three replicas; every process started again on
    ``redis+cluster://…``, Celery and Channels staying on the stack's Redis, which takes no cluster; already there
    under ``--redis cluster``), its partitions projected there from the store, then the primary holding the most
    partitions killed -9 under a live market: the cluster promotes its replica and every process follows by itself."""
    stack = ctx.stack
    if not stack.cluster:
        stack.stop_apps()
        topology.onto_cluster(stack)
        stack.start_apps()  # the projections are built on the cluster from the store before it returns
    nodes, ports = stack.cluster, [node.port for node in stack.cluster]
    client = stack.client()
    holders: dict[int, int] = {}
    for name in PROJECTIONS:
        for part in layout.partitions(client, name, layout.live_generation(client, name)):
            port = client.nodes_manager.get_node_from_slot(key_slot(part.tag.encode())).port  # type: ignore[attr-defined]
            holders[port] = holders.get(port, 0) + 1
    victim = max(holders, key=lambda port: holders[port])
    cut = compare.heads(stack.store.uri, PROJECTIONS)
    with stack.eventstore() as store:  # live traffic committed on the cluster before the primary dies
        ctx.wait(lambda: store.count_after(cut["market"], model("market").event_types, 1000) >= WINDOW_EVENTS,
                 60, "the market to append events on the cluster", interval=0.1)
    next(node for node in nodes if node.port == victim).kill()
    ctx.wait(lambda: len(topology.cluster_primaries(ports)) == 3 and victim not in topology.cluster_primaries(ports),
             30, "the cluster to promote the victim's replica", interval=0.1)
    ctx.note(f"primary {victim} (holding {holders[victim]} of {sum(holders.values())} partitions) killed, its replica "
             "promoted by the cluster; no process restarted")
    ctx.lifted()


def redis_failover(ctx: Context) -> None:
    """A replica synced, then cut off (pointed at a port where nothing listens) while the primary takes WINDOW_EVENTS
    more events; the stack's processes stopped, the primary killed, the replica promoted, the stack started on it."""
    stack = ctx.stack
    primary = stack.redis
    replica = RedisServer(stack.files.root / "replica", stack.files.logs, "replica",
                          ("--replicaof", "127.0.0.1", str(primary.port))).start()
    with primary.client() as p, replica.client() as r:
        ctx.wait(lambda: topology.replicated(p, r), 30, "the replica to hold everything the primary holds", interval=0.1)
        # the link cut: the replica follows a primary that is not there; what the real one writes now is lost
        r.replicaof("127.0.0.1", str(free_port()))
        cut = compare.heads(stack.store.uri, PROJECTIONS)
        with stack.eventstore() as store:
            ctx.wait(lambda: store.count_after(cut["market"], model("market").event_types, 1000) >= WINDOW_EVENTS,
                     60, "the market to append the window's events", interval=0.1)
        compare.wait_caught_up(p, stack.store.uri, PROJECTIONS, 30)
        lost = {name: (compare.checkpoint(r, name), compare.checkpoint(p, name)) for name in PROJECTIONS}
        stack.stop_apps()
        primary.kill()
        r.replicaof("NO", "ONE")
        ctx.wait(lambda: topology.reply(r.info("replication"))["role"] == "master", 10, "the replica to be promoted", interval=0.1)
    ctx.note(f"checkpoints lost in the failover (replica's, primary's): {lost}")
    stack.redis = replica
    stack.start_apps()
    ctx.lifted()
