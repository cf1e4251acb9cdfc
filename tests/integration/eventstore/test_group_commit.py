"""Group commit: writes queued behind a commit in flight share the next transaction,
each keeping its own checks, atomicity and outcome (real SQLite, real threads)."""
from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from eventstore_lite.errors import ANY, NO_STREAM, StoreError, WrongExpectedVersion
from eventstore_lite.group import GroupCommit
from eventstore_lite.storage import Store, connect
from eventstore_lite.stream_writer import JSON, Proposed, Writer, WriteResult
from tests.waiting import wait_until


class Calls:
    """Runs callables on threads and keeps each one's result or exception."""

    def __init__(self) -> None:
        self.outcomes: dict[str, object] = {}
        self._threads: list[threading.Thread] = []

    def start(self, name: str, fn: Callable[[], object]) -> None:
        def run() -> None:
            try:
                self.outcomes[name] = fn()
            except BaseException as exc:  # noqa: BLE001 - the outcome under test
                self.outcomes[name] = exc

        thread = threading.Thread(target=run, daemon=True)
        self._threads.append(thread)
        thread.start()

    def join(self) -> dict[str, object]:
        for thread in self._threads:
            thread.join(timeout=30)
            assert not thread.is_alive()
        return self.outcomes


class Refused(StoreError):
    pass


