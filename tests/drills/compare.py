"""The judge: every live read model, key for key, against a fresh projection of the same event store.

:func:`judge` waits until each projection's live checkpoint has reached the store's head (under the
projection's own filter), projects the store afresh into another Redis database with the product's own
:class:`~projections.projector.runner.Runner` (to the head, then it stops), and compares each projection's
LIVE generation (``lucent:{p}:generation``) with the fresh one: every key, hash field for hash field, sorted-set
member and score for member and score (scores as Redis prints them: folds are deterministic, so they must be
equal to the last digit), set members, list items and string values, plus whether a key carries a TTL (read
models carry none). Key names are compared after the generation prefix (``KeySpace.name_of``), so the live
generation's number does not matter.

What is compared is exactly the keys under ``keys.generation_pattern(p, N)``, less :data:`NOT_READ_MODELS`.
Everything else of Lucent's keyspace is not a read model and is left out by construction, each for its reason
(:func:`outside_generations`, built with ``keys.py`` and checked by :func:`check_exclusions`). Parked events are
left out with them: they are the operator's work list, and a bad event is parked the same by any projection.

Reusable by tests: nothing here knows the drills' stack; it takes a Redis client, URLs and the store's URI.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from projections import keys, layout
from projections.codec import text
from projections.connection import connect, values
from projections.eventstore import EventStore
from projections.keys import KeySpace
from projections.partitions import partition_of, partitions_of
from projections.projector.runner import Runner, RunnerConfig
from projections.readmodels import PROJECTIONS, model
from tests.waiting import wait_until

FRESH_DB = 1  # the fresh projection goes to this database of the live Redis server
FRESH_GENERATION = 1
SHOWN = 10  # differences kept for the report
VALUE_CHARS = 200

_ks = KeySpace("p", 1)
# Keys inside a generation that are not read models: never compared.
NOT_READ_MODELS: dict[str, str] = {
    _ks.name_of(_ks.checkpoint): "where the projection has got to, not a read model; the judge waits for it to reach "
                                 "the head before comparing",
    _ks.name_of(_ks.state_epoch): "a counter bumped by writers other than the projector (the cache's fence): its value "
                                  "counts repairs, which a fresh projection never made",
}


def outside_generations(p: str = "portfolio") -> dict[str, str]:
    """Lucent's keys outside every generation (so never scanned), as ``keys.py`` builds them for projection ``p``,
    and why none is a read model."""
    return {
        keys.generation_pointer(p): "the pointer to the live generation (resolved, not compared)",
        keys.generation_lease(p, 2): "the fencing token of the job writing a generation that is not live",
        keys.lease(p): "the live projector's fencing token (per process)",
        keys.heartbeat(p): "the live projector's liveness, with a TTL (health.py checks it)",
        keys.status(p): "the live projector's figures: state, lag, throughput, sessions (per run)",
        keys.health_samples(p): "a second-by-second window of status samples (per run)",
        keys.lag_history(p): "beat's lag samples (wall clock, per run)",
        keys.canary_samples(p): "freshness canaries the live projector committed (wall clock, per run)",
        keys.parked(p): "the dead-letter list of parked events: the operator's work list, not a read model",
        keys.parked_index(p): "the dead-letter list's order by position",
        keys.retry_requests(p): "operator requests to retry a parked event",
        keys.park_requests(p): "operator decisions to park a stop-policy projection's bad event",
        keys.outbox(p): "domain events waiting to be appended (emptied after the append)",
        keys.outbox_horizon(p): "where the live projector's history ended and publishing began (set once)",
        keys.resync_request(p): "an operator's request to resubscribe (consumed at once)",
        keys.flip(p): "the state of the last or current flip (a rebuild's or rollback's hand-over)",
        keys.layout(p, 2): "how a generation is split into partitions (recorded once; the judge reads both so)",
        keys.kept(p): "which generation is kept for a rollback, and since when (health.py counts generations)",
        keys.recovery(p, "<rule>"): "the recovery rules' cooldowns, attempts, locks and escalations",
        keys.job_lease(1): "the fencing token of the worker running a job",
        keys.consistency_cursor(): "where the scheduled consistency sample has got to",
        keys.infra_history("<series>"): "infrastructure samples (wall clock)",
        keys.canary_appended(): "the newest canary beat appended",
        keys.CELERY_PREFIX: "Celery's broker queues and task results",
        keys.CHANNELS_PREFIX: "the Channels layer's groups and messages",
    }


@dataclass(frozen=True)
class Difference:
    """One field (member, item, value) of one read-model key that is not the same live and fresh."""

    projection: str
    key: str  # the name after the generation prefix, e.g. ``portfolio:user-0007``
    field: str  # hash field, set/sorted-set member, list index, "" for a string; "(type)" or "(ttl)" for those
    live: str | None  # None: absent
    fresh: str | None

    def as_json(self) -> dict[str, Any]:
        return {"projection": self.projection, "key": self.key, "field": self.field,
                "live": _clip(self.live), "fresh": _clip(self.fresh)}


@dataclass
class Verdict:
    """The comparison of every read model of ``generations`` (projection -> live generation) with a fresh projection."""

    generations: dict[str, int] = field(default_factory=dict)
    keys_compared: int = 0
    differences: int = 0
    first: list[Difference] = field(default_factory=list)
    keys_differing: set[str] = field(default_factory=set)

    def add(self, difference: Difference) -> None:
        self.differences += 1
        self.keys_differing.add(f"{difference.projection}/{difference.key}")
        if len(self.first) < SHOWN:
            self.first.append(difference)


def _clip(value: str | None) -> str | None:
    return value if value is None or len(value) <= VALUE_CHARS else value[:VALUE_CHARS] + "…"


def check_exclusions() -> None:
    """Every key of :func:`outside_generations` lies outside the generations the judge scans; raise if one moved
    inside (the judge would compare it as a read model)."""
    inside = keys.generation_prefix("portfolio", FRESH_GENERATION) + ":"
    stray = [key for key in outside_generations() if key.startswith(inside)]
    if stray:
        raise AssertionError(f"operational keys inside a generation, which the judge would compare: {stray}")


# -- waiting for the live projector -------------------------------------------------------------------------


def live_counts(client: redis.Redis, projections: Sequence[str] = PROJECTIONS) -> dict[str, int]:
    """Into how many partitions each projection's live generation is split (a fresh projection is split alike)."""
    return {p: layout.recorded(client, p, live_generation(client, p)) or 1 for p in projections}


