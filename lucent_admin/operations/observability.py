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
INFRASTRUCTURE_GROUP = group_name(INFRASTRUCTURE)


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
    layer = get_channel_layer()
    if layer is not None:
        try:
            notice = {"projection": INFRASTRUCTURE, "checkpoint": now}
            async_to_sync(layer.group_send)(INFRASTRUCTURE_GROUP, {"type": "change.notice", "notice": notice})
        except Exception as exc:  # noqa: BLE001 - an open page catches up on the next sample
            log.warning("infrastructure sample: change notice not sent: %s", exc)
    return figures