@pytest.fixture
def table(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = connect(str(tmp_path / "group.sqlite3"))
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    yield conn
    conn.close()


def rows(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT k FROM t")}


class Ops:
    """Operations on table ``t``: ``first`` holds its group open until ``release`` is set."""

    def __init__(self, table: sqlite3.Connection, first_writes: bool = True) -> None:
        self.table, self.first_writes = table, first_writes
        self.entered, self.release = threading.Event(), threading.Event()

    def first(self) -> str | None:
        if self.first_writes:
            self.table.execute("INSERT INTO t VALUES ('first')")
        self.entered.set()
        self.release.wait(10)
        return "first" if self.first_writes else None

    def insert(self, key: str) -> Callable[[], str]:
        def op() -> str:
            self.table.execute("INSERT INTO t VALUES (?)", (key,))
            return key
        return op

    @staticmethod
    def refuse() -> str:
        raise Refused("refused")


def test_operations_queued_behind_a_commit_share_the_next_transaction(table: sqlite3.Connection) -> None:
    commits: list[int] = []
    group = GroupCommit(table, lambda: None, lambda: commits.append(1), lambda: None)
    ops = Ops(table)

    calls = Calls()
    calls.start("first", lambda: group.submit(ops.first))
    assert ops.entered.wait(10)
    for key in ("a", "b", "c"):
        calls.start(key, lambda key=key: group.submit(ops.insert(key)))  # type: ignore[misc]
    calls.start("refused", lambda: group.submit(ops.refuse))
    wait_until(lambda: group.queued == 4)
    assert commits == []  # nobody answered before the first commit
    ops.release.set()
    outcomes = calls.join()

    assert {k: outcomes[k] for k in ("first", "a", "b", "c")} == {"first": "first", "a": "a", "b": "b", "c": "c"}
    assert isinstance(outcomes["refused"], Refused)
    assert commits == [1, 1], "the four queued operations were committed together"
    assert rows(table) == {"first", "a", "b", "c"}


def test_an_sqlite_error_rolls_back_its_whole_group_and_every_caller_gets_it(table: sqlite3.Connection) -> None:
    rolled_back: list[int] = []
    group = GroupCommit(table, lambda: None, lambda: None, lambda: rolled_back.append(1))
    ops = Ops(table, first_writes=False)

    calls = Calls()
    calls.start("first", lambda: group.submit(ops.first))
    assert ops.entered.wait(10)
    calls.start("x", lambda: group.submit(ops.insert("x")))
    wait_until(lambda: group.queued == 1)
    calls.start("duplicate", lambda: group.submit(ops.insert("x")))  # same key: IntegrityError
    wait_until(lambda: group.queued == 2)
    ops.release.set()
    outcomes = calls.join()

    assert outcomes["first"] is None
    assert isinstance(outcomes["x"], sqlite3.IntegrityError)  # its write was undone with the group
    assert isinstance(outcomes["duplicate"], sqlite3.IntegrityError)
    assert rolled_back == [1]
    assert rows(table) == set()
    assert group.submit(ops.insert("y")) == "y"  # the next group commits normally
    assert rows(table) == {"y"}


def event(n: int) -> Proposed:
    return Proposed(str(uuid.uuid4()), "Tick", JSON, b"{}", b'{"n": %d}' % n)


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[tuple[Store, Writer]]:
    store = Store(str(tmp_path / "events.sqlite3"))
    writer = Writer(store)
    writer.ensure_system_events()
    yield store, writer
    store.close()


def test_appends_in_one_group_keep_their_own_expected_version_checks_and_atomicity(
    writer: tuple[Store, Writer], tmp_path: Path
) -> None:
    store, w = writer
    w.append("s-existing", NO_STREAM, [event(0)])
    blocker = sqlite3.connect(str(tmp_path / "events.sqlite3"), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock: the next leader waits in BEGIN

    calls = Calls()
    calls.start("leader", lambda: w.append("s-leader", NO_STREAM, [event(0)]))  # leads, waits in BEGIN
    contenders = {
        "race-1": ("s-race", NO_STREAM, [event(1)]),
        "race-2": ("s-race", NO_STREAM, [event(2)]),
        "race-3": ("s-race", NO_STREAM, [event(3)]),
        "wrong": ("s-existing", 5, [event(1)]),
        "right": ("s-existing", 0, [event(1)]),
        "batch": ("s-batch", ANY, [event(i) for i in range(5)]),
    }
    for n, (name, (stream, expected, events)) in enumerate(contenders.items(), start=1):
        calls.start(name, lambda s=stream, e=expected, ev=events: w.append(s, e, ev))  # type: ignore[misc]
        wait_until(lambda n=n: w.queued == n)  # type: ignore[misc]
    blocker.execute("ROLLBACK")
    blocker.close()
    outcomes = calls.join()

    races = [outcomes[f"race-{i}"] for i in (1, 2, 3)]
    winners = [r for r in races if isinstance(r, WriteResult)]
    assert len(winners) == 1 and sum(isinstance(r, WrongExpectedVersion) for r in races) == 2
    assert isinstance(outcomes["wrong"], WrongExpectedVersion)
    right, batch = outcomes["right"], outcomes["batch"]
    assert isinstance(right, WriteResult) and right.revision == 1
    assert isinstance(batch, WriteResult) and batch.revision == 4
    batch_rows = store.stream_page("s-batch", 0, True, 10)
    assert [r[2] for r in batch_rows] == [0, 1, 2, 3, 4]
    positions = [r[0] for r in batch_rows]
    assert positions == list(range(positions[0], positions[0] + 5)), "an append's events stay contiguous"
    assert positions[-1] == batch.position
    written = store.all_page(0, True, True, 100)
    assert [r[0] for r in written] == sorted({r[0] for r in written}), "positions strictly increase"
    assert store.head == written[-1][0]
    assert len(store.stream_page("s-race", 0, True, 10)) == 1


def test_coroutines_and_threads_share_groups_each_with_its_own_outcome(table: sqlite3.Connection) -> None:
    commits: list[int] = []
    group = GroupCommit(table, lambda: None, lambda: commits.append(1), lambda: None)
    ops = Ops(table)

    async def from_a_loop() -> list[object]:
        return list(await asyncio.gather(group.submit_async(ops.insert("x")), group.submit_async(ops.refuse),
                                         group.submit_async(ops.insert("y")), return_exceptions=True))

    calls = Calls()
    calls.start("first", lambda: group.submit(ops.first))
    assert ops.entered.wait(10)
    calls.start("loop", lambda: asyncio.run(from_a_loop()))
    wait_until(lambda: group.queued == 3)
    calls.start("thread", lambda: group.submit(ops.insert("t")))
    wait_until(lambda: group.queued == 4)
    ops.release.set()
    outcomes = calls.join()

    assert outcomes["first"] == "first" and outcomes["thread"] == "t"
    loop_outcomes = outcomes["loop"]
    assert isinstance(loop_outcomes, list)
    x, refused, y = loop_outcomes
    assert (x, y) == ("x", "y") and isinstance(refused, Refused)
    assert commits == [1, 1], "the four queued operations were committed together"
    # alone, a coroutine's operation is led by the committer thread, and the loop is never blocked
    assert asyncio.run(group.submit_async(ops.insert("alone"))) == "alone"
    assert commits == [1, 1, 1]
    assert rows(table) == {"first", "x", "y", "t", "alone"}
    group.close()
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(group.submit_async(ops.insert("late")))
