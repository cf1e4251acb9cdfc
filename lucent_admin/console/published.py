"""The user page's "Published events": what the live projector published about the user, from the store."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from lucent_admin.bootstrap import event_store
from projections.errors import EventStoreUnavailable
from projections.events import PortfolioSignificantlyUpdated, RiskLevelChanged
from projections.queries import PublishedEvent, published_events

RECENT = 10


def user_published(params: Any) -> dict[str, Any]:
    user = params["user"]
    try:
        events = published_events(event_store(), user, RECENT)
    except EventStoreUnavailable as exc:
        return {"user": user, "rows": [], "unavailable": str(exc)}
    return {"user": user, "rows": [_row(e) for e in events], "unavailable": ""}


def _row(event: PublishedEvent) -> dict[str, Any]:
    at = datetime.fromtimestamp(event.at / 1000, tz=timezone.utc)
    if isinstance(event, RiskLevelChanged):
        return {"event": event, "at": at, "kind": "risk", "old_level": event.old_level, "new_level": event.new_level,
                "reasons": ", ".join(event.reasons)}
    assert isinstance(event, PortfolioSignificantlyUpdated)
    change = (event.new_value - event.old_value) / abs(event.old_value) * 100 if event.old_value else None
    return {"event": event, "at": at, "kind": "portfolio", "change": change}
