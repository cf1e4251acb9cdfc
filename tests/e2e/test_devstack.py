"""`make run`'s supervisor: the embedded stack comes up, serves the login page, and Ctrl-C stops it all."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from lucent_admin.embedded import free_port
from projections.queries import Queries
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def stack_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"REDIS_URL", "DATABASE_URL", "EVENTSTORE_URI", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"}
           and not k.startswith("LUCENT_")}
    env.update(
        LUCENT_EMBEDDED="1",
        LUCENT_DATA_DIR=str(data_dir),
        PORT=str(free_port()),
        LUCENT_REDIS_PORT=str(free_port()),
        LUCENT_EVENTSTORE_PORT=str(free_port()),
        LUCENT_OPERATOR_PASSWORD="e2e-operator-pw",
        LUCENT_SIMULATOR_RATE="5",
    )
    return env


def processes_of(data_dir: Path) -> list[int]:
    """PIDs of live processes started with this stack's data directory in their environment."""
    marker = f"LUCENT_DATA_DIR={data_dir}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().split(") ")[1].split()[0]
                if state != "Z":
                    pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def status_of(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    env = stack_env(tmp_path)
    for command in (["migrate", "--noinput"], ["ensure_operator"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)
    log = open(tmp_path / "stack.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "lucent_admin.devstack"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc, env
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for pid in processes_of(tmp_path):
            os.kill(pid, signal.SIGKILL)
        log.close()


def test_make_run_serves_login_and_ctrl_c_stops_every_child(stack, tmp_path: Path) -> None:
    proc, env = stack
    base = f"http://127.0.0.1:{env['PORT']}"
    log = tmp_path / "stack.log"
    wait_until(lambda: status_of(f"{base}/login/") == 200 or proc.poll() is not None, 120, "the login page")
    assert proc.poll() is None, log.read_text()[-3000:]
    wait_until(lambda: status_of(f"{base}/readyz") == 200, 60, "/readyz to report every dependency up")
    text = log.read_text()
    for name in ("redis", "eventstore", "web", "worker", "jobs", "beat", "projector", "projector2", "simulator"):
        assert re.search(rf"system\s+\| {name} started", text), f"{name} did not start:\n{text[-3000:]}"
    assert re.search(r"^\S+ eventstore\s+\| eventstore_lite listening", text, re.M), "log lines carry the process name"
    assert len(processes_of(tmp_path)) >= 9

    # an empty store got a day of market: every page has data within a minute of the login page
    queries = Queries(redis.Redis(port=int(env["LUCENT_REDIS_PORT"])))
    wait_until(lambda: queries.top_portfolios(1) and queries.daily_volume_leaders(limit=1) and queries.active_alerts(1)
               and queries.market_overview().latest_prices and queries.strategy_performance(1), 60,
               "a day of history on every page")

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0, log.read_text()[-2000:]
    wait_until(lambda: not processes_of(tmp_path), 30, "every child process to exit")
