"""Running several projections in one process.

Decision: one thread per projection, each with its own subscription,
checkpoint and lease. Projections stay independent (one can be stopped by a
bad event, rebuilt or moved to another process without touching the others),
and a thread spends its time waiting on gRPC and Redis, where the GIL is
released. A crashed thread does not take the others down; the call returns
when all have returned, and raises the first fatal error, if any.

The live projector runs them as a member (:mod:`projections.projector.member`), which starts a runner per
partition it owns through :func:`runner_factory`; a catch-up that exits (``--exit-when-caught-up``) runs every
chosen projection here at once (:func:`build_runners`, :func:`run_all`).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import redis

from projections.partitions import Partition
from projections.projector.fanout import SharedReader
from projections.projector.runner import Notifier, Runner, RunnerConfig
from projections.projector.vanished import Healer
from projections.readmodels import PROJECTIONS

log = logging.getLogger(__name__)


def build_runners(
    partitions: Sequence[Partition],
    base: RunnerConfig,
    policies: Mapping[str, Mapping[str, Any]],
    notifier_for: Callable[[str], Notifier] | None = None,
    healer: Healer | None = None,
    client: redis.Redis | None = None,
) -> list[Runner]:
    """One runner per partition (every projection as one when ``partitions`` is empty), from plain settings
    values; ``healer`` rebuilds entities that vanished behind them (``projector/vanished.py``); ``client``: the
    process's Redis client."""
    build = runner_factory(base, policies, notifier_for, healer, client)
    return [build(p, None) for p in list(partitions) or [Partition(name) for name in PROJECTIONS]]


def runner_factory(
    base: RunnerConfig,
    policies: Mapping[str, Mapping[str, Any]],
    notifier_for: Callable[[str], Notifier] | None = None,
    healer: Healer | None = None,
    client: redis.Redis | None = None,
    shared: SharedReader | None = None,
) -> Callable[[Partition, str | None], Runner]:
    """What builds the runner of a partition from plain settings values, fenced by a token (None: its own), on
    the process's Redis ``client`` (None: each its own), reading from the process's ``shared`` reader of ``$all``
    (None: each its own subscription)."""

    def build(partition: Partition, token: str | None) -> Runner:
        name = partition.projection
        config = replace(base, projection=name, partition=partition.index, partitions=partition.count,
                         on_bad_event=str(policies.get(name, {}).get("on_bad_event", "park")))
        return Runner(config, notifier_for(name) if notifier_for else None, healer=healer, token=token, client=client,
                      shared=shared)

    return build


def run_all(runners: Sequence[Runner], stop: threading.Event) -> None:
    """Run ``runners`` in threads until they return or ``stop`` is set; re-raise the first failure."""
    failures: list[BaseException] = []

    def target(runner: Runner) -> None:
        try:
            runner.run()
        except BaseException as exc:  # noqa: BLE001 - reported below, after the others stopped
            failures.append(exc)

    threads = [threading.Thread(target=target, args=(r,), name=f"projector-{r.tag}") for r in runners]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        if stop.wait(0.2):
            for runner in runners:
                runner.stop()
        for thread in threads:
            thread.join(timeout=0.01)
    if failures:
        raise failures[0]

