"""A real Lucent stack for one drill: Redis, the event store, every process of the Procfile but the web server
(the projector, the Celery workers, beat: the commands production runs) and, when a drill needs one, the live
simulated market, each a process of its own on free ports, with a private SQLite database, data directory and logs
under one temporary directory.

A :class:`Template` is built once per suite run — a store holding a simulated market's history
(``manage.py simulate``), the live generation projected up to it (``run_projector --exit-when-caught-up``, whose
Redis is shut down cleanly so its append-only file holds it all) and a migrated database with the operator
account — and each :class:`Stack` starts from a copy of it, so no drill inherits another's Redis, store or jobs.
Operator actions go through ``manage.py`` (:meth:`Stack.manage`), as an operator would type them.
"""
from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.sentinel import Sentinel

from projections.connection import connect
from projections.eventstore import EventStore
from projections.readmodels import PROJECTIONS
from tests.drills import compare, health, topology
from tests.drills.processes import BIN, ROOT, Proc, RedisServer, StoreServer, procfile

HISTORY_EVENTS = 4000  # the template store: "a few thousand events" of a simulated market
MARKET_RATE = 20  # live events a second, as make run's simulator
OPERATOR_PASSWORD = "drills-operator-only"
READY_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class Files:
    """Where one stack (or the template) keeps its state under ``root``."""

    root: Path

    @property
    def redis(self) -> Path:
        return self.root / "redis"

    @property
    def store(self) -> Path:
        return self.root / "events.sqlite3"

    @property
    def database(self) -> Path:
        return self.root / "db.sqlite3"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


PARTITIONS = {"count": 1}  # LUCENT_PARTITIONS of every stack of the run (``python -m tests.drills --partitions N``)


def environment(files: Files, redis_url: str, eventstore_uri: str, settings: Mapping[str, str] | None = None
                ) -> dict[str, str]:
    """The variables every process of the stack runs with: the product's own settings (``settings``: those a drill
    chooses, e.g. ``LUCENT_BATCH_SIZE``), nothing drill-only."""
    inherited = {k: v for k, v in os.environ.items()
                 if not k.startswith("LUCENT_") and k not in {"REDIS_URL", "EVENTSTORE_URI", "DATABASE_URL", "SECRET_KEY"}}
    return {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "lucent_admin.settings",
        "LUCENT_EMBEDDED": "1",
        "LUCENT_DATA_DIR": str(files.data),
        "SECRET_KEY": "fault-drills-only-not-a-secret",
        "REDIS_URL": redis_url,
        "EVENTSTORE_URI": eventstore_uri,
        "DATABASE_URL": f"sqlite:///{files.database}",
        "LUCENT_OPERATOR_PASSWORD": OPERATOR_PASSWORD,
        "LUCENT_PARTITIONS": str(PARTITIONS["count"]),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(ROOT),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # the Procfile's python and celery: the venv's
        **(settings or {}),
    }


def _manage(name: str, env: dict[str, str], logs: Path, *args: str) -> Proc:
    return Proc(name, [sys.executable, "manage.py", *args], env, logs)


def _run(proc: Proc, timeout: float) -> None:
    status = proc.start().wait_exit(timeout)
    if status != 0:
        raise RuntimeError(f"{' '.join(proc.argv[1:])} exited with {status}:\n{proc.tail()}")