def live_generation(client: redis.Redis, projection: str) -> int:
    return layout.live_generation(client, projection)


def heads(eventstore_uri: str, projections: Sequence[str] = PROJECTIONS) -> dict[str, int]:
    """The commit position of the newest event of each projection's types (its filter's head of ``$all``)."""
    with EventStore(eventstore_uri) as store:
        return {p: (h.position if (h := store.head(model(p).event_types)) else 0) for p in projections}


def spaces(client: redis.Redis, projection: str, generation: int) -> list[KeySpace]:
    """Each partition's key space of ``generation`` (one for a projection in one partition)."""
    return [layout.space(p, generation) for p in layout.partitions(client, projection, generation)]


def space_of(client: redis.Redis, projection: str, generation: int, user: str) -> KeySpace:
    """The key space of ``user``'s partition of ``generation``."""
    found = spaces(client, projection, generation)
    return found[partition_of(user, len(found))]


def checkpoint(client: redis.Redis, projection: str) -> int:
    """The checkpoint of ``projection``'s live generation, its furthest-behind partition's (0: none)."""
    return checkpoint_of(client, projection, live_generation(client, projection))


def checkpoint_of(client: redis.Redis, projection: str, generation: int) -> int:
    """The checkpoint of ``generation``, its furthest-behind partition's (0: none)."""
    found = values(client, [ks.checkpoint for ks in spaces(client, projection, generation)])
    return min(int(text(value) or 0) for value in found)


