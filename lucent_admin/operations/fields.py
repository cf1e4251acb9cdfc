"""The checks of an operator's input, defined once: the action layer validates every field with them (whoever
calls it: the console, the command line, a task), and the console's forms show the same messages beside the
field.

Each check returns "" or a message naming the field's label and the fix; :func:`problems` puts the field's name
in front, as the action layer reports and audits them ("alert_id: Alert id must be ...").
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence

from projections.events import NOTE_MAX, is_identifier
from projections.partitions import MAX_PARTITIONS
from projections.readmodels import PROJECTIONS, model

ID_HELP = "1–64 characters: letters, digits, '_', '.' or '-'"
MAX_USERS_PER_JOB = 10_000


def problems(**found: str) -> str:
    """The problems found, ``field: message`` joined by "; " ("" when there are none)."""
    return "; ".join(f"{name}: {message}" for name, message in found.items() if message)


def identifier(label: str, value: str) -> str:
    """A user, alert or other platform id (what the event catalog accepts)."""
    return "" if is_identifier(value) else f"{label} must be {ID_HELP}."


def one_of(label: str, value: str, allowed: Sequence[str], otherwise: str = "") -> str:
    """A choice among ``allowed`` (``otherwise``: what leaving it empty means, said after the list)."""
    if value in allowed or (otherwise and not value):
        return ""
    return f"{label} must be one of {', '.join(allowed)}{f' (or none: {otherwise})' if otherwise else ''}."


def note(value: str) -> str:
    return "" if len(value) <= NOTE_MAX else f"Note must be at most {NOTE_MAX:,} characters (it has {len(value):,})."


def _is_uuid(value: str) -> bool:
    try:
        return bool(uuid.UUID(value))
    except ValueError:
        return False


def event_name(value: str) -> str:
    """An event as an operator names it: its id (a UUID), ``stream/id`` (ids are unique only within a stream) or
    its commit position."""
    stream, slash, event_id = value.rpartition("/")
    if value.isdigit() or (value.isprintable() and (not slash or stream.strip()) and _is_uuid(event_id)):
        return ""
    return "Event must be an event id (a UUID), stream/event id, or a commit position."


def users(values: Sequence[str]) -> str:
    """The users of a per-user rebuild or a check: at least one, at most a job's worth, each an id."""
    if not values:
        return "give at least one user id"
    if len(values) > MAX_USERS_PER_JOB:
        return f"at most {MAX_USERS_PER_JOB:,} users per job, got {len(values):,}; split the list"
    bad = [u for u in values if not is_identifier(u)]
    return f"{bad[0][:64]!r} is not a user id ({ID_HELP})" if bad else ""


def partition_count(value: int | None, projection: str) -> str:
    """The partition count a rebuild splits its new generation into (None: the live generation's count): a power of
    two; the market (keyed by pair) is always one partition."""
    if value is None:
        return ""
    if not 1 <= value <= MAX_PARTITIONS or value & (value - 1):
        return f"Partitions must be a power of two from 1 to {MAX_PARTITIONS:,} (1, 2, 4, … {MAX_PARTITIONS:,}), got {value}."
    if value > 1 and projection in PROJECTIONS and model(projection).user_kind is None:
        return f"Partitions must be 1 for {projection}: it is keyed by pair, not by user, and is never split."
    return ""
