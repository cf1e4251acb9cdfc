"""The console stack for benchmarks, every part a subprocess: Redis, the event store, daphne, the projector.

    stack = Stack(tmp_dir); stack.start_services(); seed(stack, 20_000); stack.start_app(); ...; stack.stop()

``seed`` migrates, creates a superuser (USER/PASSWORD) and audit entries, appends a simulated
market ending now and projects it; ``login_cookie`` signs in through the login form.
Readiness is polled (HTTP 200, store ping, projections live), never slept for.
"""
from __future__ import annotations

import http.client
import http.cookiejar
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from lucent_admin.embedded import free_port, redis_server_command, wait_for_redis  # noqa: E402
from projections.eventstore import EventStore  # noqa: E402
from projections.queries import Queries  # noqa: E402
from projections.simulation.appender import append_events  # noqa: E402
from projections.simulation.market import MEAN_INTERVAL_MS, Market, iso_utc  # noqa: E402

USER, PASSWORD = "bench", "bench-console-pw"

SEED_USER_AND_AUDIT = f"""
from django.contrib.auth import get_user_model
from lucent_admin.operations.models import AuditEntry
u = get_user_model().objects.create_superuser({USER!r}, password={PASSWORD!r})
acts = ["risk.acknowledge", "parked.retry", "projection.rebuild", "login"]
AuditEntry.objects.bulk_create([AuditEntry(actor=u, actor_name=u.username, action=acts[i % 4],
    target=f"user-{{i % 500:04d}}/alert-{{i}}", params={{"i": i}}, outcome="ok" if i % 7 else "denied")
    for i in range(2000)])
"""


def say(message: str) -> None:
    print(f"[{Path(sys.argv[0]).stem}] {message}", file=sys.stderr, flush=True)


def store_answers(uri: str) -> bool:
    with EventStore(uri) as store:
        store.ping()
    return True


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:  # noqa: BLE001 - not ready yet
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class Stack:
    """Redis, the event store, then daphne and the live projector, all subprocesses."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.procs = tmp, list[subprocess.Popen[bytes]]()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.redis_url = f"redis://127.0.0.1:{free_port()}/0"
        self.store_uri = f"esdb://127.0.0.1:{free_port()}?Tls=false"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LUCENT_")},
            "DJANGO_SETTINGS_MODULE": "lucent_admin.settings_test", "LUCENT_EMBEDDED": "1",
            "LUCENT_DATA_DIR": str(tmp), "SECRET_KEY": "bench-console-only", "REDIS_URL": self.redis_url,
            "EVENTSTORE_URI": self.store_uri, "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
            "ALLOWED_HOSTS": "127.0.0.1,localhost", "CSRF_TRUSTED_ORIGINS": self.url, "PYTHONUNBUFFERED": "1",
        }

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.tmp / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(list(args), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def manage(self, *args: str, timeout: float = 600) -> None:
        with (self.tmp / "manage.log").open("ab") as log:
            subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, stdout=log,
                           stderr=subprocess.STDOUT, check=True, timeout=timeout)

    def start_services(self) -> None:
        self.spawn("redis", *redis_server_command(int(self.redis_url.split(":")[2].split("/")[0]), self.tmp, False))
        self.spawn("eventstore", sys.executable, "-m", "eventstore_lite", "--db", str(self.tmp / "events.sqlite3"),
                   "--listen", self.store_uri.removeprefix("esdb://").removesuffix("?Tls=false"))
        wait_for_redis(self.redis_url, timeout=20)
        wait_until(lambda: store_answers(self.store_uri), 30, "the event store")

    def start_app(self) -> None:
        daphne = str(Path(sys.executable).parent / "daphne")
        self.web = self.spawn("web", daphne, "-b", "127.0.0.1", "-p", str(self.port), "lucent_admin.asgi:application")
        self.spawn("projector", sys.executable, "manage.py", "run_projector")
        wait_until(lambda: self.healthy(), 60, "daphne /healthz")
        queries = Queries(redis.Redis.from_url(self.redis_url))
        wait_until(lambda: all(s.state == "live" and s.alive for s in queries.projection_status()), 60,
                   "every projection live in the projector")

    def healthy(self) -> bool:
        if self.web.poll() is not None:
            raise SystemExit(f"daphne exited:\n{(self.tmp / 'web.log').read_text()[-2000:]}")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        finally:
            conn.close()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def seed(stack: Stack, events: int) -> None:
    say("migrating, creating the superuser and 2,000 audit entries")
    stack.manage("migrate", "--noinput")
    stack.manage("shell", "-c", SEED_USER_AND_AUDIT)
    span = timedelta(milliseconds=events * MEAN_INTERVAL_MS * 1.3) + timedelta(minutes=1)
    market = Market(seed=11, users=500, pairs=12, exchanges=6, start=datetime.now(UTC) - span, bad_ratio=0.001)
    began = time.monotonic()
    with EventStore(stack.store_uri) as store:
        append_events(store, market.events(events))
    say(f"appended {events:,} events in {time.monotonic() - began:.1f}s (simulated clock ends {iso_utc(market.now)})")
    began = time.monotonic()
    stack.manage("run_projector", "--exit-when-caught-up")
    say(f"projected in {time.monotonic() - began:.1f}s")


def login_cookie(stack: Stack) -> str:
    """Sign in through the login form (GET for the CSRF token, POST); return the session cookie."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    html = opener.open(f"{stack.url}/login/", timeout=10).read().decode()
    token = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)[0]
    form = {"csrfmiddlewaretoken": token, "username": USER, "password": PASSWORD}
    opener.open(f"{stack.url}/login/", urllib.parse.urlencode(form).encode(), timeout=10).read()
    session = next((c.value for c in jar if c.name == "sessionid" and c.value), None)
    if session is None:
        raise RuntimeError("login failed: no session cookie")
    return session