def behind(client: redis.Redis, targets: dict[str, int]) -> dict[str, tuple[int, int]]:
    """The projections whose live checkpoint is below its target: projection -> (checkpoint, target)."""
    found = {projection: (checkpoint(client, projection), target) for projection, target in targets.items()}
    return {projection: pair for projection, pair in found.items() if pair[0] < pair[1]}


def wait_caught_up(client: redis.Redis, eventstore_uri: str, projections: Sequence[str] = PROJECTIONS,
                   timeout: float = 60.0) -> dict[str, int]:
    """Wait until every live checkpoint has reached the head the store had when the wait began; those heads."""
    targets = wait_until(lambda: heads(eventstore_uri, projections), timeout, what="the event store's head")
    lagging: dict[str, tuple[int, int]] = {}

    def level() -> bool:
        nonlocal lagging
        lagging = behind(client, targets)
        return not lagging

    try:
        wait_until(level, timeout, what="the live checkpoints to reach the store's head", interval=0.05)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; behind (checkpoint, head): {lagging}") from None
    return targets


# -- the fresh projection ------------------------------------------------------------------------------------


def fresh_url(live_url: str, db: int = FRESH_DB) -> str:
    """The URL of database ``db`` of the server ``live_url`` names."""
    base, _, tail = live_url.rpartition("/")
    if not tail.isdigit():
        raise ValueError(f"{live_url!r} does not end with a database number")
    return f"{base}/{db}"


def project_fresh(url: str, eventstore_uri: str, projections: Sequence[str] = PROJECTIONS, timeout: float = 120.0,
                  counts: dict[str, int] | None = None) -> None:
    """Project the whole store into generation 1 of ``url`` with the product's Runner, to the head, then stop.

    Incremental: what an earlier call left at ``url`` is continued from its checkpoint (flush the database for a
    projection from nothing). Each projection (each of its ``counts[p]`` partitions) in a thread of its own;
    TimeoutError names those still running.
    """
    recorder = redis.Redis.from_url(url)
    for p in projections:  # split as the live generation is, and say so as the product does
        layout.record(recorder, p, FRESH_GENERATION, (counts or {}).get(p, 1))
    recorder.close()
    runners = [Runner(RunnerConfig(part.projection, url, eventstore_uri, generation=FRESH_GENERATION,
                                   publish_status=False, exit_when_caught_up=True, backoff_max=1.0,
                                   partition=part.index, partitions=part.count))
               for p in projections for part in partitions_of(p, (counts or {}).get(p, 1))]
    failures: list[BaseException] = []
    threads = [threading.Thread(target=_run, args=(r, failures), daemon=True, name=f"fresh-{r.config.projection}")
               for r in runners]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    late = [r.tag for r, t in zip(runners, threads) if t.is_alive()]
    for runner in runners:
        runner.stop()
        runner.redis.close()
    if late:
        raise TimeoutError(f"the fresh projection of {late} did not reach the head within {timeout:g} s")
    if failures:
        raise failures[0]


def _run(runner: Runner, failures: list[BaseException]) -> None:
    try:
        runner.run()
    except BaseException as exc:  # noqa: BLE001 - re-raised by project_fresh
        failures.append(exc)


# -- the comparison ------------------------------------------------------------------------------------------


Content = dict[str, str]  # field (member, index) -> value (score), plus "(type)" and, if set, "(ttl)"


def read_generation(client: redis.Redis, projection: str, generation: int) -> dict[str, Content]:
    """Every read-model key of one generation, by its name after the generation prefix (prefixed by its partition's
    hash tag, ``portfolio.p03/``, in a generation split into partitions)."""
    out: dict[str, Content] = {}
    parts = spaces(client, projection, generation)
    for ks in parts:
        found = _read_space(client, ks)
        out.update(found if len(parts) == 1 else {f"{ks.root}/{name}": value for name, value in found.items()})
    return out


