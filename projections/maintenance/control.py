"""What a long operation is given by whoever runs it (a job, the command line, a test).

The engine calls :meth:`Control.report` as it goes and :func:`check` at every
safe point; ``check`` raises :class:`~projections.errors.JobCancelled` once a
cancel was asked for, and the engine leaves everything as it was before it
(its writes are atomic per entity, or go to a generation nobody reads).

A job's control also raises :class:`~projections.errors.JobLeaseLost` from
``cancelled`` (and ``report``) once its run lost the job's lease: the engine stops
at that safe point like a cancel, but its cleanup deletes nothing (:func:`owned`)
and the job's row is left to the run that holds the lease now. A lease lost between
two safe points is caught where it matters most by :meth:`Control.fence`: the flip's
script checks the job's lease in the same step as it moves the pointer.
"""
from __future__ import annotations

from typing import Protocol

Fence = tuple[str, str]  # a Redis key, and the value it holds while the run is still the job's

from projections.errors import JobCancelled


class Control(Protocol):
    def report(self, done: int, total: int | None, phase: str = "") -> None:
        """``done`` units of ``total`` (None: not known yet); ``phase`` says what is being done."""

    def cancelled(self) -> bool:
        """True once a cancel was asked for (cheap: it is called often); raises JobLeaseLost once this run
        lost its job (see the module doc)."""

    def fence(self) -> Fence | None:
        """The job's lease as this run holds it, for a script to check in the same step as an irreversible
        write (the flip); None: nothing fences this run (the command line, a test)."""
        return None


class Unattended:
    """A control that reports nowhere and never cancels (tests, the command line's quiet mode)."""

    def report(self, done: int, total: int | None, phase: str = "") -> None:
        return None

    def cancelled(self) -> bool:
        return False

    def fence(self) -> Fence | None:
        return None


def check(control: Control) -> None:
    """Raise JobCancelled if ``control`` was asked to cancel."""
    if control.cancelled():
        raise JobCancelled("cancelled by an operator; nothing of this step was written")


def owned(control: Control) -> None:
    """Raise JobLeaseLost if ``control``'s run lost its job (its ``cancelled`` does); a cancel asked for is no
    loss: the cleanup it calls for goes on."""
    control.cancelled()
