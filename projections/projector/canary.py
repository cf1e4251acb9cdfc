"""The freshness canary: beat appends one every few seconds; each live projector records its arrival.

Contract:

* :func:`append_canary` (beat's ``lucent.append_canary``) appends one ``CanaryAppended`` with a fresh
  id to ``lucent-canary``, carrying the appender's clock in ``appendedAt`` (ms), and records it as the
  newest canary appended (``keys.canary_appended``), so the console can tell "beat appends none" from
  "this projection sees none".
* Every projection subscribes to the canary (its ``event_types``); no fold touches it and its position
  moves the checkpoint like any event's. Only the live runner (``publish_status``) records it:
  :func:`sample_writes` are ZADDs into ``keys.canary_samples`` (with the trims) that ride in the
  batch's commit script, so a sample exists if and only if the batch holding the canary committed,
  once. A rebuild's runner, the reader child, full checks and per-user rebuilds record nothing.
* ``committed_at`` is the projector's clock as it sends the commit. The two clocks are one machine's
  in the embedded stack; in production they are two hosts', so the figure carries their skew (NTP
  keeps it to a few ms; a negative figure means the appender's clock is ahead).

A canary appended longer ago than ``keys.CANARY_HISTORY_MS`` (a catch-up through old history) is
not recorded: it is outside every window the console shows, and a long catch-up would otherwise
write one sample per canary of the whole history.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import redis

from projections import keys
from projections.events import CANARY_STREAM, CANARY_TYPE, CanaryAppended
from projections.eventstore import EventStore, ProposedEvent
from projections.writer import Write

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso_ms(ms: int) -> str:
    """``ms`` since the epoch as ISO-8601 UTC with milliseconds (exact: no float on the way)."""
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def append_canary(store: EventStore, client: redis.Redis, at_ms: int | None = None) -> str:
    """Append one canary (appended at ``at_ms``, default now) and record it as the newest; its id."""
    at = now_ms() if at_ms is None else at_ms
    event_id = uuid.uuid4()
    canary_id = event_id.hex
    position = store.append(CANARY_STREAM, [ProposedEvent(CANARY_TYPE, {"canaryId": canary_id, "appendedAt": iso_ms(at)},
                                                          {"source": "lucent.append_canary"}, id=event_id)])
    client.hset(keys.canary_appended(), mapping={"canaryId": canary_id, "appendedAt": str(at), "position": str(position)})
    return canary_id


def sample_writes(projection: str, canaries: Sequence[CanaryAppended], committed_at: int) -> list[Write]:
    """The commit script's writes recording ``canaries`` as committed at ``committed_at`` (ms)."""
    key = keys.canary_samples(projection)
    fresh = [c for c in canaries if c.appended_at >= committed_at - keys.CANARY_HISTORY_MS]
    if not fresh:
        return []
    writes: list[Write] = [("ZADD", key, str(committed_at), f"{committed_at}:{c.appended_at}:{c.canary_id}") for c in fresh]
    writes.append(("ZREMRANGEBYSCORE", key, "-inf", f"({committed_at - keys.CANARY_HISTORY_MS}"))
    writes.append(("ZREMRANGEBYRANK", key, "0", str(-keys.CANARY_SAMPLES_CAP - 1)))
    return writes
