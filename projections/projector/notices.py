"""Change notices published after each committed batch, and their group names.

Framework-free: the management command hands :func:`group_name` and the
notice to the Channels layer; the console's consumers join the same groups.
A notice is compact: ids only, each list capped at ``LIMIT`` (``truncated``
says so); a consumer re-reads through ``projections.queries``.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from projections.keys import KeySpace

LIMIT = 50
ALERTS = "risk-alerts"
_ENTITY_LISTS = {"user": "users", "trader": "users", "pair": "pairs", "exchange": "exchanges", "strategy": "strategies"}


def group_name(projection: str) -> str:
    """The Channels group that receives ``projection``'s change notices."""
    return f"changes.{projection}"


def _capped(values: Iterable[str]) -> tuple[list[str], bool]:
    ordered = sorted(set(values))
    return ordered[:LIMIT], len(ordered) > LIMIT


def notice_for(
    projection: str, ks: KeySpace, checkpoint: int, changed: Mapping[tuple[str, str], Any], zsets: Mapping[str, set[str]]
) -> dict[str, Any]:
    """``{"projection", "checkpoint", "users", "pairs", "rankings", "alerts"}`` (+ other entity lists)."""
    lists: dict[str, list[str]] = {"users": [], "pairs": []}
    for kind, ident in changed:
        name = _ENTITY_LISTS.get(kind)
        if name:
            lists.setdefault(name, []).append(ident)
    names = {ks.name_of(key): members for key, members in zsets.items()}
    alerts = names.pop(ALERTS, set())
    notice: dict[str, Any] = {"projection": projection, "checkpoint": checkpoint}
    truncated = False
    for name, values in [*lists.items(), ("rankings", list(names)), ("alerts", list(alerts))]:
        notice[name], cut = _capped(values)
        truncated = truncated or cut
    if truncated:
        notice["truncated"] = True
    return notice
