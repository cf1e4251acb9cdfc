"""The whole console on a Redis Cluster (``REDIS_URL=redis+cluster://…``, three primaries and three replicas), with
Celery and Channels on a Redis of their own (``LUCENT_BROKER_URL``, ``LUCENT_CHANNELS_URL``: neither takes a
cluster): every page answers with the partitions' figures, live pushes arrive, and a rebuild run by the Celery worker
flips the projection on the cluster; the Infrastructure page lists the cluster's nodes with their slots."""
from __future__ import annotations

import pytest

from projections.connection import connect
from projections.maintenance.generations import live_generation
from projections.queries import Queries
from tests.fixtures.live import LiveStack, sign_in, with_market
from tests.fixtures.topologies import ClusterSet

pytestmark = pytest.mark.browser

PAGES = ["/", "/leaderboards/", "/risk/", "/market/", "/projections/", "/shards/", "/jobs/", "/consistency/",
         "/infrastructure/", "/settings/", "/audit/"]


@pytest.fixture
def cluster_stack(transactional_db, tmp_path, own_store_uri, redis_process, cluster_set: ClusterSet):
    stack = LiveStack(tmp_path, own_store_uri)
    stack.env.update({"REDIS_URL": cluster_set.url, "LUCENT_BROKER_URL": redis_process.url,
                      "LUCENT_CHANNELS_URL": redis_process.url, "LUCENT_PARTITIONS": "4"})
    try:
        stack.start_web()
        yield stack
    finally:
        stack.stop()


def test_the_console_runs_whole_on_a_cluster(cluster_stack: LiveStack, cluster_set: ClusterSet, page) -> None:
    client = connect(cluster_set.url)
    with_market(cluster_stack, events=2000, seed=47, users=20)
    top = [r.user_id for r in Queries(client).top_portfolios(5)]
    assert len(top) == 5
    sign_in(page, cluster_stack, "chief", "browser-pw-9")
    page.wait_for_selector("body[data-live='on']", state="attached")
    for path in PAGES:
        response = page.goto(f"{cluster_stack.url}{path}")
        assert response is not None and response.status == 200, path
        assert "Traceback" not in page.content() and "Server Error" not in page.content(), path
    page.goto(f"{cluster_stack.url}/leaderboards/")
    for user in top:
        page.wait_for_selector(f"text={user}")

    page.goto(f"{cluster_stack.url}/infrastructure/")
    nodes = page.inner_text("[data-board='redis-nodes']")
    for port in cluster_set.primaries():
        assert f"127.0.0.1:{port}" in nodes

    page.goto(f"{cluster_stack.url}/projections/")
    page.click("#p-portfolio a[data-action='rebuild']")
    page.fill("#id_confirm", "portfolio")
    page.click("text=Start the rebuild")
    page.wait_for_url("**/jobs/*/")
    page.wait_for_selector("[data-field='job-state']:has-text('succeeded')", timeout=90_000)  # pushed live
    assert live_generation(client, "portfolio") == 2
    assert [r.user_id for r in Queries(client).top_portfolios(5)] == top
