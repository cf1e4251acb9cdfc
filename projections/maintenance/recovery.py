"""Recovery rules: from a projection's health and its read models to the job that heals it.

:func:`decide` is pure: given the health (``projections.health``), the lag, how long each
condition has held and what :func:`missing_read_models` found, it proposes at most one
action. The console's side (``lucent_admin/operations/recovery.py``) keeps the
conditions' clocks, applies the guards (one at a time per projection, a cooldown, at
most K attempts an hour, then an operator is alerted) and queues the job.

Rules (each can be switched off, thresholds on the Settings page):

* **stalled → resync**: STALLED for ``stall_resync_for_s``;
* **lag → resync**: the lag above ``lag_resync_above_s`` for ``lag_resync_for_s`` while it is
  not falling (WARN or STALLED: a catch-up whose lag falls is left alone);
* **missing → repair / rebuild**: read models missing while the checkpoint survived (Redis
  emptied or evicted under a running stack — a projector would not refold them): the
  missing users are repaired (per-user rebuilds), or the projection rebuilt when most of
  a sample is missing or nothing at all is left;
* (**inconsistent → repair** runs inside a scheduled consistency check, see the check's job.)

A projection whose checkpoint went too (Redis emptied whole) is refolded from the start by
its projector on its own: that cold start needs no job, only to be shown.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import redis

from projections.actions import request_resync
from projections.codec import text
from projections.errors import JobCancelled, ProjectionError
from projections.health import Health, HealthState
from projections.keys import KeySpace
from projections.maintenance.control import Control
from projections.maintenance.pointer import live_spaces
from projections.queries import Queries
from projections.readmodels import model

RESYNC, REPAIR, REBUILD = "resync", "repair", "rebuild"
LISTING_MAX = 10_000  # users listed once a sample found some missing (a per-user rebuild job's maximum)


@dataclass(frozen=True)
class Rules:
    lag_resync: bool = True
    lag_resync_above_s: float = 60.0
    lag_resync_for_s: float = 120.0
    stall_resync: bool = True
    stall_resync_for_s: float = 60.0
    repair: bool = True
    repair_below_score: float = 100.0
    missing_rebuild: bool = True
    missing_sample: int = 200
    missing_rebuild_above: float = 50.0  # percent of the sample
    cooldown_s: float = 300.0
    max_attempts_per_hour: int = 3


@dataclass(frozen=True)
class Since:
    """When each timed condition began to hold (epoch ms), None while it does not."""

    lag_high: int | None = None
    stalled: int | None = None


@dataclass(frozen=True)
class Missing:
    projection: str
    checkpoint: int
    sampled: int
    missing_in_sample: int
    users: tuple[str, ...]  # every missing user found (listed once the sample found some), at most LISTING_MAX
    emptied: bool  # no user entity (or no shared read model) left at all

    @property
    def share(self) -> float:
        return 100.0 * self.missing_in_sample / self.sampled if self.sampled else 100.0


@dataclass(frozen=True)
class Proposal:
    rule: str  # e.g. "stalled → resync", what the audit log and the job name as the cause
    action: str  # RESYNC, REPAIR or REBUILD
    reason: str
    users: tuple[str, ...] = ()


def decide(health: Health, lag_seconds: float, since: Since, missing: Missing | None, now_ms: int,
           rules: Rules) -> tuple[Since, Proposal | None]:
    """The conditions' new clocks and the action the rules propose now, if any (module doc)."""
    stalled = health.state is HealthState.STALLED
    lag_high = lag_seconds > rules.lag_resync_above_s and health.state in (HealthState.WARN, HealthState.STALLED)
    since = replace(since, stalled=(since.stalled or now_ms) if stalled else None,
                    lag_high=(since.lag_high or now_ms) if lag_high else None)
    if missing is not None and rules.missing_rebuild and (missing.emptied or missing.users):
        if missing.emptied or missing.share >= rules.missing_rebuild_above:
            what = "nothing is left" if missing.emptied else f"{missing.share:.0f} % of {missing.sampled:,} sampled users"
            return since, Proposal("missing → rebuild", REBUILD,
                                   f"read models missing while the checkpoint survived (at {missing.checkpoint:,}): {what}")
        return since, Proposal("missing → repair", REPAIR,
                               f"{len(missing.users):,} users' read models missing while the checkpoint survived",
                               missing.users)
    if rules.stall_resync and since.stalled is not None and now_ms - since.stalled >= rules.stall_resync_for_s * 1000:
        return since, Proposal("stalled → resync", RESYNC,
                               f"stalled for {(now_ms - since.stalled) / 1000:.0f} s: {health.reason}")
    if rules.lag_resync and since.lag_high is not None and now_ms - since.lag_high >= rules.lag_resync_for_s * 1000:
        return since, Proposal("lag → resync", RESYNC,
                               f"lag {lag_seconds:.0f} s above {rules.lag_resync_above_s:g} s for "
                               f"{(now_ms - since.lag_high) / 1000:.0f} s")
    return since, None


