"""A bad setting stops start-up with one line naming the variable."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lucent_admin.embedded import free_port

ROOT = Path(__file__).resolve().parents[3]


def start(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # a fresh process's environment: none of this run's settings, nor what a browser test set for itself
    base = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "DATABASE_URL", "EVENTSTORE_URI", "SECRET_KEY", "LUCENT_", "DJANGO_SETTINGS", "DJANGO_ALLOW_ASYNC_UNSAFE"))}
    base.update({"LUCENT_DATA_DIR": str(tmp_path), "LUCENT_STARTUP_WAIT": "0", "DJANGO_SETTINGS_MODULE": "lucent_admin.settings"})
    base.update(env)
    return subprocess.run(args, cwd=ROOT, env=base, capture_output=True, text=True, timeout=120)


def assert_one_line_naming(result: subprocess.CompletedProcess[str], variable: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"lucent: configuration error: {variable}:"), lines[0]


MANAGE = [sys.executable, "manage.py", "check"]


def test_missing_secret_key_with_debug_off(tmp_path: Path) -> None:
    result = start(MANAGE, tmp_path, DEBUG="0", DATABASE_URL="postgres://lucent@db.internal:5432/lucent")
    assert_one_line_naming(result, "SECRET_KEY")
    assert "set SECRET_KEY" in result.stderr


def test_all_embedded_defaults_need_no_secret(tmp_path: Path) -> None:
    result = start(MANAGE, tmp_path, DEBUG="0")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "secret_key").exists()


@pytest.mark.parametrize("uri", ["http://eventstore:2113", "esdb://", "esdb+discover://cluster:2113"])
def test_malformed_eventstore_uri(tmp_path: Path, uri: str) -> None:
    assert_one_line_naming(start(MANAGE, tmp_path, LUCENT_EMBEDDED="1", EVENTSTORE_URI=uri), "EVENTSTORE_URI")


@pytest.mark.parametrize("url", ["postgres//nohost", "mongodb://db:27017/x"])
def test_malformed_database_url(tmp_path: Path, url: str) -> None:
    assert_one_line_naming(start(MANAGE, tmp_path, LUCENT_EMBEDDED="1", DATABASE_URL=url), "DATABASE_URL")


def test_malformed_redis_url(tmp_path: Path) -> None:
    result = start(MANAGE, tmp_path, LUCENT_EMBEDDED="1", REDIS_URL="localhost:6379")
    assert_one_line_naming(result, "REDIS_URL")
    assert "redis+cluster://host:7000[,host:7001…] or redis+sentinel://" in result.stderr  # every accepted form


def test_a_cluster_needs_a_broker_and_a_channel_layer_outside_it(tmp_path: Path) -> None:
    result = start(MANAGE, tmp_path, LUCENT_EMBEDDED="1", REDIS_URL="redis+cluster://n1:7000,n2:7001")
    assert_one_line_naming(result, "LUCENT_CHANNELS_URL")
    result = start(MANAGE, tmp_path, LUCENT_EMBEDDED="1", REDIS_URL="redis+cluster://n1:7000,n2:7001",
                   LUCENT_CHANNELS_URL="redis://r:6379/1")
    assert_one_line_naming(result, "LUCENT_BROKER_URL")


def test_unreachable_redis_stops_the_web_process(tmp_path: Path) -> None:
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    result = start([sys.executable, "-c", "import lucent_admin.asgi"], tmp_path, LUCENT_EMBEDDED="1", REDIS_URL=unreachable)
    assert_one_line_naming(result, "REDIS_URL")
    assert unreachable in result.stderr


def test_unreachable_redis_stops_the_celery_worker(tmp_path: Path) -> None:
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    celery = str(Path(sys.executable).parent / "celery")
    result = start([celery, "-A", "lucent_admin", "worker", "--pool=solo", "--loglevel=ERROR"], tmp_path,
                   LUCENT_EMBEDDED="1", REDIS_URL=unreachable)
    assert result.returncode != 0
    assert f"lucent: configuration error: REDIS_URL: cannot reach {unreachable}" in result.stderr


def test_unreachable_redis_gives_a_command_one_line(tmp_path: Path) -> None:
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    result = start([sys.executable, "manage.py", "projections", "status"], tmp_path, LUCENT_EMBEDDED="1",
                   REDIS_URL=unreachable)
    assert_one_line_naming(result, "REDIS_URL")


def test_the_web_servers_own_port_is_a_trusted_origin_by_default(tmp_path: Path) -> None:
    """make run on another PORT: its pages' websockets come from that origin and must not be refused."""
    show = [sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
            "print(','.join(settings.CSRF_TRUSTED_ORIGINS))"]
    result = start(show, tmp_path, PORT="8123", LUCENT_EMBEDDED="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "http://127.0.0.1:8123,http://localhost:8123"


@pytest.mark.parametrize("count", ["3", "2048", "0"])
def test_a_partition_count_that_is_not_a_power_of_two_up_to_1024(tmp_path: Path, count: str) -> None:
    result = start(MANAGE, tmp_path, LUCENT_EMBEDDED="1", LUCENT_PARTITIONS=count)
    assert_one_line_naming(result, "LUCENT_PARTITIONS")
