"""The Redis URLs the console accepts (one server, a Redis Cluster, a Sentinel-managed primary), and what Celery
and Channels are given for each."""
from __future__ import annotations

import pytest

from lucent_admin import config
from projections.connection import CLUSTER, SENTINEL, SINGLE, parse
from projections.errors import ConfigurationError


def test_one_server_a_cluster_and_sentinels() -> None:
    assert parse("redis://cache:6379/2").kind == SINGLE and parse("rediss://cache:6380/0").tls
    cluster = parse("redis+cluster://:s3cret@n1:7000,n2:7001,[::1]:7002")
    assert (cluster.kind, cluster.nodes, cluster.password, cluster.db) == \
           (CLUSTER, (("n1", 7000), ("n2", 7001), ("::1", 7002)), "s3cret", 0)
    sentinel = parse("redis+sentinel://ops:pw@s1:26379,s2:26380/lucent-primary/3")
    assert (sentinel.kind, sentinel.nodes, sentinel.service, sentinel.db, sentinel.username, sentinel.password) == \
           (SENTINEL, (("s1", 26379), ("s2", 26380)), "lucent-primary", 3, "ops", "pw")


@pytest.mark.parametrize(("url", "why"), [
    ("localhost:6379", "is not a Redis URL"),
    ("http://cache:6379", "is not a Redis URL"),
    ("redis://cache:port/0", "has a bad port"),
    ("redis+cluster://", "names no node"),
    ("redis+cluster://n1:7000/3", "a Redis Cluster has database 0 only"),
    ("redis+cluster://n1", "has a bad node 'n1' (host:port)"),
    ("redis+sentinel://s1:26379", "names no service"),
    ("redis+sentinel://s1:26379/primary/x", "has a bad database"),
])
def test_a_bad_url_names_the_variable_the_problem_and_every_accepted_form(url: str, why: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse(url, "LUCENT_BROKER_URL")
    message = str(caught.value)
    assert message.startswith("LUCENT_BROKER_URL: ") and why in message
    assert "redis+cluster://host:7000" in message and "redis+sentinel://host:26379" in message


def test_celery_and_channels_follow_the_sentinels_and_refuse_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    sentinel = "redis+sentinel://:pw@s1:26379,s2:26380/lucent/1"
    monkeypatch.delenv("LUCENT_BROKER_URL", raising=False)
    broker = config.service_url("LUCENT_BROKER_URL", sentinel, "Celery")
    assert config.celery_url(broker) == ("sentinel://:pw@s1:26379/1;sentinel://:pw@s2:26380/1", {"master_name": "lucent"})
    assert config.channel_host(broker) == {"sentinels": [("s1", 26379), ("s2", 26380)], "master_name": "lucent", "db": 1,
                                           "password": "pw", "username": None}
    assert config.celery_url(config.service_url("LUCENT_BROKER_URL", "redis://r:6379/0", "Celery")) == \
           ("redis://r:6379/0", {})
    with pytest.raises(ConfigurationError, match="LUCENT_BROKER_URL: Celery cannot use a Redis Cluster, and REDIS_URL is"):
        config.service_url("LUCENT_BROKER_URL", "redis+cluster://n1:7000", "Celery")
    monkeypatch.setenv("LUCENT_BROKER_URL", "redis://broker:6379/0")
    assert config.service_url("LUCENT_BROKER_URL", "redis+cluster://n1:7000", "Celery").url == "redis://broker:6379/0"
    monkeypatch.setenv("LUCENT_BROKER_URL", "redis+cluster://n1:7000")
    with pytest.raises(ConfigurationError, match="LUCENT_BROKER_URL: Celery cannot use a Redis Cluster; use a redis://"):
        config.service_url("LUCENT_BROKER_URL", "redis://r:6379/0", "Celery")
