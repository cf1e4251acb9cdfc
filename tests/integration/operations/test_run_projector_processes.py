"""``run_projector --processes 2``: two members that split the projections; a child killed is started again by
its parent, and SIGTERM stops them all."""
from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import redis

from projections.queries import Queries
from tests.waiting import wait_until


def split(queries: Queries) -> dict[str, int]:
    """The members owning projections and how many each, once every projection is owned ({} until then)."""
    owners = [row.owner for row in queries.shards().partitions]
    return dict(Counter(owners)) if all(owners) else {}


def pid_of(member: str) -> int:
    return int(member.split(":")[1])  # host:pid:suffix


def running_projector(pid: int) -> bool:
    """A live ``run_projector`` process has ``pid``: not a zombie waiting to be reaped, nor another process that
    was given the pid since."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z" and b"run_projector" in cmdline


def test_two_processes_split_the_projections_and_a_killed_child_is_replaced(live_stack) -> None:
    parent = live_stack.start_projector("--processes", "2")
    queries = Queries(redis.Redis.from_url(live_stack.env["REDIS_URL"]))
    first = wait_until(lambda: (s := split(queries)) and sorted(s.values()) == [2, 2] and s, 90,
                       what="two members to own two projections each")
    child = next(m for m in first if pid_of(m) != parent.pid)

    os.kill(pid_of(child), signal.SIGKILL)

    after = wait_until(lambda: (s := split(queries)) and sorted(s.values()) == [2, 2] and child not in s and s, 90,
                       what="the parent to start another child that takes the killed one's share")
    replacement = next(m for m in after if pid_of(m) != parent.pid)
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(60) == 0, live_stack.log("projector")[-2000:]
    for member in (replacement, child):
        assert not running_projector(pid_of(member)), f"member {member} outlived its parent"
