"""The whole console on a Redis Cluster (``REDIS_URL=redis+cluster://…``, three primaries and three replicas), with
Celery and Channels on a Redis of their own (``LUCENT_BROKER_URL``, ``LUCENT_CHANNELS_URL``: neither takes a
cluster): every page answers with the partitions' figures, live pushes arrive, and a rebuild run by the Celery worker
flips the projection on the cluster; the Infrastructure page lists the cluster's nodes with their slots."""
from __future__ import annotations

import pytest
from redis.crc import key_slot

from projections.connection import connect
from projections.maintenance.generations import live_generation
from projections.partitions import Partition
from projections.queries import Queries
from tests.fixtures.live import LiveStack, every_page_answers, rebuild_from_the_console, sign_in, with_market
from tests.fixtures.topologies import ClusterSet
from tests.waiting import wait_until

pytestmark = pytest.mark.browser

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
    every_page_answers(page, cluster_stack)
    page.goto(f"{cluster_stack.url}/leaderboards/")
    for user in top:
        page.wait_for_selector(f"text={user}")

    page.goto(f"{cluster_stack.url}/infrastructure/")
    nodes = page.inner_text("[data-board='redis-nodes']")
    for port in cluster_set.primaries():
        assert f"127.0.0.1:{port}" in nodes

    rebuild_from_the_console(page, cluster_stack, "portfolio")
    assert live_generation(client, "portfolio") == 2
    assert [r.user_id for r in Queries(client).top_portfolios(5)] == top

    ready = page.request.get(f"{cluster_stack.url}/readyz").json()  # staff: each node named
    assert ready["ready"] and len(ready["checks"]["redis"]["nodes"]) == 6
    assert all(node["ok"] for node in ready["checks"]["redis"]["nodes"].values())
    metrics = page.request.get(f"{cluster_stack.url}/metrics").text()
    for port in cluster_set.primaries():
        assert f'lucent_redis_node_up{{node="127.0.0.1:{port}",role="primary"}} 1.0' in metrics

    # a primary killed: the page shows it failed and its replica promoted to its slots; the console stays whole
    victim = client.nodes_manager.get_node_from_slot(key_slot(Partition("portfolio", 0, 4).tag.encode())).port
    cluster_set.node_at(victim).kill()
    wait_until(lambda: len(cluster_set.primaries()) == 3 and victim not in cluster_set.primaries(), 30,
               what="the cluster to promote the victim's replica")

    def shown_failed() -> bool:
        page.goto(f"{cluster_stack.url}/infrastructure/")
        row = page.locator(f"[data-board='redis-nodes'] tr[data-node='127.0.0.1:{victim}']")
        return row.locator("[data-field='link']").inner_text() == "failed"

    wait_until(shown_failed, 30, what="the Infrastructure page to show the killed primary failed", interval=0.5)
    promoted = page.inner_text("[data-board='redis-nodes']")
    assert "portfolio 0/4" in promoted  # held by the promoted replica now
    wait_until(lambda: page.request.get(f"{cluster_stack.url}/readyz").json()["ready"], 30, what="ready again")
    every_page_answers(page, cluster_stack)