class Template:
    """The starting state every stack copies (see the module doc)."""

    def __init__(self, root: Path) -> None:
        self.files = Files(root)

    def build(self) -> Template:
        files = self.files
        files.data.mkdir(parents=True, exist_ok=True)
        redis_server = RedisServer(files.redis, files.logs).start()
        store = StoreServer(files.store, files.logs).start()
        try:
            env = environment(files, redis_server.url(), store.uri)
            _run(_manage("migrate", env, files.logs, "migrate", "--noinput"), 300)
            _run(_manage("operator", env, files.logs, "ensure_operator"), 120)
            _run(_manage("history", env, files.logs, "simulate", "--events", str(HISTORY_EVENTS), "--start", "now-20m",
                         "--bad-ratio", "0.002", "--seed", "7"), 300)
            _run(_manage("projector", env, files.logs, "run_projector", "--exit-when-caught-up"), 300)
            redis_server.client().shutdown()  # the append-only file is complete once it has exited
            redis_server.wait_exit(30)
        finally:
            redis_server.kill()
            store.stop()
        return self

    def copy_to(self, root: Path) -> Files:
        shutil.copytree(self.files.root, root, ignore=shutil.ignore_patterns("logs"))
        return Files(root)


@dataclass(frozen=True)
class JobRow:
    """A job as the database holds it (read directly: polling through manage.py would cost a Django start each)."""

    id: int
    kind: str
    target: str
    state: str
    phase: str
    error: str
    worker: str  # the lease token of the run that last started it: host:pid:thread

    @property
    def finished(self) -> bool:
        return self.state in {"succeeded", "failed", "cancelled"}


