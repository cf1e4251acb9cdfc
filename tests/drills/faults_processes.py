"""Drills on the stack's own processes: the projector killed or paused, the worker killed, a job's lease lost."""
from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime

from projections import keys, layout
from projections.codec import text
from projections.eventstore import EventStore
from projections.simulation.appender import append_events
from projections.simulation.market import Market
from tests.drills import compare
from tests.drills.broker import prepared_task, send_task
from tests.drills.drill import Context

BURST_EVENTS = 3000
SIGSTOP_S = 7.0  # the pause: longer than the heartbeat's TTL (5 s), shorter than the lease (10 s)
JOB_LEASE_S = 20.0  # the job lease's TTL (jobs.LEASE_MS, 15 s) and a margin
FLIP_START_S = 20.0  # the longest the projector stays stopped waiting for the flip to begin


def checkpoint(ctx: Context, projection: str) -> int:
    return compare.checkpoint(ctx.stack.client(), projection)


def append_burst(uri: str, count: int, seed: int) -> None:
    """``count`` events of a market of their own, a millisecond apart in event time, appended as fast as they go."""
    market = Market(seed, start=datetime.now(UTC), mean_interval_ms=1)
    with EventStore(uri) as store:
        append_events(store, market.events(count), batch_size=100)


def projector_kill9(ctx: Context) -> None:
    """A burst appended beside the live market; the projector killed once it has committed a tenth of it, and
    started again at once (as a supervisor would)."""
    stack = ctx.stack
    before = checkpoint(ctx, "portfolio")
    burst = threading.Thread(target=append_burst, args=(stack.store.uri, BURST_EVENTS, 901), daemon=True)
    burst.start()
    # commits follow one another while the burst lasts: a kill now lands in a batch (fold, script or reply)
    ctx.wait(lambda: checkpoint(ctx, "portfolio") > before + BURST_EVENTS // 10, 60,
             "the projector to commit the burst's first batches", interval=0.001)
    stack.projector.kill()
    ctx.note(f"killed at portfolio checkpoint {checkpoint(ctx, 'portfolio')} (burst from {before})")
    stack.start_app("projector")
    ctx.lifted()
    burst.join(120)


def _rebuild_started(ctx: Context) -> tuple[int, int]:
    """``manage.py rebuild portfolio --yes``; (its job, its new generation) once that has a first batch committed."""
    live = compare.live_generation(ctx.stack.client(), "portfolio")
    job_id = ctx.stack.queue("rebuild", "portfolio", "--yes")
    return job_id, ctx.wait_new_generation_writing("portfolio", live, job_id)


SWEEP = "lucent.requeue_orphaned_jobs"  # the orphan sweep beat runs every 20 s: the drills send it when it is due


def _expect_resumed(ctx: Context, job_id: int) -> None:
    """The job must end succeeded, resumed from its own progress."""
    ctx.expect_succeeded(job_id)
    ctx.wait_job(job_id)


def worker_kill9_rebuild(ctx: Context) -> None:
    """The worker's process group killed mid-rebuild and started again; once the dead run's lease has expired, the
    sweep."""
    stack, client = ctx.stack, ctx.stack.client()
    job_id, generation = _rebuild_started(ctx)
    worker = stack.worker_running(job_id)
    worker.kill()
    ctx.still_running(job_id)
    ctx.note(f"{worker.name} (the worker running job {job_id}) killed while the job filled generation {generation} "
             f"(its checkpoint {compare.checkpoint_of(client, 'portfolio', generation)})")
    stack.start_app(worker.name)
    ctx.lifted()
    ctx.wait(lambda: not client.exists(keys.job_lease(job_id)), JOB_LEASE_S,
             f"the dead worker's lease of job {job_id} to expire", interval=0.2)
    send_task(stack.env, SWEEP)
    _expect_resumed(ctx, job_id)


def job_lease_deleted(ctx: Context) -> None:
    """The lease of a running rebuild deleted, then the sweep at once (the run that lost it still folding)."""
    with prepared_task(ctx.stack.env, SWEEP) as sweep:
        job_id, generation = _rebuild_started(ctx)
        ctx.stack.client().delete(keys.job_lease(job_id))
        sweep()
        ctx.still_running(job_id)
    ctx.note(f"lease of job {job_id} deleted while it filled generation {generation}; the sweep sent at once")
    ctx.lifted()
    _expect_resumed(ctx, job_id)


def projector_sigstop_flip(ctx: Context) -> None:
    """The projector stopped; once its heartbeat has expired, a rebuild; SIGCONT once the rebuild's flip is under
    way (or FLIP_START_S passed) and at least SIGSTOP_S after the stop. The rebuild's outcome is noted, not judged:
    a flip refused without the projector's acknowledgement is as right as one it follows."""
    stack, client = ctx.stack, ctx.stack.client()

    tags = [part.tag for part in layout.partitions(client, "portfolio", compare.live_generation(client, "portfolio"))]

    def flip_state() -> str:  # the state any partition's flip is in (the flip asks each)
        states = {text(client.hget(keys.flip(tag), "state")) for tag in tags}
        return next((s for s in ("done", "paused", "requested") if s in states), "")

    stack.projector.signal(signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        ctx.wait(lambda: not client.exists(*(keys.heartbeat(tag) for tag in tags)), 15,
                 "the stopped projector's heartbeat to expire", interval=0.1)
        job_id = stack.queue("rebuild", "portfolio", "--yes")
        try:
            ctx.wait(lambda: flip_state() in {"requested", "paused", "done"} or stack.job(job_id).finished,
                     FLIP_START_S, f"job {job_id} to start its flip", interval=0.01)
        except AssertionError:
            ctx.note(f"job {job_id} had not started its flip {FLIP_START_S:g} s into the stop")
        flip = flip_state()
        time.sleep(max(0.0, stopped + SIGSTOP_S - time.monotonic()))  # the fault's own duration
    finally:
        stack.projector.signal(signal.SIGCONT)
    ctx.note(f"projector stopped {time.monotonic() - stopped:.1f} s; the flip was {flip!r} when it went on")
    ctx.lifted()
    ctx.say_outcome(ctx.wait_job(job_id))