# -- read models missing ------------------------------------------------------------------


def missing_read_models(client: redis.Redis, projection: str, sample: int) -> Missing | None:
    """What of ``projection``'s live read models is missing while its checkpoint survived; None when
    nothing is (or nothing was projected yet: no checkpoint, which its projector handles itself).

    Users: a sample of the members of the projection's user ranking whose entity hash is gone (ranking
    and entity are written in one commit, so a member without its entity lost its keys). Once the
    sample finds one, every member is looked up, up to LISTING_MAX. A projection without a user
    ranking (market, leaderboards) counts as emptied when its checkpoint stands and its main read
    model is gone. A projection split into partitions is looked at in each (``sample`` users from each);
    it counts as emptied only when every partition is (one may rightly hold no user).
    """
    found = [missing for ks in live_spaces(client, projection)
             if (missing := _missing_in(client, ks, sample)) is not None]
    if not found:
        return None
    if len(found) == 1:
        return found[0]
    emptied = len(found) == len(live_spaces(client, projection)) and all(m.emptied for m in found)
    users = tuple(sorted({u for m in found for u in m.users}))
    if not users and not emptied:
        return None
    return Missing(projection, min(m.checkpoint for m in found), sum(m.sampled for m in found),
                   sum(m.missing_in_sample for m in found), users, emptied)


def _missing_in(client: redis.Redis, ks: KeySpace, sample: int) -> Missing | None:
    """:func:`missing_read_models` in one key space (the projection's, or one partition's)."""
    projection = ks.projection
    checkpoint = int(text(client.get(ks.checkpoint)) or 0)
    if not checkpoint:
        return None
    ranking = _ranking(ks)
    if ranking is None:
        return Missing(projection, checkpoint, 0, 0, (), True) if _emptied(client, ks) else None
    members = [text(m) for m in (client.zrandmember(ranking, sample) or [])]  # type: ignore[union-attr]  # sync client
    if not members:
        return Missing(projection, checkpoint, 0, 0, (), True) if _emptied(client, ks) else None
    gone = _without_entity(client, ks, members)
    if not gone:
        return None
    every = [text(m) for m in client.zrange(ranking, 0, LISTING_MAX - 1)]  # type: ignore[union-attr]  # sync client
    users = tuple(sorted(set(gone) | set(_without_entity(client, ks, every))))
    return Missing(projection, checkpoint, len(members), len(gone), users, False)


def _ranking(ks: KeySpace) -> str | None:
    return model(ks.projection).user_ranking(ks)


def _without_entity(client: redis.Redis, ks: KeySpace, users: Sequence[str]) -> list[str]:
    m = model(ks.projection)
    pipe = client.pipeline(transaction=False)
    for user in users:
        pipe.exists(m.main_key(ks, (str(m.user_kind), user)))
    return [user for user, found in zip(users, pipe.execute()) if not found]


def _emptied(client: redis.Redis, ks: KeySpace) -> bool:
    """No key of the generation's read models but its checkpoint (and bookkeeping) is left."""
    presence = model(ks.projection).presence(ks)
    if "*" not in presence:
        return not client.exists(presence)
    return next(iter(client.scan_iter(match=presence, count=1000)), None) is None


# -- resync as a job -------------------------------------------------------------------------

RESYNC_WAIT_S = 30.0


def resync(client: redis.Redis, projection: str, control: Control, wait_s: float = RESYNC_WAIT_S) -> int:
    """Ask the running projector of ``projection`` to resync, and wait until it has resubscribed (its
    status counts one more session); the checkpoint it resubscribed from. Raises NotRunning when no
    projector beats for it, and ProjectionError when it does not resubscribe within ``wait_s``."""
    queries = Queries(client)
    (before,) = queries.projection_status(projection)
    request_resync(client, projection)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        control.report(0, 1, f"waiting for {projection}'s projector to resubscribe")
        if control.cancelled():
            raise JobCancelled(f"resync of {projection} cancelled")
        (now,) = queries.projection_status(projection)
        if now.sessions > before.sessions or now.projector != before.projector:
            control.report(1, 1, "resubscribed")
            return now.checkpoint
        time.sleep(0.1)
    raise ProjectionError(f"the {projection} projector did not resubscribe within {wait_s:.0f} s of the resync "
                          "request; it may be stuck hard: restart it (manage.py run_projector)")
