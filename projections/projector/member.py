"""One projector process among several: it owns a fair share of the partitions and runs one runner per partition
it owns (:mod:`projections.projector.membership` decides which; :class:`~projections.projector.runner.Runner`
projects each).

* A runner starts when its partition is claimed, with the claim's token: its commits are fenced by that
  ownership alone (the lease holds ``member#epoch``).
* A partition that moves (a member joined) or is lost (the lease expired while this process was paused) has its
  runner stopped and joined before the membership goes on: the batch in flight finishes or is refused by the
  fence; the drain is bounded by ``drain_s``, after which the fence alone protects the next owner.
* A runner that died on its own (an error it does not retry) gives its partition up, at the earliest
  ``restart_s`` after it started: the partition is claimed again (by any member, with a new epoch) and a new
  runner starts from its checkpoint.
* Redis away: each runner stalls and retries on its own; the membership ticks again once Redis answers, and any
  lease that expired meanwhile is reported lost and claimed again (with a new epoch).

Decision: with one partition per projection (today's keyspace), a member's share is whole projections, so two
members split the four projections two and two, and a member that dies leaves its projections to the other
within the lease's TTL.
"""
from __future__ import annotations

import json
import logging
import os
import resource
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import redis

from projections.connection import AWAY, connect
from projections.errors import Fenced
from projections.layout import live_partitions
from projections.partitions import Partition
from projections.projector.lease import new_token
from projections.projector.membership import Claim, Membership
from projections.projector.runner import Runner, RunnerConfig, shared_reader

log = logging.getLogger(__name__)
UNANSWERED: tuple[type[Exception], ...] = (redis.RedisError, *AWAY)  # Redis (or a cluster's node) did not answer
EXPECTED_ENDS: tuple[type[Exception], ...] = (Fenced, *UNANSWERED)  # a runner's end said in one line, no traceback

BuildRunner = Callable[[Partition, str], Runner]  # a runner of the partition, fenced by the token
Plan = Callable[[], Sequence[Partition]]  # the partitions to share now: the live generations' layouts


@dataclass
class _Running:
    claim: Claim
    runner: Runner
    started: float
    thread: threading.Thread | None = None
    error: BaseException | None = None


