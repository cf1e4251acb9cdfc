"""Drills on projector members (several ``run_projector`` processes sharing the projections): one killed with -9,
one paused past its lease (a zombie owner), one joining under load. Each judged, as every drill, by comparing the
live read models with a fresh projection: an event lost or applied twice in a move is a difference."""
from __future__ import annotations

import signal
import threading
import time
from collections import Counter

from projections.queries import Queries
from projections.queries.shards import PartitionRow
from projections.readmodels import PROJECTIONS
from tests.drills.drill import Context
from tests.drills.faults_processes import BURST_EVENTS, append_burst, checkpoint
from tests.drills.processes import Proc

LEASE_S = 10.0  # the projector's lease TTL (RunnerConfig.lease_ms)
MOVE_S = LEASE_S + 10.0  # a lease's expiry, a member's tick (a third of it) and the drain, with a margin
PAUSE_S = LEASE_S + 4.0  # a zombie's pause: longer than its leases


def owners(ctx: Context) -> dict[str, str]:
    """Each partition's owning member ('' for nobody), by its label (a projection's name when it is not split), as
    the Shards page shows it."""
    return {row.partition.label: row.owner for row in Queries(ctx.stack.client()).shards().partitions}


def split_two_and_two(ctx: Context) -> bool:
    """Every partition owned, by two members, each with its fair share: of each projection's partitions, and in all
    (with one partition per projection: two projections each)."""
    rows = Queries(ctx.stack.client()).shards().partitions
    members = {row.owner for row in rows}
    if "" in members or len(members) != 2:
        return False
    totals = Counter(row.owner for row in rows)
    fair = all(abs(sum(r.owner == a for r in group) - sum(r.owner == b for r in group)) <= 1
               for a, b in [tuple(members)] for group in _by_projection(rows))
    return fair and abs(totals[min(members)] - totals[max(members)]) <= 1


def _by_projection(rows: list[PartitionRow]) -> list[list[PartitionRow]]:
    return [[r for r in rows if r.partition.projection == name] for name in PROJECTIONS]


def _member_pid(member: str) -> int:
    return int(member.split(":")[1])  # new_token(): host:pid:suffix


def _two_members(ctx: Context) -> tuple[str, str]:
    """The second member started beside the first; (the member owning portfolio, the other) once they split 2/2."""
    ctx.stack.start_member("projector2")
    ctx.wait(lambda: split_two_and_two(ctx), MOVE_S, "the two members to own two projections each", interval=0.2)
    found = owners(ctx)
    first = next(label for label in found if label.startswith("portfolio"))  # portfolio, or its partition 0
    other = next(m for m in found.values() if m != found[first])
    return found[first], other


def _proc_of(ctx: Context, member: str) -> Proc:
    pid = _member_pid(member)
    return next(p for p in ctx.stack.apps.values() if p.popen is not None and p.popen.pid == pid)


def member_kill9(ctx: Context) -> None:
    """Two members; the one owning portfolio killed with -9 while portfolio commits a burst; the other must own
    everything within the lease's TTL and carry on from the checkpoints; the killed one started again after."""
    victim, survivor = _two_members(ctx)
    proc = _proc_of(ctx, victim)
    before = checkpoint(ctx, "portfolio")
    burst = threading.Thread(target=append_burst, args=(ctx.stack.store.uri, BURST_EVENTS, 907), daemon=True)
    burst.start()
    ctx.wait(lambda: checkpoint(ctx, "portfolio") > before + BURST_EVENTS // 10, 60,
             "portfolio to commit the burst's first batches", interval=0.001)
    proc.kill()
    killed = time.monotonic()
    ctx.wait(lambda: set(owners(ctx).values()) == {survivor}, MOVE_S, "the survivor to own every projection", interval=0.1)
    ctx.note(f"member {victim} killed at portfolio checkpoint {checkpoint(ctx, 'portfolio')}; {survivor} owned "
             f"everything {time.monotonic() - killed:.1f} s later")
    if proc.name == "projector":  # started again, as a supervisor would
        ctx.stack.start_app(proc.name)
    else:
        ctx.stack.start_member(proc.name)
    ctx.lifted()
    burst.join(120)


def member_sigstop(ctx: Context) -> None:
    """Two members; the one owning portfolio stopped (SIGSTOP) past its leases while a burst is committed; the
    other takes its projections over; SIGCONT: none of the zombie's commits may land (its token's epoch is gone)."""
    zombie, other = _two_members(ctx)
    proc = _proc_of(ctx, zombie)
    burst = threading.Thread(target=append_burst, args=(ctx.stack.store.uri, BURST_EVENTS, 911), daemon=True)
    burst.start()
    proc.signal(signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        ctx.wait(lambda: set(owners(ctx).values()) == {other}, MOVE_S + PAUSE_S,
                 "the other member to own every projection", interval=0.1)
        taken = time.monotonic() - stopped
        time.sleep(max(0.0, stopped + PAUSE_S - time.monotonic()))
    finally:
        proc.signal(signal.SIGCONT)
    ctx.note(f"member {zombie} stopped {time.monotonic() - stopped:.1f} s; {other} owned everything after {taken:.1f} s")
    ctx.lifted()
    burst.join(120)


def member_join(ctx: Context) -> None:
    """One member owns everything; a burst is committed; a second member joins mid-burst and takes its share:
    the projections that move pause, and nothing is lost or applied twice."""
    client = ctx.stack.client()
    before = checkpoint(ctx, "portfolio")
    burst = threading.Thread(target=append_burst, args=(ctx.stack.store.uri, BURST_EVENTS, 919), daemon=True)
    burst.start()
    ctx.wait(lambda: checkpoint(ctx, "portfolio") > before + BURST_EVENTS // 10, 60,
             "portfolio to commit the burst's first batches", interval=0.001)
    alone = set(owners(ctx).values())
    ctx.stack.start_member("projector2")
    joined = time.monotonic()
    ctx.wait(lambda: split_two_and_two(ctx), MOVE_S, "the joining member's share", interval=0.05)
    epochs = {row.partition.label: str(row.epoch) for row in Queries(client).shards().partitions}
    ctx.note(f"one member ({', '.join(alone)}) owned everything; the second owned its two {time.monotonic() - joined:.1f} s "
             f"after it started (epochs now {epochs})")
    ctx.lifted()
    burst.join(120)
