"""/metrics: the console's figures in the Prometheus text format, for a scraper's token or a staff session.

Each scrape builds a fresh ``CollectorRegistry`` holding a :class:`LucentCollector` (every figure read at
that moment through ``projections.queries`` and the Job table, never kept between scrapes) and the
process-wide histogram of web request latency, observed by :func:`request_latency` (middleware) and
labelled by the resolved URL name, never the raw path, so its series stay bounded. Each section of the
collector is read on its own: one that fails (Redis down) leaves its series out and says so in
``lucent_metrics_section_failed``, and the rest is still served.
"""
from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import cast

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from lucent_admin import bootstrap
from lucent_admin.console.jobs import latest_scores
from lucent_admin.operations.models import Job
from lucent_admin.operations.recovery import projection_health
from lucent_admin.operations.roles import VIEW_CONSOLE
from projections.health import HealthState
from projections.queries import Queries
from projections.readmodels import PROJECTIONS
from projections.status import ProjectionState

log = logging.getLogger(__name__)

REQUEST_LATENCY = Histogram(
    "lucent_web_request_duration_seconds", "Web requests of this process, by resolved URL name, method and status class",
    ["view", "method", "status"], registry=None,
)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # any other is "other"
ACTIVE_JOB_STATES = (Job.State.PENDING_APPROVAL, Job.State.QUEUED, Job.State.RUNNING)


