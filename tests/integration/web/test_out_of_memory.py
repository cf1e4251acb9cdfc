"""Redis out of memory under noeviction (issue 22, item 2): the projector's commit is refused whole (nothing written,
the checkpoint stands), every projection shows STALLED with the reason and the figure — on the health used by the
tiles, on /readyz and /metrics — instead of DEAD, and once Redis has room the projector catches up."""
from __future__ import annotations

import io

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings

from lucent_admin.console import health as probes
from lucent_admin.operations.recovery import projection_health
from projections import keys
from projections.eventstore import EventStore
from projections.health import HealthState
from projections.queries import Queries
from projections.simulation.appender import append_events
from projections.simulation.market import Market
from projections.status import ProjectionState
from tests.accounts import account
from tests.integration.projections.helpers import checkpoint
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_redis_out_of_memory_stalls_every_projection_with_the_reason_and_the_projector_catches_up_after(
        live_stack) -> None:
    uri = live_stack.env["EVENTSTORE_URI"]
    with override_settings(EVENTSTORE_URI=uri):
        call_command("simulate", events=1500, seed=51, users=20, stderr=io.StringIO(), stdout=io.StringIO())
    client = redis.Redis.from_url(settings.REDIS_URL)
    live_stack.start_projector()
    with EventStore(uri) as store:
        head = store.client.get_commit_position()
    wait_until(lambda: all(checkpoint(client, p) >= head - 1000 for p in ("portfolio", "risk"))
               and all(s.alive and s.state is not ProjectionState.NOT_STARTED for s in Queries(client).projection_status()),
               60, what="the projector to catch up, every projection reporting")  # (a status never written cannot say STALLED)
    client.config_set("maxmemory-policy", "noeviction")
    memory = client.info("memory")  # below what the data alone takes, so freed buffers cannot bring Redis under it
    client.config_set("maxmemory", str(int(memory["used_memory_startup"]) + int(memory["used_memory_dataset"]) // 2))
    try:
        stood = checkpoint(client, "portfolio")
        with EventStore(uri) as store:
            append_events(store, list(Market(seed=51, users=20, pairs=3, exchanges=2).events(1800))[1500:], batch_size=50)
        staff = account("staff", is_staff=True)

        def stalled() -> bool:
            ph = projection_health()
            return all(h.health.state is HealthState.STALLED and "Redis refuses writes (out of memory)" in h.health.reason
                       and "MiB used of its maxmemory" in h.health.reason for h in ph.values())

        wait_until(stalled, 30, what="every projection to show STALLED: Redis refuses writes")
        assert checkpoint(client, "portfolio") == stood  # the commit was refused whole: nothing written
        probes._looks.clear()
        staff_client = Client()
        staff_client.force_login(staff)
        with override_settings(EVENTSTORE_URI=uri):
            ready = staff_client.get("/readyz").json()
        assert ready["ready"] is True and ready["checks"]["redis"]["writable"] is False
        assert "Redis refuses writes (out of memory)" in ready["checks"]["redis"]["error"]
        metrics = staff_client.get("/metrics").content.decode()
        assert "lucent_redis_refuses_writes 1.0" in metrics
        assert 'lucent_projection_health{projection="portfolio",state="stalled"} 1.0' in metrics
    finally:
        client.config_set("maxmemory", "0")
    with EventStore(uri) as store:
        head = store.client.get_commit_position()
    wait_until(lambda: all(checkpoint(client, p) >= head - 200 for p in ("portfolio", "risk", "leaderboards"))
               and client.exists(keys.heartbeat("portfolio")), 90, what="the projector to catch up after")
    assert all(h.health.state is not HealthState.DEAD for h in projection_health().values())