class Member:
    """Runs the partitions this process owns until ``stop`` is set (see the module doc)."""

    def __init__(self, client: redis.Redis, partitions: Sequence[Partition] | Plan, build: BuildRunner, ttl_ms: int,
                 member_id: str | None = None, drain_s: float = 10.0, restart_s: float = 5.0,
                 on_change: Callable[[], None] | None = None) -> None:
        """``partitions``: a fixed list, or a plan asked again at every tick (a flip into another partition count
        re-splits what the members share). ``on_change`` is called after a tick in which this member gained or
        lost a partition (the console's Shards page redraws on it)."""
        self.plan: Plan | None = partitions if callable(partitions) else None
        if callable(partitions):
            partitions = partitions()
        self.client, self.build, self.drain_s, self.restart_s = client, build, drain_s, restart_s
        self.on_change = on_change
        self.changed = False
        self.member_id = member_id or new_token()
        self.running: dict[Partition, _Running] = {}
        self.started = time.time()
        self.membership = Membership(client, self.member_id, partitions, ttl_ms, self._gain, self._lose, self._info)

    def run(self, stop: threading.Event) -> None:
        log.info("projector member %s started", self.member_id)
        try:
            while not stop.is_set():
                try:
                    self._replan()
                    self.membership.tick()
                    self._announce_change()
                except UNANSWERED as exc:
                    log.warning("member %s: Redis did not answer (%s); its runners stall and retry on their own",
                                self.member_id, exc)
                except Exception:  # noqa: BLE001 - the member outlives any one tick (its runners go on)
                    log.exception("member %s: its tick failed; tried again at the next", self.member_id)
                try:
                    self._restart_dead()
                except Exception:  # noqa: BLE001 - given up on the next tick that reaches Redis
                    log.debug("member %s: a dead runner's partition not given up yet", self.member_id, exc_info=True)
                stop.wait(self.membership.interval)
        finally:
            try:
                self.membership.leave()
            except UNANSWERED:
                for partition in list(self.running):  # the leases expire by themselves
                    self._stop(partition)
            log.info("projector member %s stopped", self.member_id)

    def _replan(self) -> None:
        if self.plan is None:
            return
        planned = sorted(self.plan())
        if planned != self.membership.partitions:
            log.info("member %s: the partitions to share are now %s", self.member_id, ", ".join(p.label for p in planned))
            self.changed = True
            self.membership.repartition(planned)

    def _announce_change(self) -> None:
        if self.changed and self.on_change is not None:
            self.on_change()
        self.changed = False

    def _gain(self, claim: Claim) -> None:
        self.changed = True
        entry = _Running(claim, self.build(claim.partition, claim.token), time.monotonic())
        entry.thread = threading.Thread(target=self._run_one, args=(entry,), daemon=True,
                                        name=f"projector-{claim.partition.tag}")
        self.running[claim.partition] = entry
        entry.thread.start()

    @staticmethod
    def _run_one(entry: _Running) -> None:
        try:
            entry.runner.run()
        except BaseException as exc:  # noqa: BLE001 - a runner's end is its member's to handle, not fatal
            entry.error = exc
            expected = isinstance(exc, EXPECTED_ENDS)  # a lease lost, Redis away: said in a line
            log.error("runner of %s ended: %s", entry.claim.partition.label, exc, exc_info=not expected)

    def _lose(self, claim: Claim, why: str) -> None:
        self.changed = True
        log.info("member %s stops %s (%s)", self.member_id, claim.partition.label, why)
        self._stop(claim.partition)

    def _stop(self, partition: Partition) -> None:
        entry = self.running.pop(partition, None)
        if entry is None:
            return
        entry.runner.stop()
        if entry.thread is not None:
            entry.thread.join(self.drain_s)
        if entry.thread is not None and entry.thread.is_alive():
            log.error("runner of %s did not stop within %.0f s; its lease's fence refuses whatever it still commits",
                      partition.label, self.drain_s)

    def _restart_dead(self) -> None:
        now = time.monotonic()
        for partition, entry in list(self.running.items()):
            if entry.thread is None or entry.thread.is_alive() or now - entry.started < self.restart_s:
                continue
            log.warning("the runner of %s ended (%s); its partition is given up and claimed again", partition.label,
                        entry.error)
            del self.running[partition]
            self.membership.give_up(partition)

    def _info(self) -> Mapping[str, str]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        applied = sum(e.runner.status.applied for e in self.running.values())
        return {"host": socket.gethostname(), "pid": str(os.getpid()), "started": str(int(self.started * 1000)),
                "cpu_s": f"{usage.ru_utime + usage.ru_stime:.1f}", "rss_mb": f"{_rss_mb():.1f}", "applied": str(applied)}


def planned(client: redis.Redis, projections: Sequence[str], configured: int) -> list[Partition]:
    """The partitions of ``projections``' live generations (a generation without a layout gets ``configured``)."""
    return [part for name in projections for part in live_partitions(client, name, configured)]


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def main(argv: Sequence[str]) -> None:
    """``python -m projections.projector.member '{"id": ..., "projections": [...], "partitions": P, "config": {RunnerConfig}}'``:
    a member as the tests and benchmarks of ownership run several: no Django (no change notices), and no healer of
    vanished entities (``run_projector`` hands one in; it lives above the projector). SIGTERM stops it cleanly."""
    args = json.loads(argv[0])
    base = RunnerConfig(**args["config"])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    client = connect(base.redis_url)
    shared = shared_reader(base)

    def build(partition: Partition, token: str) -> Runner:
        return Runner(replace(base, projection=partition.projection, partition=partition.index, partitions=partition.count),
                      token=token, client=client, shared=shared)

    count = int(args.get("partitions", 1))
    try:
        Member(client, lambda: planned(client, args["projections"], count), build, base.lease_ms,
               member_id=args.get("id")).run(stop)
    finally:
        shared.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