def _gauge(name: str, documentation: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


class LucentCollector(Collector):
    """Every series of /metrics, read at scrape time. A section is a method yielding metric families; add
    one to :meth:`sections`."""

    def __init__(self, queries: Queries) -> None:
        self.q = queries

    def sections(self) -> list[tuple[str, Callable[[], Iterable[Metric]]]]:
        return [("projections", self.projections), ("health", self.health), ("jobs", self.jobs), ("consistency", self.consistency),
                ("canary", self.canary), ("redis", self.redis), ("redis_nodes", self.redis_nodes), ("memory", self.memory),
                ("latency", self.latency)]

    def collect(self) -> Iterator[Metric]:
        failed = _gauge("lucent_metrics_section_failed", "1 when a section of this scrape could not be read "
                                                         "(its series are missing from it)", ["section"])
        for name, section in self.sections():
            try:
                families = list(section())
            except Exception as exc:  # noqa: BLE001 - a scrape serves what it could read
                log.warning("metrics: section %s failed: %s", name, exc)
                failed.add_metric([name], 1.0)
                continue
            failed.add_metric([name], 0.0)
            yield from families
        yield failed

    def projections(self) -> Iterable[Metric]:
        lag = _gauge("lucent_projection_lag_seconds", "Head event's time minus the last applied event's time "
                                                      "(live projectors only: a dead one has no lag)", ["projection"])
        behind = _gauge("lucent_projection_events_behind", "Events after the checkpoint, counted up to 1,000 "
                                                           "(live projectors only)", ["projection"])
        rate = _gauge("lucent_projection_throughput_events_per_second", "Events applied a second, recent "
                                                                        "(live projectors only)", ["projection"])
        state = _gauge("lucent_projection_state", "1 for the projection's current state (dead: no heartbeat), "
                                                  "0 for the others", ["projection", "state"])
        parked = _gauge("lucent_projection_parked_events", "Events parked as bad (dead-letter list)", ["projection"])
        for s in self.q.projection_status():
            current = s.effective_state
            for candidate in ProjectionState:
                state.add_metric([s.projection, candidate.value], 1.0 if candidate is current else 0.0)
            parked.add_metric([s.projection], s.parked)
            if s.alive:
                lag.add_metric([s.projection], s.lag_seconds)
                behind.add_metric([s.projection], s.events_behind)
                rate.add_metric([s.projection], s.throughput)
        return [lag, behind, rate, state, parked]

    def health(self) -> Iterable[Metric]:
        health = _gauge("lucent_projection_health", "1 for the projection's health state (over its window of "
                                                    "status samples), 0 for the others", ["projection", "state"])
        escalated = _gauge("lucent_recovery_escalated", "1 while automatic recovery of the projection has given up "
                                                        "and waits for an operator", ["projection"])
        for name, ph in projection_health().items():
            for candidate in HealthState:
                health.add_metric([name, candidate.value], 1.0 if candidate is ph.health.state else 0.0)
            escalated.add_metric([name], 1.0 if ph.escalated else 0.0)
        return [health, escalated]

    def jobs(self) -> Iterable[Metric]:
        active = _gauge("lucent_jobs", "Jobs pending approval, queued or running", ["kind", "state"])
        done = _gauge("lucent_job_progress_done", "Units done of a running job (unit: events, users, keys)",
                      ["job", "kind", "target", "unit"])
        total = _gauge("lucent_job_progress_total", "Units a running job has to do, when known", ["job", "kind", "target", "unit"])
        counts: dict[tuple[str, str], int] = {(kind, state): 0 for kind in Job.Kind.values for state in ACTIVE_JOB_STATES}
        for job in Job.objects.filter(state__in=ACTIVE_JOB_STATES).only("kind", "state", "target", "done", "total", "unit"):
            counts[(job.kind, job.state)] = counts.get((job.kind, job.state), 0) + 1
            if job.state == Job.State.RUNNING:
                labels = [str(job.pk), job.kind, job.target[:100], job.unit]
                done.add_metric(labels, job.done)
                if job.total is not None:
                    total.add_metric(labels, job.total)
        for (kind, state), n in sorted(counts.items()):
            active.add_metric([kind, state], n)
        return [active, done, total]

    def consistency(self) -> Iterable[Metric]:
        score = _gauge("lucent_consistency_score", "Latest consistency check's score (consistent ÷ checked, 0..1)", ["projection"])
        at = _gauge("lucent_consistency_checked_timestamp_seconds", "When that check finished", ["projection"])
        for projection, latest in sorted(latest_scores().items()):
            score.add_metric([projection], float(latest["score"]))
            at.add_metric([projection], latest["at"].timestamp())
        return [score, at]

    def canary(self) -> Iterable[Metric]:
        """The freshness canary per projection (append -> read model committed; ``Queries.canary``)."""
        window = _gauge("lucent_canary_freshness_seconds", "Append -> commit of the freshness canaries of the recent "
                                                           "window, nearest-rank quantiles", ["projection", "quantile"])
        last = _gauge("lucent_canary_last_freshness_seconds", "Append -> commit of the newest canary", ["projection"])
        seen = _gauge("lucent_canary_last_seen_timestamp_seconds", "When the projection last committed a canary "
                                                                   "(time() minus it grows while it sees none)", ["projection"])
        for name in PROJECTIONS:
            f = self.q.canary(name)
            if f is None:
                continue
            for quantile, ms in (("0.5", f.p50_ms), ("0.99", f.p99_ms)):
                if ms is not None:
                    window.add_metric([name, quantile], ms / 1000)
            last.add_metric([name], f.last_ms / 1000)
            seen.add_metric([name], f.last_seen_ms / 1000)
        return [window, last, seen]

    def redis(self) -> Iterable[Metric]:
        m = self.q.redis_memory()
        return [
            _metric("lucent_redis_used_memory_bytes", "Redis used_memory", m.used_bytes),
            _metric("lucent_redis_max_memory_bytes", "Redis maxmemory (0: no limit)", m.max_bytes),
            _metric("lucent_redis_rss_bytes", "Redis resident set size", m.rss_bytes),
            _metric("lucent_redis_memory_fragmentation_ratio", "Redis RSS ÷ used memory", m.fragmentation),
            _metric("lucent_redis_refuses_writes", "1 while Redis refuses writes (maxmemory reached under noeviction): "
                    "every projector is stalled", 1.0 if self.q.write_refusal() else 0.0),
        ]

    def redis_nodes(self) -> Iterable[Metric]:
        """Per Redis server (the primary and its replicas; each node of a cluster): whether it answers, its memory,
        operations a second, replication offset and the partitions it holds."""
        labels = ["node", "role"]
        up = _gauge("lucent_redis_node_up", "1 while the Redis server answers and is not marked failed", labels)
        used = _gauge("lucent_redis_node_used_memory_bytes", "A Redis server's used_memory", labels)
        ops = _gauge("lucent_redis_node_ops_per_second", "A Redis server's instantaneous operations a second", labels)
        offset = _gauge("lucent_redis_node_replication_offset", "A primary's replication offset, or how far a replica "
                                                                "has copied", labels)
        held = _gauge("lucent_redis_node_partitions", "Live partitions whose keys a primary holds", labels)
        for n in self.q.redis_nodes():
            at = [n.address, n.role]
            up.add_metric(at, 0.0 if n.used_bytes is None or n.link == "failed" else 1.0)
            if n.used_bytes is not None:
                used.add_metric(at, n.used_bytes)
            if n.ops_per_sec is not None:
                ops.add_metric(at, n.ops_per_sec)
            offset.add_metric(at, n.offset)
            if n.role == "primary":
                held.add_metric(at, len(n.partitions))
        return [up, used, ops, offset, held]

    def memory(self) -> Iterable[Metric]:
        estimate = self.q.projection_memory()
        size = _gauge("lucent_redis_projection_memory_bytes", "Memory of a projection's keys (every generation), "
                                                              "ESTIMATED from a bounded random sample of keys", ["projection"])
        count = _gauge("lucent_redis_projection_keys", "Keys of a projection, estimated likewise", ["projection"])
        for name, p in estimate.projections.items():
            size.add_metric([name], p.bytes)
            count.add_metric([name], p.keys)
        return [size, count, _metric("lucent_redis_other_keys_memory_bytes", "Memory of every other key (Celery, Channels, "
                                                                                "samples), estimated likewise", estimate.other.bytes),
                _metric("lucent_redis_memory_sampled_keys", "Keys the estimate measured (all of them: exact)",
                                     estimate.sampled_keys),
                _metric("lucent_redis_keys", "Keys in Redis's database (DBSIZE)", estimate.total_keys)]

    def latency(self) -> Iterable[Metric]:
        return [_metric("lucent_redis_ping_seconds", "Median of 5 PING round trips from this web process, at scrape",
                        self.q.redis_latency(5).p50),
                _metric("lucent_redis_query_seconds", "Median of 3 round trips of a typical query (every projection's "
                                                      "status) from this web process, at scrape", self.q.query_latency(3).p50)]


def _metric(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _refusal(request: HttpRequest) -> HttpResponse | None:
    """None when the request may read /metrics: the scraper's bearer token (compared in constant time) or a
    staff session; else a plain 401 (no login redirect: a scraper cannot follow one) or a 403 for non-staff."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, given = header.partition(" ")
        token = str(settings.LUCENT_METRICS_TOKEN)
        if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return None
        return _plain(401, "bad or unknown metrics token\n")
    user = request.user
    if user.is_authenticated:
        return None if user.has_perm(VIEW_CONSOLE) else _plain(
            403, f"metrics need the permission {VIEW_CONSOLE!r} (Operators, Viewers) or the scraper's token\n")
    return _plain(401, "metrics need a bearer token (LUCENT_METRICS_TOKEN) or a signed-in session\n")


def _plain(status: int, message: str) -> HttpResponse:
    response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="lucent-metrics"'
    return response


@login_not_required
@require_GET
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    refused = _refusal(request)
    if refused is not None:
        return refused
    registry = CollectorRegistry()
    registry.register(LucentCollector(bootstrap.queries()))
    registry.register(REQUEST_LATENCY)
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))  # the text format, or OpenMetrics if asked
    return HttpResponse(encode(registry), content_type=content_type)


def _observe(request: HttpRequest, response: HttpResponseBase, started: float) -> None:
    match = getattr(request, "resolver_match", None)
    view = match.view_name if match is not None else "unresolved"
    method = request.method if request.method in METHODS else "other"
    REQUEST_LATENCY.labels(view, method, f"{response.status_code // 100}xx").observe(time.perf_counter() - started)


@sync_and_async_middleware
def request_latency(get_response: Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]) -> object:
    """Middleware: observe each request's latency in REQUEST_LATENCY (sync or async, whichever the stack is)."""
    if iscoroutinefunction(get_response):
        respond_async = cast(Callable[[HttpRequest], Awaitable[HttpResponseBase]], get_response)

        async def middleware(request: HttpRequest) -> HttpResponseBase:
            started = time.perf_counter()
            response = await respond_async(request)
            _observe(request, response, started)
            return response
        return middleware
    respond = cast(Callable[[HttpRequest], HttpResponseBase], get_response)

    def sync_middleware(request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response = respond(request)
        _observe(request, response, started)
        return response
    return sync_middleware
