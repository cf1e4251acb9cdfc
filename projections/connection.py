"""How a Redis URL becomes a client: one server, a Redis Cluster, or the primary a set of Sentinels names.

The accepted forms (:data:`FORMS`):

* ``redis://[user:password@]host:port[/db]``, ``rediss://…`` (TLS), ``unix:///path.sock`` — one server;
* ``redis+cluster://[user:password@]host:port[,host:port…]`` — a Redis Cluster, found from any of its nodes
  (redis-py's ``RedisCluster``; database 0 only);
* ``redis+sentinel://[user:password@]host:port[,host:port…]/service_name[/db]`` — the primary the Sentinels
  know as ``service_name``, asked again on every new connection, so a client follows a failover by itself (the
  password, if any, is the data nodes'; the Sentinels are reached without one).

:func:`connect` is the only place a client is built from a URL, on the engine's side and on Django's (its
``bootstrap`` calls it); :func:`parse` checks a URL and says what is wrong with it, naming the variable.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import AskError, ClusterError, RedisClusterException, TryAgainError
from redis.sentinel import Sentinel

from projections.errors import ConfigurationError

SINGLE, CLUSTER, SENTINEL = "single", "cluster", "sentinel"
# Redis away for a while, to wait out and retry: a server down or slow, a cluster failing over (CLUSTERDOWN), a slot
# migrating (TRYAGAIN; MOVED and ASK past the client's own retries), a slot no node holds yet, no node reachable.
AWAY: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError, ClusterError, TryAgainError, AskError,
                                     RedisClusterException)
FORMS = ("redis://host:6379/0, rediss://host:6379/0, unix:///path.sock, "
         "redis+cluster://host:7000[,host:7001…] or redis+sentinel://host:26379[,host:26380…]/service_name[/db]")
_SCHEMES = {"redis": SINGLE, "rediss": SINGLE, "unix": SINGLE, "redis+cluster": CLUSTER, "rediss+cluster": CLUSTER,
            "redis+sentinel": SENTINEL, "rediss+sentinel": SENTINEL}


@dataclass(frozen=True)
class Target:
    """What a Redis URL names."""

    url: str
    kind: str  # SINGLE, CLUSTER or SENTINEL
    nodes: tuple[tuple[str, int], ...] = ()  # a cluster's seed nodes, or the Sentinels
    service: str = ""  # the Sentinels' name of the primary
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse(url: str, variable: str = "REDIS_URL") -> Target:
    """What ``url`` names; a ConfigurationError naming ``variable`` and the accepted forms if it is not one of them."""
    def bad(why: str) -> ConfigurationError:
        return ConfigurationError(variable, f"{url!r} {why}; use {FORMS}")

    scheme, sep, rest = url.partition("://")
    kind = _SCHEMES.get(scheme.lower()) if sep else None
    if kind is None:
        raise bad("is not a Redis URL")
    if kind == SINGLE:
        parsed = urlparse(url)
        if not (parsed.hostname or parsed.path):
            raise bad("names no server")
        try:
            parsed.port  # noqa: B018 - raises on a non-numeric port
        except ValueError:
            raise bad("has a bad port") from None
        return Target(url, SINGLE, tls=scheme.lower() == "rediss")
    credentials, at, hosts_and_path = rest.rpartition("@")
    if not at:
        credentials, hosts_and_path = "", rest
    hosts, _, path = hosts_and_path.partition("/")
    nodes = tuple(_node(h, bad) for h in hosts.split(",") if h.strip())
    if not nodes:
        raise bad("names no node")
    username, _, password = credentials.partition(":") if ":" in credentials else ("", "", credentials)
    parts = [unquote(p) for p in path.split("/") if p]
    service, db = "", 0
    if kind == SENTINEL:
        if not parts:
            raise bad("names no service (the Sentinels' name of the primary, after the hosts)")
        service, parts = parts[0], parts[1:]
    if parts:
        if len(parts) > 1 or not parts[0].isdigit() or (kind == CLUSTER and parts[0] != "0"):
            raise bad("has a bad database (a Redis Cluster has database 0 only)" if kind == CLUSTER else "has a bad database")
        db = int(parts[0])
    return Target(url, kind, nodes, service, db, unquote(username) or None, unquote(password) or None,
                  scheme.lower().startswith("rediss"))


def _node(text: str, bad: Any) -> tuple[str, int]:
    host, colon, port = text.strip().rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise bad(f"has a bad node {text.strip()!r} (host:port)")
    return host.strip("[]"), int(port)


def connect(url: str, timeout: float = 5.0, connect_timeout: float = 2.0, **options: Any) -> redis.Redis:
    """A client of ``url`` (see the module doc) whose calls give up after ``timeout`` seconds. A cluster's client is
    a ``RedisCluster``: it routes each command to the node holding its slot and follows MOVED and ASK."""
    target = parse(url)
    common: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": connect_timeout, **options}
    if target.kind == SINGLE:
        return redis.Redis.from_url(url, **common)
    auth: dict[str, Any] = {"username": target.username, "password": target.password}
    if target.kind == CLUSTER:
        seeds = [ClusterNode(h, p) for h, p in target.nodes]  # type: ignore[no-untyped-call]
        cluster = RedisCluster(startup_nodes=seeds, ssl=target.tls, **auth, **common)
        return cluster  # type: ignore[return-value]  # the commands this product sends, routed per slot
    watchers = {"socket_timeout": connect_timeout, "ssl": target.tls}
    sentinel = Sentinel(list(target.nodes), sentinel_kwargs=watchers, socket_timeout=timeout)  # type: ignore[no-untyped-call]
    primary: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        target.service, db=target.db, ssl=target.tls, **auth, **common)
    return primary


def is_cluster(client: Any) -> bool:
    """True for a Redis Cluster's client, where a script or a transaction must stay within one slot. Such a client is
    not shared between a member's runners (each connects its own): redis-py's refresh of a cluster's topology races
    threads sharing one."""
    return isinstance(client, RedisCluster)


def values(client: redis.Redis, names: list[str]) -> list[Any]:
    """GET of each of ``names`` in one round trip (per node on a cluster, where MGET must stay within one slot)."""
    if is_cluster(client):
        return list(client.mget_nonatomic(names))  # type: ignore[attr-defined]
    return list(client.mget(names))  # type: ignore[arg-type]


class Together:
    """Reads made at one instant: one MULTI/EXEC on one Redis. On a cluster a MULTI must stay within one slot, so the
    reads are grouped by slot, each group one MULTI/EXEC (at one instant within its slot, which is what a partition's
    checkpoint and its entities need), and since redis-py leaves a cluster transaction's replies raw, the few reply
    shapes used here are parsed by hand as a plain pipeline would."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any], Any]] = []

    def _add(self, name: str, parse: Any, *args: Any, **kwargs: Any) -> Together:
        self.calls.append((name, args, kwargs, parse))
        return self

    def get(self, key: str) -> Together:
        return self._add("get", None, key)

    def hget(self, key: str, name: str) -> Together:
        return self._add("hget", None, key, name)

    def hmget(self, key: str, names: list[str]) -> Together:
        return self._add("hmget", None, key, names)

    def hgetall(self, key: str) -> Together:
        return self._add("hgetall", _pairs, key)

    def exists(self, key: str) -> Together:
        return self._add("exists", None, key)

    def zscore(self, key: str, member: str) -> Together:
        return self._add("zscore", _score, key, member)

    def zrange(self, key: str, start: int, end: int, withscores: bool = False) -> Together:
        return self._add("zrange", _scored if withscores else None, key, start, end, withscores=withscores)

    def execute(self) -> list[Any]:
        if not is_cluster(self.client):
            pipe = self.client.pipeline(transaction=True)
            for name, args, kwargs, _ in self.calls:
                getattr(pipe, name)(*args, **kwargs)
            return list(pipe.execute())
        slot_of = self.client.keyslot  # type: ignore[attr-defined]
        groups: dict[int, list[int]] = {}
        for i, (_, args, _, _) in enumerate(self.calls):
            groups.setdefault(slot_of(args[0]), []).append(i)
        out: list[Any] = [None] * len(self.calls)
        for indices in groups.values():
            pipe = self.client.pipeline(transaction=True)
            for i in indices:
                name, args, kwargs, _ = self.calls[i]
                getattr(pipe, name)(*args, **kwargs)
            for i, reply in zip(indices, pipe.execute()):
                parse = self.calls[i][3]
                out[i] = parse(reply) if parse is not None and isinstance(reply, list | bytes | str) else reply
        return out


def _pairs(reply: Any) -> dict[Any, Any]:
    return reply if isinstance(reply, dict) else dict(zip(reply[0::2], reply[1::2]))


def _scored(reply: list[Any]) -> list[tuple[Any, float]]:
    if reply and isinstance(reply[0], tuple | list):
        return [(m, float(s)) for m, s in reply]
    return [(m, float(s)) for m, s in zip(reply[0::2], reply[1::2])]


def _score(reply: Any) -> float:
    return float(reply)


def primaries_info(client: redis.Redis, section: str) -> dict[str, dict[str, Any]]:
    """INFO ``section`` of each primary holding data, by address: the one server (or the Sentinels' primary), or
    every primary of a cluster."""
    if is_cluster(client):
        found: Any = client.info(section, target_nodes=RedisCluster.PRIMARIES)
        return {str(name): dict(info) for name, info in found.items()}
    return {"": dict(client.info(section))}  # type: ignore[arg-type]
