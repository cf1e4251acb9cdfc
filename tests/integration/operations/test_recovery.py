"""Automatic recovery against real parts: a live projector in a thread, the test Redis, the session's store and
a real Celery worker. Recovery's look (beat's task) is called by the test, so each look is one step."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.contrib.auth.models import Permission
from django.test import Client

from lucent_admin import bootstrap
from lucent_admin.operations import recovery, thresholds
from lucent_admin.operations.models import AuditEntry, Job, RecoveryState, ThresholdValue
from projections.eventstore import EventStore, ProposedEvent
from projections.health import HealthState
from projections.keys import KeySpace
from projections.projector.runner import Runner
from projections.queries import Queries
from projections.status import ProjectionState
from tests.fixtures.jobs import finished
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections import helpers
from tests.integration.projections.helpers import append_market, keyspace
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)  # the worker thread must see the committed job rows


def set_thresholds(**values: float) -> None:
    for name, value in values.items():
        ThresholdValue.objects.update_or_create(name=name, defaults={"value": value, "updated_by": "test"})
    thresholds.forget()


class Stuck:
    """A subscription that delivers what was in the store when it began, then nothing until stopped: what a
    projector alive but stuck sees."""

    def __init__(self, inner: Any, head: int) -> None:
        self.inner, self.head, self.stopped = inner, head, threading.Event()

    def __iter__(self) -> Iterator[Any]:
        def until_head() -> Iterator[Any]:
            for item in self.inner:
                position = getattr(item, "commit_position", None) or getattr(item, "position", 0)
                if position > self.head or getattr(item, "is_caught_up", False):
                    break
                yield item
            self.stopped.wait()
        return until_head()

    def stop(self) -> None:
        self.stopped.set()
        self.inner.stop()


class StuckRunner(Runner):
    """Its first ``stuck`` subscriptions get stuck at the head; the next ones are real."""

    stuck = 2

    def _subscribe(self) -> Any:
        sub = super()._subscribe()
        if self.status.sessions > self.stuck:
            return sub
        assert self._store is not None
        head = self._store.head(self.model.event_types)
        return Stuck(sub, head.position if head else 0)


@pytest.fixture
def live(projected: Queries) -> Iterator[list[tuple[Runner, threading.Thread]]]:
    """Runners started by the test, stopped after it."""
    running: list[tuple[Runner, threading.Thread]] = []
    yield running
    for runner, _ in running:
        runner.stop()
    for _, thread in running:
        thread.join(10)


def run_live(live: list[tuple[Runner, threading.Thread]], runner: Runner, queries: Queries) -> Runner:
    thread = threading.Thread(target=runner.run, daemon=True)
    live.append((runner, thread))
    thread.start()
    wait_until(lambda: runner.caught_up and queries.projection_status(runner.config.projection)[0].alive, 30,
               what=f"{runner.config.projection} live")
    return runner


def trade(user: str, n: int) -> ProposedEvent:
    return ProposedEvent("TradeExecuted", {
        "tradeId": f"t-recovery-{user}-{n}", "userId": user, "pair": "BTC-USD", "side": "buy", "amount": 0.1,
        "price": 100.0 + n, "amountUsd": 10.0 + n / 10, "exchange": "binance", "executedAt": "2026-01-05T10:00:00Z"})


def look_until(condition: Any, timeout: float, what: str) -> Any:
    """Let recovery look (beat's task) until ``condition()`` holds; its value."""
    def probe() -> Any:
        if not condition():
            recovery.tick()
        return condition()
    return wait_until(probe, timeout, what=what)


def health_of(projection: str) -> HealthState:
    return recovery.projection_health([projection])[projection].health.state


def resync_jobs() -> list[Job]:
    return list(Job.objects.filter(kind=Job.Kind.RESYNC).order_by("pk"))


def test_a_stalled_projector_is_resynced_once_per_cooldown_and_a_threshold_changed_on_the_settings_page_applies(
        projected: Queries, live: list[tuple[Runner, threading.Thread]], worker, admin_user, redis_client: redis.Redis) -> None:
    set_thresholds(health_stall_s=2, stall_resync_for_s=2, cooldown_s=3600)
    runner = run_live(live, StuckRunner(bootstrap.runner_config("portfolio")), projected)
    with EventStore(runner.config.eventstore_uri) as store:
        store.append("trades-recovery-1", [trade("recovery-1", i) for i in range(3)])
    wait_until(lambda: health_of("portfolio") is HealthState.STALLED, 30, what="the stuck projector to show as stalled")

    look_until(resync_jobs, 30, what="the stalled rule to queue a resync")
    (first,) = resync_jobs()
    assert first.requested_by == "system: recovery (stalled → resync)"
    done = wait_until(lambda: finished(first.pk), 40, what="the resync job")
    assert done.state == Job.State.SUCCEEDED and runner.status.sessions == 2, done.error
    act = AuditEntry.objects.get(action="recovery.act")
    assert act.outcome == "ok" and act.params["rule"] == "stalled → resync" and "stalled for" in act.params["reason"]

    # The second subscription applies the three trades, then is stuck too: stalled again, but within the
    # cooldown nothing fires.
    wait_until(lambda: projected.portfolio_summary("recovery-1"), 30, what="the three trades applied")
    with EventStore(runner.config.eventstore_uri) as store:
        store.append("trades-recovery-1", [trade("recovery-1", i) for i in range(3, 5)])
    wait_until(lambda: health_of("portfolio") is HealthState.STALLED, 30, what="stalled again")
    for _ in range(3):
        recovery.tick()
    assert len(resync_jobs()) == 1

    # The cooldown set to 0 on the Settings page applies at the next look, without a restart.
    admin_user.user_permissions.add(*Permission.objects.filter(codename="change_thresholds"))
    client = Client()
    client.force_login(admin_user)
    values = {**{k: v for k, v in thresholds.current(fresh=True).items()}, "cooldown_s": 0}
    form = {k: ("on" if thresholds.BY_NAME[k].switch and v else v) for k, v in values.items()
            if not (thresholds.BY_NAME[k].switch and not v)}
    response = client.post("/settings/", form, follow=True)
    assert "cooldown_s 3600 → 0" in response.content.decode()
    assert AuditEntry.objects.filter(action="settings.thresholds", outcome="ok").exists()
    look_until(lambda: len(resync_jobs()) == 2, 30, what="a second resync")
    wait_until(lambda: finished(resync_jobs()[1].pk), 40, what="the second resync job")
    wait_until(lambda: projected.portfolio_summary("recovery-1").trade_count == 5, 30, what="the two waiting trades")
    assert runner.status.sessions == 3
    wait_until(lambda: health_of("portfolio") is HealthState.OK, 30, what="healthy again")


def test_the_keys_of_ten_users_deleted_under_a_live_projector_are_found_and_repaired(
        projected: Queries, live: list[tuple[Runner, threading.Thread]], worker, redis_client: redis.Redis) -> None:
    set_thresholds(missing_rebuild_above=95)  # 10 of 12 users: repaired one by one, not rebuilt
    run_live(live, Runner(bootstrap.runner_config("portfolio")), projected)
    ks = KeySpace("portfolio")
    users = sorted(u.decode() for u in redis_client.zrange(ks.portfolio_values(), 0, -1))[:10]
    before = {u: redis_client.hgetall(ks.portfolio(u)) for u in users}
    assert len(users) == 10 and all(before.values())
    redis_client.delete(*[ks.portfolio(u) for u in users])

    look_until(lambda: Job.objects.filter(kind=Job.Kind.REBUILD_USERS).exists(), 30, what="the missing users to be found")
    job = Job.objects.get(kind=Job.Kind.REBUILD_USERS)
    assert sorted(job.params["users"]) == users and job.requested_by == "system: recovery (missing → repair)"
    assert wait_until(lambda: finished(job.pk), 60, what="the repair").state == Job.State.SUCCEEDED
    assert {u: redis_client.hgetall(ks.portfolio(u)) for u in users} == before
    recovery.tick()
    assert Job.objects.filter(kind=Job.Kind.REBUILD_USERS).count() == 1  # healed: nothing more to do


def test_redis_emptied_under_a_running_projector_heals_itself_and_the_overview_says_so(
        projected: Queries, live: list[tuple[Runner, threading.Thread]], admin_user, redis_client: redis.Redis) -> None:
    runner = run_live(live, Runner(bootstrap.runner_config("risk")), projected)
    recovery.tick()  # the highest checkpoint seen so far
    high = RecoveryState.objects.get(projection="risk").high_checkpoint
    assert high > 0

    redis_client.flushdb()

    wait_until(lambda: runner.caught_up and runner.status.checkpoint >= high and runner.status.cold_start_at, 60,
               what="the projector to project the history again by itself")
    look_until(lambda: RecoveryState.objects.get(projection="risk").healed_at, 30,
               what="the look to see the cold start and its end")
    assert AuditEntry.objects.filter(action="recovery.cold-start", target="risk").count() == 1
    client = Client()
    client.force_login(admin_user)
    page = client.get("/").content.decode()
    assert "risk healed itself at" in page and "after Redis lost its read models" in page
    healed = {k: v for k, v in keyspace(redis_client).items() if k.startswith("lucent:{risk}:g")}
    runner.stop()
    wait_until(lambda: not redis_client.exists(runner.lease.key), 20, what="the live projector to let go")
    redis_client.flushdb()
    fresh = Runner(bootstrap.runner_config("risk", exit_when_caught_up=True))
    fresh.run()
    assert {k: v for k, v in keyspace(redis_client).items() if k.startswith("lucent:{risk}:g")} == healed


def test_the_event_store_down_for_30_s_shows_as_stalled_with_its_lag_and_the_projector_resumes(
        redis_process: RedisProcess, store_process: StoreProcess, settings) -> None:
    settings.REDIS_URL, settings.EVENTSTORE_URI = redis_process.url, store_process.uri
    append_market(store_process.uri, 300, bad_ratio=0.0)
    client = redis.Redis.from_url(redis_process.url)
    runner = Runner(helpers.config("portfolio", redis_process.url, store_process.uri, exit_when_caught_up=False,
                                   status_interval=1.0))
    thread, errors = helpers.in_thread(runner)
    try:
        wait_until(lambda: runner.caught_up and health_of("portfolio") is HealthState.OK, 30, what="live and OK")
        store_process.kill()
        down = time.monotonic()
        stalled = wait_until(lambda: recovery.projection_health(["portfolio"])["portfolio"].health.state
                             is HealthState.STALLED and recovery.projection_health(["portfolio"])["portfolio"], 20,
                             what="the store's outage to show")
        assert "Cannot go on" in stalled.health.reason and stalled.status.alive  # stalled, not dead: it retries
        assert stalled.status.checkpoint > 0 and stalled.status.state is ProjectionState.STALLED
        wait_until(lambda: time.monotonic() - down >= 30 and runner.status.sessions > 1, 40, what="30 s of outage")
        assert thread.is_alive() and errors == []  # no crash
        store_process.start()
        head = append_market(store_process.uri, 100, start=300, bad_ratio=0.0)
        wait_until(lambda: helpers.checkpoint(client, "portfolio") >= head, 60, what="the projector to resume")
        wait_until(lambda: health_of("portfolio") is HealthState.OK, 30, what="OK again")
    finally:
        runner.stop()
        thread.join(10)
    assert errors == []


def test_with_two_person_approval_recoverys_rebuild_is_exempt_runs_and_is_audited_as_automatic(
        projected: Queries, worker, ops, settings) -> None:
    from lucent_admin.operations.actions import do_rollback
    from lucent_admin.operations.audit import Actor
    from projections.maintenance.recovery import REBUILD, Proposal

    settings.LUCENT_REBUILD_APPROVAL = True
    acted = recovery._act("leaderboards", Proposal("missing → rebuild", REBUILD, "the read models are gone"))

    assert acted.ok, acted.message
    job = Job.objects.get(pk=acted.job)
    assert job.state != Job.State.PENDING_APPROVAL  # nobody could approve the system's request
    assert "exempt from two-person approval" in job.events.order_by("pk").first().message
    audited = AuditEntry.objects.get(action="rebuild.projection")
    assert audited.actor_name == "system: recovery (missing → rebuild)" and audited.params["approval"] == "exempt (automatic)"
    assert wait_until(lambda: finished(job.pk), 60, what="the automatic rebuild to finish").state == Job.State.SUCCEEDED
    asked = do_rollback(Actor.of(ops), "leaderboards", "leaderboards")  # the projection's other jobs are not blocked
    assert asked.ok and Job.objects.get(pk=asked.job).state == Job.State.PENDING_APPROVAL  # a person's still waits
