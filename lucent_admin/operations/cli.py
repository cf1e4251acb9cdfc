"""What the management commands share: progress bars (drawn by tqdm: done/total, rate and ETA),
following a job to its end, and the ``--as`` account they act as.

On a terminal the bar redraws at most five times a second; on a pipe or a log
file it stays silent and :meth:`ProgressBar.close` writes one summary line, so
logs get the outcome without a line per redraw.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from tqdm import tqdm

from lucent_admin.operations.audit import Actor, Result
from lucent_admin.operations.models import Job


class ProgressBar:
    """Progress of ``total`` items (``None``: open-ended), drawn on ``stream``."""

    def __init__(self, total: int | None, label: str, stream: TextIO, unit: str = "events") -> None:
        self.total, self.label, self.stream, self.unit = total, label, stream, unit
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.done = 0
        self._bar = tqdm(total=total, desc=label, unit=f" {unit}", file=stream, disable=not self.tty,
                         mininterval=0.2, dynamic_ncols=True, leave=True)

    def update_to(self, done: int) -> None:
        """Record ``done`` items so far (the bar redraws when due)."""
        if self.tty:
            self._bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        """Finish the bar on a terminal; elsewhere, write the single summary line."""
        if self.tty:
            self._bar.close()
            return
        elapsed = time.monotonic() - self.started
        self.stream.write(tqdm.format_meter(self.done, self.total, elapsed, prefix=self.label, unit=f" {self.unit}") + "\n")
        self.stream.flush()


def stream_of(output: OutputWrapper) -> TextIO:
    """The terminal or file behind a command's ``stdout``/``stderr`` (what a progress bar draws on)."""
    return cast(TextIO, output._out)


def follow_job(job_id: int, stream: TextIO, poll: float = 0.2) -> Job:
    """Draw job ``job_id``'s progress on ``stream`` until it finishes; return the finished Job."""
    job = Job.objects.get(pk=job_id)
    bar = ProgressBar(job.total, f"job {job_id}", stream, unit=job.unit)
    try:
        while not job.finished:
            bar.total = bar._bar.total = job.total
            bar.update_to(job.done)
            time.sleep(poll)  # polling the job's row: the worker writes it at most twice a second
            job.refresh_from_db()
        bar.update_to(job.done)
    finally:
        bar.close()
    return job


def report_job(command: BaseCommand, result: Result, wait: bool) -> None:
    """What a command that queues a job prints: the action's message; with ``wait``, the job followed
    with a progress bar to its end. CommandError (exit status 1) unless all went well."""
    if not result.ok:
        raise CommandError(result.message)
    command.stdout.write(result.message)
    if not wait or result.job is None:
        return
    job = follow_job(result.job, stream_of(command.stderr))
    last = job.events.last()
    if job.state != job.State.SUCCEEDED:
        raise CommandError(f"job {job.pk} {job.state}: {job.error or (last.message if last else '')}")
    command.stdout.write(f"job {job.pk} succeeded: {last.message if last else ''}")


def actor_as(username: str) -> Actor:
    """The action layer's actor for ``--as username``; CommandError naming the fix if there is no such account."""
    try:
        return Actor.cli_as(username)
    except LookupError as exc:
        raise CommandError(str(exc)) from None


def job_command(help_text: str, action: Callable[[Actor, int], Result], as_required: bool = False) -> type[BaseCommand]:
    """A management command ``ID [--as OPERATOR]`` that applies ``action(actor, job_id)`` to one job;
    ``as_required``: ``--as`` must be given (no default account)."""
    class Command(BaseCommand):
        help = help_text

        def add_arguments(self, parser: CommandParser) -> None:
            parser.add_argument("job_id", type=int, metavar="ID")
            if as_required:
                parser.add_argument("--as", dest="as_user", required=True, metavar="OPERATOR",
                                    help="the account that acts: it must exist, be active and have the permission")
            else:
                parser.add_argument("--as", dest="as_user", default=os.environ.get("LUCENT_OPERATOR_USER", "operator"))

        def handle(self, *args: Any, job_id: int, as_user: str, **options: Any) -> None:
            result = action(actor_as(as_user), job_id)
            if not result.ok:
                raise CommandError(result.message)
            self.stdout.write(result.message)

    return Command
