"""What a drill is, and what it may do to the stack.

A :class:`Drill` (listed in :mod:`tests.drills.catalog`) injects ONE fault into a running
:class:`~tests.drills.stack.Stack` (plus the one operator action it names) and calls :meth:`Context.lifted` when
the fault is over; the runner then waits for the stack to heal and judges it. What the drill itself finds wrong on the way (a job that failed, a check that reported nothing)
goes to :meth:`Context.problem`; what it only wants to say goes to :meth:`Context.note`.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from projections import keys
from projections.codec import text
from projections.keys import KeySpace
from tests.drills.compare import live_generation, spaces
from tests.drills.stack import JobRow, Stack
from tests.drills.topology import TOPOLOGIES
from tests.waiting import GiveUp, wait_until

T = TypeVar("T")
JOB_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class Drill:
    """One fault: its name (``make drills DRILLS=name``), what it does in words, the function that injects it (and
    runs the operator action it names), and how long healing may take."""

    name: str
    fault: str
    inject: Callable[[Context], None]
    market: bool = False  # a live simulated market runs from before the fault until the stack is judged healed
    heal_timeout_s: float = 60.0  # from the fault's end (and its operator action) to 0 differences
    env: Mapping[str, str] = field(default_factory=dict)  # product settings the drill's stack runs with
    topologies: tuple[str, ...] = TOPOLOGIES  # where it runs (``--redis``): drills on the Redis server itself, one


@dataclass
class Context:
    """A drill's handle on its stack, and what it found."""

    stack: Stack
    lifted_at: float | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    expected_jobs: list[int] = field(default_factory=list)

    def lifted(self) -> None:
        """The fault is over (the process restarted, the service back, the damage done): healing starts now."""
        self.lifted_at = time.monotonic()

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def wait(self, condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
        return wait_until(condition, timeout, what=what, interval=interval)

    # -- jobs ------------------------------------------------------------------

    def wait_job(self, job_id: int, timeout: float = JOB_TIMEOUT_S) -> JobRow:
        """Job ``job_id`` once finished (succeeded, failed or cancelled) and run by no worker (its lease gone: a
        second run of it, queued again, has ended too); a problem if that never comes."""
        client = self.stack.client()

        def over() -> bool:
            return self.stack.job(job_id).finished and not client.exists(keys.job_lease(job_id))

        try:
            self.wait(over, timeout, f"job {job_id} to finish", interval=0.2)
        except AssertionError:
            job = self.stack.job(job_id)
            self.problem(f"job {job_id} ({job.kind} {job.target}) still {job.state} after {timeout:g} s: "
                         f"{job.phase or job.error}")
        return self.stack.job(job_id)

    def still_running(self, job_id: int) -> None:
        """GiveUp (the drill breaks: its fault came too late) if job ``job_id`` has finished already."""
        job = self.stack.job(job_id)
        if job.finished:
            raise GiveUp(f"job {job_id} {job.state} before the fault could be injected: {job.error}")

    def expect_succeeded(self, job_id: int) -> None:
        """Job ``job_id`` must end succeeded: checked once the stack has healed (a run queued again may still
        change its state after it first finished)."""
        self.expected_jobs.append(job_id)

    def job_problems(self) -> list[str]:
        """The jobs expected to succeed that did not, as they stand now."""
        jobs = {j.id: j for j in self.stack.jobs()}
        return [f"job {j.id} ({j.kind} {j.target}) {j.state}, not succeeded" + (f": {j.error[:400]}" if j.error else "")
                for j in (jobs[i] for i in self.expected_jobs) if j.state != "succeeded"]

    def say_outcome(self, job: JobRow) -> None:
        self.note(f"job {job.id} ({job.kind} {job.target}) {job.state}" + (f": {job.error[:300]}" if job.error else ""))

    # -- generations -----------------------------------------------------------

    def wait_new_generation_writing(self, projection: str, live: int, job_id: int, timeout: float = 30.0) -> int:
        """The generation a rebuild job (queued while ``live`` was live) folds into, once it has committed its first
        batch (mid-rebuild)."""
        client = self.stack.client()

        def started() -> int:  # a checkpoint of another generation, under the projection's tag or a partition's
            for pattern in (f"{keys.tag(projection)}:g*:checkpoint", f"{keys.tag(projection)[:-1]}.p*}}:g*:checkpoint"):
                for raw in client.scan_iter(match=pattern, count=1000):
                    number = int(text(raw).split(":")[2][1:])
                    if number != live:
                        return number
            self.still_running(job_id)
            return 0

        return self.wait(started, timeout, f"job {job_id} to commit a first batch of its new generation", interval=0.005)

    def ranking_members(self, projection: str, ranking: Callable[[KeySpace], str], generation: int | None = None
                        ) -> list[str]:
        """The members of a ranking of ``projection``'s live (or given) generation, highest score first."""
        client = self.stack.client()
        found: list[tuple[float, str]] = []
        for ks in spaces(client, projection, generation or live_generation(client, projection)):  # every partition
            rows: list[Any] = client.zrevrange(ranking(ks), 0, -1, withscores=True)  # type: ignore[assignment]
            found += [(float(score), text(m)) for m, score in rows]
        return [m for _, m in sorted(found, reverse=True)]