class Stack:
    """One drill's stack, started from a copy of the template (see the module doc)."""

    def __init__(self, template: Template, root: Path, settings: Mapping[str, str] | None = None) -> None:
        self.files = template.copy_to(root)
        self.settings = dict(settings or {})
        self.redis = RedisServer(self.files.redis, self.files.logs)
        self.store = StoreServer(self.files.store, self.files.logs)
        self.redis_url = ""  # what the processes are given as REDIS_URL, if not the server's own (Sentinels, a cluster)
        self.extra: list[Proc] = []  # servers a drill added (a replica, Sentinels), stopped with the stack
        self.cluster: list[RedisServer] = []  # the cluster's nodes, primaries first, once the stack is on one
        self.sentinels: tuple[RedisServer, Sentinel] | None = None  # the replica and the Sentinels, if any
        self.apps: dict[str, Proc] = {}  # the Procfile's processes by their Procfile name
        self.market: Proc | None = None
        self._client: tuple[str, redis.Redis] | None = None
        self._seed = 100

    # -- wiring ----------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return environment(self.files, self.live_url, self.store.uri, self.settings)

    @property
    def live_url(self) -> str:
        """Where the read models live: the stack's server, or what ``redis_url`` names (Sentinels, a cluster)."""
        return self.redis_url or self.redis.url()

    def client(self) -> redis.Redis:
        """A client of the Redis the read models live in (:attr:`live_url`; database 0: the product's), rebuilt when
        that changed."""
        where = self.redis_url or str(self.redis.port)
        if self._client is None or self._client[0] != where:
            self._client = (where, connect(self.redis_url, timeout=10) if self.redis_url else self.redis.client())
        return self._client[1]

    @contextmanager
    def eventstore(self) -> Iterator[EventStore]:
        with EventStore(self.store.uri) as store:
            yield store

    @property
    def projector(self) -> Proc:
        return self.apps["projector"]

    def worker_running(self, job_id: int) -> Proc:
        """The Celery worker (a Procfile process) whose pool runs job ``job_id``: the process group of the pid its
        lease token names (``host:pid:thread``, jobs.run)."""
        token = self.job(job_id).worker
        try:
            group = os.getpgid(int(token.split(":")[1]))
            return next(proc for proc in self.apps.values() if proc.popen is not None and proc.popen.pid == group)
        except (IndexError, ValueError, ProcessLookupError, StopIteration):
            raise RuntimeError(f"no process of the stack runs job {job_id} (its lease token: {token!r})") from None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> Stack:
        self.redis.start()
        self.store.start()
        topology.arrange(self)  # the run's topology (``--redis``): one Redis, a cluster, Sentinels
        self.start_apps()
        return self

    def seed(self) -> None:
        """Project the store into where the read models live (a cluster just created) up to its head, with the
        product's defaults but the topology's own settings (a drill's, e.g. a commit per event, would make it
        minutes), as a platform fills a new Redis before it starts its processes."""
        settings = {k: v for k, v in self.settings.items() if k in topology.SETTINGS}
        _run(_manage("seed", environment(self.files, self.live_url, self.store.uri, settings), self.files.logs,
                     "run_projector", "--exit-when-caught-up"), 300)

    def start_apps(self) -> None:
        """Every process of the Procfile but the web server (projector, workers, beat), as production runs them;
        returns once all projections are live at the head and every worker answers."""
        for name in procfile():
            self.start_app(name)
        self.wait_ready()

    def start_app(self, name: str) -> Proc:
        """(Re)start the Procfile's process ``name``, its command run by a shell with the venv first on PATH."""
        self.apps[name] = Proc(name, ["sh", "-c", f"exec {procfile()[name]}"], self.env, self.files.logs).start()
        return self.apps[name]

    def start_member(self, name: str) -> Proc:
        """Another projector member beside the Procfile's (its ``projector`` command under the name ``name``), as
        a platform scaling the projector line runs it."""
        self.apps[name] = Proc(name, ["sh", "-c", f"exec {procfile()['projector']}"], self.env, self.files.logs).start()
        return self.apps[name]

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        compare.wait_caught_up(self.client(), self.store.uri, PROJECTIONS, timeout)
        problems = health.alive_problems(self, max(5.0, deadline - time.monotonic()))
        if problems:
            raise RuntimeError(f"the stack did not come up: {'; '.join(problems)}")

    def stop_apps(self) -> None:
        """The Procfile's processes (SIGTERM: they finish what is in flight), as an operator stops the stack."""
        for proc in self.apps.values():
            proc.stop()

    def stop(self) -> None:
        self.stop_market()
        self.stop_apps()
        if self._client is not None:
            self._client[1].close()
        self.redis.stop()
        for proc in self.extra:
            proc.stop()
        self.store.stop()

    # -- the live market -------------------------------------------------------

    def start_market(self, rate: int = MARKET_RATE) -> Proc:
        """``manage.py simulate --live`` (no history: the store has one), with a seed of its own."""
        self._seed += 1
        self.market = _manage("market", self.env, self.files.logs, "simulate", "--live", "--rate", str(rate),
                              "--seed", str(self._seed)).start()
        return self.market

    def stop_market(self) -> None:
        if self.market is not None:
            self.market.stop()
            self.market = None

    # -- the operator ----------------------------------------------------------

    def manage(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """``manage.py ARGS`` as the operator types it; its output is kept in logs/operator.log."""
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        self.files.logs.mkdir(parents=True, exist_ok=True)
        with (self.files.logs / "operator.log").open("a") as log:
            log.write(f"==== $ manage.py {' '.join(args)}  -> exit {done.returncode}\n{done.stdout}{done.stderr}\n")
        return done

    def queue(self, *args: str) -> int:
        """Run an operator command that queues a job; the job's id (RuntimeError if it queued none)."""
        done = self.manage(*args)
        found = re.search(r"\bjob (\d+)", done.stdout)
        if done.returncode != 0 or found is None:
            raise RuntimeError(f"manage.py {' '.join(args)} queued no job (exit {done.returncode}): "
                               f"{(done.stdout + done.stderr).strip()[-600:]}")
        return int(found[1])

    def jobs(self) -> list[JobRow]:
        with closing(sqlite3.connect(f"file:{self.files.database}?mode=ro", uri=True, timeout=10)) as db:
            rows = db.execute("SELECT id, kind, target, state, phase, error, worker FROM operations_job ORDER BY id").fetchall()
        return [JobRow(*row) for row in rows]

    def job(self, job_id: int) -> JobRow:
        return next(j for j in self.jobs() if j.id == job_id)

    def busy_jobs(self) -> list[JobRow]:
        """Jobs queued or running (a healing stack has none left)."""
        return [j for j in self.jobs() if j.state in {"queued", "running"}]
