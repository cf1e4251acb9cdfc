"""Files and secrets: a private data directory, a generated secret key shared by racing processes, no password in a log."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

from lucent_admin.embedded import free_port
from tests.integration.operations.test_configuration import MANAGE, ROOT, assert_one_line_naming, start


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_directory_and_its_files_are_created_private(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "data"
    result = start(MANAGE, tmp_path, LUCENT_DATA_DIR=str(data), LUCENT_EMBEDDED="1")
    assert result.returncode == 0, result.stderr
    assert mode(data) == 0o700
    assert mode(data / "secret_key") == 0o600
    assert mode(data / "db.sqlite3") == 0o600


def test_loose_files_of_an_earlier_run_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    for name in ("secret_key", "db.sqlite3"):
        (data / name).write_text("an-old-generated-key" if name == "secret_key" else "")
        (data / name).chmod(0o644)
    result = start(MANAGE, tmp_path, LUCENT_DATA_DIR=str(data), LUCENT_EMBEDDED="1")
    assert result.returncode == 0, result.stderr
    assert (mode(data), mode(data / "secret_key"), mode(data / "db.sqlite3")) == (0o700, 0o600, 0o600)
    assert (data / "secret_key").read_text() == "an-old-generated-key"


def test_processes_starting_at_once_share_one_generated_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECRET_KEY", "LUCENT_"))} | {"LUCENT_DATA_DIR": str(data)}
    code = "from lucent_admin import config; print(config.secret_key(False, True))"
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(8)]
    keys = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    assert len(keys) == 1 and len(keys.pop()) >= 50
    assert sorted(p.name for p in data.iterdir()) == ["secret_key"]  # no draft left behind
    assert mode(data / "secret_key") == 0o600


DEV_STACK_FILES = textwrap.dedent("""
    import os, signal, subprocess, sys
    from pathlib import Path
    from lucent_admin import devstack
    from lucent_admin.embedded import wait_for_redis
    from tests.waiting import wait_until

    data = Path(sys.argv[1])
    devstack.make_private(data)
    env = dict(os.environ)
    procs = devstack._infrastructure(env, data)
    children = [subprocess.Popen(procs[name], shell=True, cwd=devstack.ROOT, start_new_session=True)
                for name in ("redis", "eventstore")]
    try:
        wait_for_redis(env["REDIS_URL"], timeout=30)
        wait_until(lambda: (data / "events.sqlite3").exists(), timeout=30, what="the event store's file")
    finally:
        for child in children:
            os.killpg(child.pid, signal.SIGTERM)
            child.wait(timeout=30)
""")


def test_the_dev_stack_keeps_what_its_children_write_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "left-by-an-earlier-run").write_text("")
    (data / "left-by-an-earlier-run").chmod(0o644)
    result = start([sys.executable, "-c", DEV_STACK_FILES, str(data)], tmp_path, LUCENT_DATA_DIR=str(data),
                   LUCENT_REDIS_PORT=str(free_port()), LUCENT_EVENTSTORE_PORT=str(free_port()))
    assert result.returncode == 0, result.stderr
    written = sorted(p.relative_to(data).as_posix() for p in data.rglob("*"))
    assert "redis" in written and "events.sqlite3" in written and any(w.startswith("redis/") for w in written), written
    loose = {p.relative_to(data).as_posix(): oct(mode(p)) for p in [data, *data.rglob("*")]
             if mode(p) != (0o700 if p.is_dir() else 0o600)}
    assert loose == {}, loose


def test_an_unreachable_redis_is_named_without_its_password(tmp_path: Path) -> None:
    url = f"redis://:redis-secret-pw@127.0.0.1:{free_port()}/0"
    result = start([sys.executable, "-c", "import lucent_admin.asgi"], tmp_path, LUCENT_EMBEDDED="1", REDIS_URL=url)
    assert_one_line_naming(result, "REDIS_URL")
    assert "redis://:***@127.0.0.1" in result.stderr
    assert "redis-secret-pw" not in result.stdout + result.stderr


def test_the_celery_worker_names_redis_without_its_password(tmp_path: Path) -> None:
    url = f"redis://:redis-secret-pw@127.0.0.1:{free_port()}/0"
    celery = str(Path(sys.executable).parent / "celery")
    result = start([celery, "-A", "lucent_admin", "worker", "--pool=solo", "--loglevel=INFO"], tmp_path,
                   LUCENT_EMBEDDED="1", REDIS_URL=url)
    assert result.returncode != 0
    assert "redis://:***@127.0.0.1" in result.stderr
    assert "redis-secret-pw" not in result.stdout + result.stderr


def test_an_unreachable_event_store_is_named_without_its_password(tmp_path: Path, redis_url: str) -> None:
    uri = f"esdb://admin:store-secret-pw@127.0.0.1:{free_port()}?Tls=false"
    result = start([sys.executable, "-m", "lucent_admin.devstack", "wait"], tmp_path, LUCENT_EMBEDDED="1",
                   REDIS_URL=redis_url, EVENTSTORE_URI=uri)
    assert_one_line_naming(result, "EVENTSTORE_URI")
    assert "esdb://admin:***@127.0.0.1" in result.stderr
    assert "store-secret-pw" not in result.stdout + result.stderr


def test_malformed_urls_are_named_without_their_passwords(tmp_path: Path) -> None:
    for variable, value in [("DATABASE_URL", "mongodb://lucent:db-secret-pw@db:27017/x"),
                            ("EVENTSTORE_URI", "http://admin:store-secret-pw@eventstore:2113")]:
        result = start(MANAGE, tmp_path, LUCENT_EMBEDDED="1", **{variable: value})
        assert_one_line_naming(result, variable)
        assert "secret-pw" not in result.stderr and ":***@" in result.stderr, result.stderr


def test_an_unwritable_data_directory_stops_start_up_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = start(MANAGE, tmp_path, LUCENT_DATA_DIR=str(blocker / "data"), LUCENT_EMBEDDED="1")
    assert_one_line_naming(result, "LUCENT_DATA_DIR")
