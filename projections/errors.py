"""The error family of the projection engine. Messages name the thing and the fix."""
from __future__ import annotations


class ProjectionError(Exception):
    """Base of every error raised by ``projections``."""


class ConfigurationError(ProjectionError):
    """A setting is malformed; the message names the variable and the fix."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class EventStoreUnavailable(ProjectionError):
    """The event store could not be reached or answered with a transport error."""
