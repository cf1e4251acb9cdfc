"""The store as a process: CLI, clean stop, and durability across ``kill -9``."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from esdbclient import EventStoreDBClient, StreamState

from .helpers import events, new_stream

ROOT = Path(__file__).resolve().parents[3]
BATCH = 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StoreProcess:
    """``python -m eventstore_lite`` in a subprocess, started and awaited by its log line."""

    def __init__(self, db: Path, port: int) -> None:
        self.port = port
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "eventstore_lite", "--listen", f"127.0.0.1:{port}", "--db", str(db)],
            env=env, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stderr is not None
        self.first_line = self.proc.stderr.readline().strip()  # blocks until it listens (or dies)

    @property
    def uri(self) -> str:
        return f"esdb://127.0.0.1:{self.port}?Tls=false"

    def terminate(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "events.sqlite3"


@pytest.fixture
def process(db: Path) -> Iterator[StoreProcess]:
    store = StoreProcess(db, _free_port())
    yield store
    if store.proc.poll() is None:
        store.kill()


def test_cli_logs_where_it_listens_and_stops_cleanly_on_sigterm(process: StoreProcess, db: Path) -> None:
    assert process.first_line == f"eventstore_lite listening on 127.0.0.1:{process.port} (db {db})"
    client = EventStoreDBClient(process.uri)
    client.append_events(new_stream(), current_version=StreamState.NO_STREAM, events=events(1))
    client.close()

    code, _ = process.terminate()

    assert code == 0


@pytest.mark.parametrize(
    ("args", "option"),
    [(["--listen", "nowhere", "--db", "x"], "--listen"), (["--listen", "127.0.0.1:2113"], "--db"),
     (["--db", "x", "--max-append-size", "-3"], "--max-append-size"), (["--db", "x", "--bogus"], "--bogus")],
)
def test_bad_arguments_give_one_line_naming_the_option(args: list[str], option: str) -> None:
    result = subprocess.run([sys.executable, "-m", "eventstore_lite", *args], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert option in result.stderr


def test_a_busy_port_is_reported(process: StoreProcess, tmp_path: Path) -> None:
    second = StoreProcess(tmp_path / "other.sqlite3", process.port)
    assert second.proc.wait(timeout=30) == 1
    assert "cannot listen" in second.first_line


def test_acknowledged_appends_survive_kill_9_and_positions_resume(process: StoreProcess, db: Path) -> None:
    stream = new_stream("durable")
    acknowledged: list[int] = []
    enough = threading.Event()
    stop = threading.Event()

    def append_until_killed() -> None:
        client = EventStoreDBClient(process.uri)
        try:
            while not stop.is_set():
                version = StreamState.NO_STREAM if not acknowledged else len(acknowledged) * BATCH - 1
                acknowledged.append(client.append_events(stream, current_version=version, events=events(BATCH)))
                if len(acknowledged) >= 30:
                    enough.set()
        except Exception:  # noqa: BLE001 - the server was killed mid-append
            pass
        finally:
            client.close()

    writer = threading.Thread(target=append_until_killed, daemon=True)
    writer.start()
    assert enough.wait(timeout=60)
    process.kill()  # SIGKILL, possibly mid-transaction
    stop.set()
    writer.join(timeout=30)

    reopened = StoreProcess(db, _free_port())
    client = EventStoreDBClient(reopened.uri)
    try:
        stored = client.get_stream(stream)
        assert len(stored) >= len(acknowledged) * BATCH  # nothing acknowledged was lost
        assert len(stored) % BATCH == 0  # batches are all-or-nothing
        assert [e.stream_position for e in stored] == list(range(len(stored)))
        last = stored[-1].commit_position
        assert last is not None and last >= acknowledged[-1]

        position = client.append_events(stream, current_version=len(stored) - 1, events=events(1))

        assert position > last
    finally:
        client.close()
        assert reopened.terminate()[0] == 0


def test_concurrent_single_appends_acknowledged_before_kill_9_all_survive(process: StoreProcess, db: Path) -> None:
    """Group commit: an append is acknowledged only once its shared transaction is durable."""
    writers = 8
    acknowledged: list[tuple[str, int]] = []  # (event id, position)
    enough = threading.Event()
    lock = threading.Lock()

    def append_until_killed(i: int) -> None:
        client = EventStoreDBClient(process.uri)
        try:
            while True:
                event = events(1)[0]
                position = client.append_to_stream(f"group-{i % 3}", current_version=StreamState.ANY, events=[event])
                with lock:
                    acknowledged.append((str(event.id), position))
                    if len(acknowledged) >= 400:
                        enough.set()
        except Exception:  # noqa: BLE001 - the server was killed mid-append
            pass
        finally:
            client.close()

    threads = [threading.Thread(target=append_until_killed, args=(i,), daemon=True) for i in range(writers)]
    for thread in threads:
        thread.start()
    assert enough.wait(timeout=60)
    process.kill()  # SIGKILL with appends in flight
    for thread in threads:
        thread.join(timeout=30)

    reopened = StoreProcess(db, _free_port())
    client = EventStoreDBClient(reopened.uri)
    try:
        stored = {str(e.id): e.commit_position for e in client.read_all()}
        with lock:
            acked = list(acknowledged)
        assert all(stored.get(event_id) == position for event_id, position in acked), "an acknowledged append was lost"
        for i in range(3):
            revisions = [e.stream_position for e in client.get_stream(f"group-{i}")]
            assert revisions == list(range(len(revisions)))
    finally:
        client.close()
        assert reopened.terminate()[0] == 0
