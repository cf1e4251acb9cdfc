"""The infrastructure sampler's wiring: measure and record (``projections/infrastructure.py``), then tell the
Infrastructure page's open sockets that a new sample is there."""
from __future__ import annotations

import logging
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from lucent_admin import bootstrap
from projections import infrastructure
from projections.eventstore import EventStore
from projections.projector.notices import group_name
from projections.readmodels import PROJECTIONS

log = logging.getLogger(__name__)

INFRASTRUCTURE = "infrastructure"  # the widgets' dependency and the notices' "projection"
HEALTH = "health"  # the health states and recovery: the tiles' and the Recovery panel's dependency
SHARDS = "shards"  # which member owns which partition: the Shards page's dependency, announced by the members


def sample_infrastructure(now_ms: int | None = None) -> dict[str, float]:
    """Record one sample of every infrastructure series; what was recorded."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    try:
        store: EventStore | None = bootstrap.event_store()
    except Exception as exc:  # noqa: BLE001 - a store that does not answer is left out of the sample
        log.warning("infrastructure sample without the event store: %s", exc)
        store = None
    figures = infrastructure.record_samples(bootstrap.redis_client(), store, PROJECTIONS,
                                            bootstrap.queries().projection_status, now)
    announce(INFRASTRUCTURE, now)
    return figures


def announce(name: str, now_ms: int) -> None:
    """Tell the open pages whose widgets depend on ``name`` (a pseudo-projection: ``infrastructure``,
    ``health``, ``shards``) that it changed at ``now_ms``; never fails the caller (a page catches up on the next one)."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        notice = {"projection": name, "checkpoint": now_ms}
        async_to_sync(layer.group_send)(group_name(name), {"type": "change.notice", "notice": notice})
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.warning("%s: change notice not sent: %s", name, exc)
