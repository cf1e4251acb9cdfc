"""Running drills: a fresh stack each, the fault, healing, the verdict, one JSON line.

For each drill: a :class:`~tests.drills.stack.Stack` from the suite's template (a few seconds: no drill sees
another's Redis, store, database or processes), the live market started if the drill needs one, the fault
(and its operator action), then *healing*: every ``POLL_S`` seconds, once no job is queued or running, the market
is frozen (SIGSTOP) just long enough for the judge (:mod:`tests.drills.compare`) to compare every live read model
with a fresh projection at one position, and thawed again. ``healed_s`` is the time from the fault's end to the
first comparison with 0 differences (null if none within the drill's heal timeout, or if the final comparison
disagrees). Then the market stops for good and the final verdict is taken from a projection started from
nothing, along with the health checks (:mod:`tests.drills.health`).

Each drill prints exactly one JSON line on stdout::

    {"drill", "fault", "healed_s", "keys_compared", "differences",
     "detail" (first differences), "problems" (a wrong outcome: stuck, dead, a job failed, a generation leaked),
     "notes", "error" (the drill itself broke), "took_s", "logs" (when it failed)}
"""
from __future__ import annotations

import signal
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from projections.readmodels import PROJECTIONS, model
from tests.drills import compare, health
from tests.drills.drill import Context, Drill
from tests.drills.processes import Proc
from tests.drills.stack import Stack, Template
from tests.waiting import wait_until

POLL_S = 2.0
FINAL_CATCH_UP_S = 30.0
MARKET_WARM_EVENTS = 20  # the market has appended this many events before the fault: traffic is flowing


@contextmanager
def frozen(market: Proc | None) -> Iterator[None]:
    """The market process stopped (SIGSTOP) for the block, so the store's head stands still while judged."""
    if market is None:
        yield
        return
    market.signal(signal.SIGSTOP)
    try:
        yield
    finally:
        market.signal(signal.SIGCONT)


def start_market(stack: Stack) -> None:
    with stack.eventstore() as store:
        types = model("market").event_types
        head = store.head(types)
        stack.start_market()
        wait_until(lambda: store.count_after(head.position if head else 0, types, 1000) >= MARKET_WARM_EVENTS, 60,
                   what="the live market to append its first events", interval=0.1)


class Healing:
    """Polls the judge until the stack equals a fresh projection (see the module doc)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.fresh_started = False
        self.last: compare.Verdict | None = None

    def attempt(self, remaining: float) -> bool:
        stack = self.stack
        if stack.busy_jobs():
            return False
        with frozen(stack.market):
            # from nothing first; later attempts continue the fresh projection from its checkpoint
            self.last = compare.judge(stack.live_url, stack.store.uri, PROJECTIONS, flush=not self.fresh_started,
                                      fresh=compare.fresh_url(stack.redis.url()),
                                      catch_up_s=min(10.0, max(1.0, remaining)))
            self.fresh_started = True
        return self.last.differences == 0

    def wait(self, lifted_at: float, timeout: float) -> float | None:
        """Seconds from ``lifted_at`` to the first comparison without a difference; None if none in ``timeout``."""
        deadline = lifted_at + timeout
        try:
            wait_until(lambda: self.attempt(deadline - time.monotonic()), max(0.0, deadline - time.monotonic()),
                       what="the read models to equal a fresh projection", interval=POLL_S)
        except AssertionError:
            return None
        return round(time.monotonic() - lifted_at, 1)


def final_verdict(stack: Stack) -> tuple[compare.Verdict, list[str]]:
    """The verdict with the market stopped, against a projection from nothing; and what is stuck."""
    stuck = [f"job {j.id} ({j.kind} {j.target}) still {j.state} at the end: {j.phase}" for j in stack.busy_jobs()]
    try:
        compare.wait_caught_up(stack.client(), stack.store.uri, PROJECTIONS, FINAL_CATCH_UP_S)
    except AssertionError as exc:
        stuck.append(f"stuck: {exc}")
    with stack.redis.client(compare.FRESH_DB) as client:
        client.flushdb()
        compare.project_fresh(compare.fresh_url(stack.redis.url()), stack.store.uri, PROJECTIONS,
                              counts=compare.live_counts(stack.client()))
        return compare.compare(stack.client(), client, PROJECTIONS), stuck


def run_drill(drill: Drill, template: Template, workdir: Path) -> dict[str, Any]:
    """Run one drill on a stack of its own; its JSON record."""
    record: dict[str, Any] = {"drill": drill.name, "fault": drill.fault, "healed_s": None, "keys_compared": 0,
                              "differences": 0}
    began = time.monotonic()
    stack = Stack(template, workdir / drill.name, drill.env)
    ctx = Context(stack)
    try:
        stack.start()
        if drill.market:
            start_market(stack)
        drill.inject(ctx)
        if ctx.lifted_at is None:
            ctx.lifted()
        assert ctx.lifted_at is not None
        healed = Healing(stack).wait(ctx.lifted_at, drill.heal_timeout_s)
        stack.stop_market()
        verdict, stuck = final_verdict(stack)
        problems = [*ctx.problems, *ctx.job_problems(), *stuck, *health.alive_problems(stack),
                    *health.generation_problems(stack.client())]
        record.update(healed_s=healed if verdict.differences == 0 else None, keys_compared=verdict.keys_compared,
                      differences=verdict.differences)
        if verdict.differences:
            record["detail"] = {"keys_differing": len(verdict.keys_differing),
                                "first": [d.as_json() for d in verdict.first]}
        if problems:
            record["problems"] = problems
    except Exception as exc:  # noqa: BLE001 - the drill broke: reported as its error, the suite goes on
        record["error"] = f"{type(exc).__name__}: {exc}"
        if ctx.problems:
            record["problems"] = ctx.problems
        traceback.print_exc(file=sys.stderr)
    finally:
        try:
            stack.stop()
        except Exception as exc:  # noqa: BLE001
            print(f"drills: stopping {drill.name}'s stack: {exc}", file=sys.stderr)
    if ctx.notes:
        record["notes"] = ctx.notes
    record["took_s"] = round(time.monotonic() - began, 1)
    if failed(record):
        record["logs"] = str(stack.files.logs)
    return record


def failed(record: dict[str, Any]) -> bool:
    return bool(record["differences"] or record.get("problems") or record.get("error"))
