"""What every drill checks besides the read models: every projector thread and worker alive, and at most two
generations of a projection in Redis (DESIGN: "the live one and the one kept for rollback").
"""
from __future__ import annotations

import json
import re
import shlex
import time
from typing import TYPE_CHECKING

import redis

from projections import keys, layout
from projections.codec import text
from projections.readmodels import PROJECTIONS
from projections.status import ProjectionState
from tests.drills.broker import ping_worker
from tests.drills.processes import procfile
from tests.waiting import wait_until

if TYPE_CHECKING:
    from tests.drills.stack import Stack

MAX_GENERATIONS = 2
_GENERATION = re.compile(r"^g(\d+)$")


def projector_problems(client: redis.Redis) -> list[str]:
    """Each projection's thread beats (its heartbeat key, refreshed only while its loop turns) and says it is live."""
    problems = []
    for projection in PROJECTIONS:
        for part in layout.partitions(client, projection, layout.live_generation(client, projection)):  # each one's
            beat = client.get(keys.heartbeat(part.tag))
            state = text(client.hget(keys.status(part.tag), "state"))
            if beat is None:
                problems.append(f"{part.label}: no heartbeat (its projector thread is dead or stuck; state {state!r})")
            elif json.loads(text(beat)).get("state") != ProjectionState.LIVE or state != ProjectionState.LIVE:
                error = text(client.hget(keys.status(part.tag), "lastError"))
                problems.append(f"{part.label}: {state!r}, not live" + (f" ({error})" if error else ""))
    return problems


def worker_queues(command: str) -> list[str | None] | None:
    """The queues a Procfile command's Celery worker consumes (``-Q a,b``; [None]: the default queue), or None if
    the command is not a Celery worker."""
    words = shlex.split(command)
    if "celery" not in words[0] or "worker" not in words:
        return None
    queues = next((words[i + 1] for i, w in enumerate(words[:-1]) if w in {"-Q", "--queues"}), None)
    return [None] if queues is None else [q for q in queues.split(",") if q]


def alive_problems(stack: Stack, timeout: float = 30.0) -> list[str]:
    """Wait up to ``timeout`` s for every projector thread and every Procfile process to be alive, and every Celery
    worker to answer ``lucent.ping`` on each of its queues; what is not, in words."""
    deadline = time.monotonic() + timeout
    problems = [f"{proc.name} is not running (log: {proc.log_path})" for proc in stack.apps.values() if not proc.alive()]
    found: list[str] = []

    def beating() -> bool:
        nonlocal found
        found = projector_problems(stack.client())
        return not found

    try:
        wait_until(beating, max(1.0, deadline - time.monotonic()), what="every projector thread to beat", interval=0.2)
    except AssertionError:
        problems.extend(found or ["the projector's Redis did not answer"])
    for name, command in procfile().items():
        for queue in worker_queues(command) or []:
            try:
                ping_worker(stack.env, max(5.0, deadline - time.monotonic()), queue)
            except RuntimeError as exc:
                problems.append(f"{name}: no worker answered lucent.ping on queue {queue or '(default)'} ({exc})")
    return problems


def generations(client: redis.Redis, projection: str) -> list[int]:
    """The generation numbers of ``projection`` that have read-model keys (or a checkpoint) in Redis."""
    found: set[int] = set()
    for raw in client.scan_iter(match=f"{keys.tag(projection)}:g*:*", count=1000):
        part = text(raw)[len(keys.tag(projection)) + 1:].split(":", 1)[0]
        if matched := _GENERATION.match(part):
            found.add(int(matched[1]))
    return sorted(found)


def generation_problems(client: redis.Redis) -> list[str]:
    """Projections with more generations in Redis than the live one and one kept for rollback."""
    problems = []
    for projection in PROJECTIONS:
        present = generations(client, projection)
        if len(present) > MAX_GENERATIONS:
            live = text(client.get(keys.generation_pointer(projection))) or "1"
            problems.append(f"{projection} has {len(present)} generations in Redis "
                            f"({', '.join(f'g{n}' for n in present)}; live g{live}): at most {MAX_GENERATIONS} may exist")
    return problems