def _read_space(client: redis.Redis, ks: KeySpace) -> dict[str, Content]:
    names = sorted({n for raw in client.scan_iter(match=keys.generation_pattern(ks.root, ks.generation), count=1000)
                    if (n := ks.name_of(text(raw))) not in NOT_READ_MODELS})
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.type(ks.key(name))
        pipe.pttl(ks.key(name))
    described = pipe.execute()
    kinds = {name: text(described[2 * i]) for i, name in enumerate(names)}
    pipe = client.pipeline(transaction=False)
    readers: dict[str, Callable[[str], Any]] = {
        "hash": pipe.hgetall, "set": pipe.smembers, "string": pipe.get, "none": pipe.exists,
        "zset": lambda key: pipe.zrange(key, 0, -1, withscores=True, score_cast_func=text),
        "list": lambda key: pipe.lrange(key, 0, -1),
    }
    for name in names:
        readers.get(kinds[name], pipe.exists)(ks.key(name))
    out: dict[str, Content] = {}
    for i, (name, value) in enumerate(zip(names, pipe.execute())):
        kind = kinds[name]
        if kind == "none":
            continue  # deleted between the scan and the read
        content = _content(kind, value)
        content["(type)"] = kind
        if int(described[2 * i + 1]) >= 0:
            content["(ttl)"] = "set"
        out[name] = content
    return out


def _content(kind: str, value: Any) -> Content:
    if kind == "hash":
        return {text(k): text(v) for k, v in value.items()}
    if kind == "zset":
        return {text(member): score for member, score in value}
    if kind == "set":
        return {text(member): "" for member in value}
    if kind == "list":
        return {str(i): text(item) for i, item in enumerate(value)}
    return {"": text(value)}


def compare_generations(live: dict[str, Content], fresh: dict[str, Content], projection: str, verdict: Verdict) -> None:
    """Add to ``verdict`` every key and field of ``live`` and ``fresh`` that differs."""
    for name in sorted({*live, *fresh}):
        verdict.keys_compared += 1
        a, b = live.get(name, {}), fresh.get(name, {})
        if a == b:
            continue
        for field_name in _ordered({*a, *b}):
            if a.get(field_name) != b.get(field_name):
                verdict.add(Difference(projection, name, field_name, a.get(field_name), b.get(field_name)))


def _ordered(fields: Iterable[str]) -> list[str]:
    return sorted(fields, key=lambda f: (not f.startswith("("), f))  # "(type)" first: a whole key missing shows so


def compare(live: redis.Redis, fresh: redis.Redis, projections: Sequence[str] = PROJECTIONS) -> Verdict:
    """Each projection's live generation in ``live`` against generation 1 in ``fresh``."""
    verdict = Verdict()
    for projection in projections:
        generation = live_generation(live, projection)
        verdict.generations[projection] = generation
        compare_generations(read_generation(live, projection, generation),
                            read_generation(fresh, projection, FRESH_GENERATION), projection, verdict)
        if live_generation(live, projection) != generation:
            raise RuntimeError(f"{projection} flipped from generation {generation} while it was being compared")
    return verdict


def judge(live_url: str, eventstore_uri: str, projections: Sequence[str] = PROJECTIONS, *, flush: bool = True,
          catch_up_s: float = 60.0, fresh: str = "") -> Verdict:
    """Wait (up to ``catch_up_s``) for the live projector to reach the head, project the store afresh into ``fresh``
    (by default database :data:`FRESH_DB` of the same server; from nothing if ``flush``, else continuing the last
    call's) and compare. ``live_url`` takes every form ``REDIS_URL`` does (Sentinels, a cluster)."""
    fresh = fresh or fresh_url(live_url)
    live = connect(live_url, timeout=10)
    fresh_client = redis.Redis.from_url(fresh, socket_timeout=10)
    try:
        wait_caught_up(live, eventstore_uri, projections, catch_up_s)
        if flush:
            fresh_client.flushdb()
        project_fresh(fresh, eventstore_uri, projections, counts=live_counts(live, projections))
        return compare(live, fresh_client, projections)
    finally:
        live.close()
        fresh_client.close()
