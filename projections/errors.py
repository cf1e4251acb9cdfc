"""The error family of the projection engine. Messages name the thing and the fix."""
from __future__ import annotations

import re

# ``scheme://user:password@`` (or ``scheme://:password@``): the password part of a URI's credentials.
_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*:)[^\s/?#]*@")


def redact(text: str) -> str:
    """``text`` with the password of every URI in it replaced by ``***`` (user names and hosts stay)."""
    return _CREDENTIALS.sub(r"\g<head>***@", text)


class ProjectionError(Exception):
    """Base of every error raised by ``projections``."""


class ConfigurationError(ProjectionError):
    """A setting is malformed; the message names the variable and the fix."""

    def __init__(self, variable: str, problem: str) -> None:
        problem = redact(problem)  # a message names the URI, never its password
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class EventStoreUnavailable(ProjectionError):
    """The event store could not be reached or answered with a transport error."""


class BadEvent(ProjectionError):
    """An event failed to decode or validate; it is parked, never folded.

    ``field`` names the offending field (``"data"`` for the payload as a whole)
    and ``reason`` says what is wrong with it.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class InvalidIdentifier(ProjectionError):
    """A user id, pair or other identifier given to a query is malformed."""

    def __init__(self, what: str, value: object, expected: str) -> None:
        super().__init__(f"{what} {value!r} is not valid; expected {expected}")
        self.what = what
        self.value = value


class Fenced(ProjectionError):
    """Another projector holds this projection's lease or moved its checkpoint.

    The runner stops: two projectors of one projection must never interleave.
    """


class Flipped(Fenced):
    """The generation this (rebuild) writer filled was flipped live: the live projector writes it now."""


class LayoutChanged(Flipped):
    """The live generation is split into another partition count than this live runner's partition belongs to (a
    rebuild into another count was flipped): the runner stops; its member runs the new layout's partitions."""


class ProjectionStopped(ProjectionError):
    """The projection stopped on a bad event because its policy is ``stop``.

    ``event_id`` names the event as ``stream/id`` (:func:`projections.keys.parked_member`); an operator's park
    decision for it lets the projection resume.
    """

    def __init__(self, message: str, event_id: str) -> None:
        super().__init__(message)
        self.event_id = event_id


class NotStoppedOn(ProjectionError):
    """An operator asked to park an event the projection is not stopped on."""


class NotParked(ProjectionError):
    """An operator asked to retry an event the projection has not parked."""


class AmbiguousEvent(ProjectionError):
    """An operator named a parked event by an id that several streams' parked events have (event ids are unique
    only within a stream); the message lists them as ``stream/id`` and their commit positions."""


class StreamDeleted(ProjectionError):
    """An append named a stream that was tombstoned (deleted for good); nothing was appended."""


class CheckpointMoved(ProjectionError):
    """The checkpoint changed under a batch (a restart or a rebuild); reload and resume."""


class EpochMoved(CheckpointMoved):
    """Another writer (a per-user rebuild) changed entities under a batch: fold it again from Redis."""


class EntityLost(CheckpointMoved):
    """Keys of entities the batch was folded from vanished behind the projector's back (eviction, a lossy
    failover): nothing was written; the entities are healed (refolded from their events) and the batch folded
    again, so a write never produces a partial entity. ``keys`` names the keys found missing or moved."""

    def __init__(self, message: str, keys: tuple[str, ...]) -> None:
        super().__init__(message)
        self.keys = keys


class RedisRefusesWrites(ProjectionError):
    """Redis is out of memory (``maxmemory`` reached, nothing to evict) and refused a commit whole: nothing was
    written; the projector retries until Redis has room again."""

    def __init__(self, reply: str) -> None:
        super().__init__(f"Redis refuses writes (out of memory): {reply[:200]}")


class LeaseLost(ProjectionError):
    """The lease expired and nobody holds it (e.g. Redis restarted): take it again and resume."""


class ResyncRequested(ProjectionError):
    """An operator asked the projector to drop its in-memory state and resubscribe from its checkpoint."""


class GenerationMoved(ResyncRequested):
    """The live generation's pointer moved (a flip) under the live projector: its batch was not written; it
    drops its state and resubscribes on the generation the pointer names, from that generation's checkpoint."""


class NotRunning(ProjectionError):
    """The action needs a running projector and none beats for the projection."""


class JobCancelled(ProjectionError):
    """An operator cancelled the job; it stopped at a safe point and wrote nothing more."""


class JobLeaseLost(ProjectionError):
    """This run of a job lost the job's lease (it expired, or another run holds it now): the run stops at its
    next safe point, writes nothing more and leaves the job's row, and its cleanup, to the run that holds it."""


class RebuildContended(ProjectionError):
    """A per-user rebuild kept losing the race with live events for the user; try again later."""
