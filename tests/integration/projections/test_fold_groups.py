"""A rebuild's partitions folded by several workers (fold groups, ``maintenance/folds.py``), each a real process:
a helper folds its group beside the rebuild, one that never starts leaves its group to the rebuild, one killed -9
midway has its group taken over once its lease expires. Each time the new generation equals a fresh projection of
the same store, key for key, and nothing of the fold is left in Redis."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import redis

from projections import keys, layout
from projections.errors import JobLeaseLost
from projections.maintenance.control import Unattended
from projections.maintenance.folds import Board, Share
from projections.maintenance.generations import switch_to
from projections.partitions import Partition
from projections.projector.runner import RunnerConfig
from tests.fixtures.projections import RedisProcess, StoreProcess
from tests.integration.projections.helpers import append_market, config, head_for
from tests.integration.projections.test_repartition import equal_to_fresh
from tests.waiting import wait_until

P = "portfolio"
COUNT = 4
ROOT = Path(__file__).resolve().parents[3]
HELPER = """
import json, sys
import redis
from projections.maintenance.control import Unattended
from projections.maintenance.generations import fold_part
from projections.projector.runner import RunnerConfig
base = RunnerConfig(**json.loads(sys.argv[1]))
applied = fold_part(redis.Redis.from_url(base.redis_url), base, int(sys.argv[2]), Unattended())
print(json.dumps({"applied": applied}))
"""


class Helper:
    """A fold job's work in a process of its own (what a second Celery worker runs)."""

    def __init__(self, base: RunnerConfig, generation: int, log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen([sys.executable, "-c", HELPER, json.dumps(asdict(base)), str(generation)],
                                        cwd=ROOT, stdout=subprocess.PIPE, stderr=log.open("w"),
                                        env={**os.environ, "PYTHONPATH": str(ROOT)})

    def applied(self) -> int:
        out, _ = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, self.log.read_text()[-3000:]
        return int(json.loads(out.decode().strip().splitlines()[-1])["applied"])


def fresh_equal(client: redis.Redis, redis_url: str, uri: str) -> None:
    """Generation 2 of every partition equals a fresh projection split alike; nothing of the fold is left."""
    equal_to_fresh(client, 2, COUNT, redis_url, uri)
    assert not client.exists(keys.folds(P, 2)) and not client.keys("*fold*-lease")


def seeded(redis_process: RedisProcess, store_process: StoreProcess, events: int) -> tuple[redis.Redis, RunnerConfig]:
    """A store of ``events`` simulated events, a live generation split COUNT ways, and a rebuild's settings."""
    append_market(store_process.uri, events, bad_ratio=0.01)
    client = redis.Redis.from_url(redis_process.url)
    layout.record(client, P, 1, COUNT)
    return client, config(P, redis_process.url, store_process.uri, exit_when_caught_up=False, batch_size=50)


def test_a_helper_process_folds_its_group_beside_the_rebuild(
        tmp_path: Path, redis_process: RedisProcess, store_process: StoreProcess) -> None:
    client, base = seeded(redis_process, store_process, 3000)
    helpers: list[Helper] = []

    done = switch_to(client, base, 2, Unattended(), verify=False, partitions=COUNT, workers=2,
                     ask_helpers=lambda n: helpers.extend(Helper(base, 2, tmp_path / f"h{i}.log") for i in range(n)))

    assert done.groups == 2 and len(helpers) == 1
    assert helpers[0].applied() > 0 and done.applied > 0  # both folded
    assert done.checkpoint >= head_for(store_process.uri, P)
    fresh_equal(client, redis_process.url, store_process.uri)


def test_a_group_nobody_takes_is_folded_by_the_rebuild_itself(
        redis_process: RedisProcess, store_process: StoreProcess) -> None:
    client, base = seeded(redis_process, store_process, 1500)
    asked: list[int] = []

    done = switch_to(client, base, 2, Unattended(), verify=False, partitions=COUNT, workers=4,
                     ask_helpers=asked.append)  # no worker ever picks them up

    assert asked == [3] and done.groups == 4
    fresh_equal(client, redis_process.url, store_process.uri)


def test_a_helper_killed_midway_has_its_group_taken_over_and_nothing_is_lost_or_doubled(
        tmp_path: Path, redis_process: RedisProcess, store_process: StoreProcess) -> None:
    client, base = seeded(redis_process, store_process, 20000)
    helpers: list[Helper] = []

    def ask(n: int) -> None:
        helpers.extend(Helper(base, 2, tmp_path / f"h{i}.log") for i in range(n))

        def folding_midway() -> bool:  # the helper holds group 1 and its runners committed, not yet at the head
            board = {k.decode(): v.decode() for k, v in client.hgetall(keys.folds(P, 2)).items()}
            return int(board.get("applied:1") or 0) > 0 and board.get("caught:1") == "0"

        wait_until(folding_midway, 20, what="the helper to fold its group midway")
        os.kill(helpers[0].process.pid, signal.SIGKILL)

    done = switch_to(client, base, 2, Unattended(), verify=False, partitions=COUNT, workers=2, ask_helpers=ask)

    assert helpers[0].process.wait(10) == -signal.SIGKILL and done.groups == 2
    fresh_equal(client, redis_process.url, store_process.uri)


class Ended:
    """A fold group's runners that ended with ``failure`` (what a Folding reports of itself)."""

    def __init__(self, failure: BaseException) -> None:
        self.failures, self.applied, self.caught_up = [failure], 5, False

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None


def test_a_run_that_lost_its_job_is_no_failure_of_the_fold_but_a_runner_error_is(redis_process: RedisProcess) -> None:
    """A drill found it: the first run of a rebuild whose lease was taken reported its own JobLeaseLost on the board,
    and the second run, which had the job, failed with it."""
    client = redis.Redis.from_url(redis_process.url)
    board = Board(client, P, 2)
    board.open(2)
    ended = [Ended(JobLeaseLost("job 1: attempt 1 lost its lease")), Ended(RuntimeError("Redis said no"))]
    share = Share(board, [[Partition(P, 0, 2)], [Partition(P, 1, 2)]], lambda *_: ended.pop(0), 1500)
    assert share.claim(2) == 2
    share.tend()
    assert board.read(2).failed == "RuntimeError: Redis said no"
    board.client.hdel(board.key, "failed:1")
    share.tend()
    assert board.read(2).failed == "RuntimeError: Redis said no"  # reported again: the group's runners failed
    share.held.pop(1)
    board.client.hdel(board.key, "failed:1")
    share.tend()
    assert board.read(2).failed == ""  # the lost job alone: nothing for the rebuild to fail with
