"""``manage.py rollback PROJECTION [--yes] [--wait] [--as OPERATOR]``: back to the generation the last flip left."""
from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lucent_admin.operations import actions
from lucent_admin.operations.actions import Actor
from lucent_admin.operations.progress import follow_job
from projections.readmodels import PROJECTIONS


class Command(BaseCommand):
    help = "Make the kept generation live again, caught up from its checkpoint first (a job)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("projection", choices=PROJECTIONS)
        parser.add_argument("--yes", action="store_true", help="start without typing the projection's name")
        parser.add_argument("--wait", action="store_true", help="follow the job with a progress bar until it ends")
        parser.add_argument("--as", dest="as_user", default=os.environ.get("LUCENT_OPERATOR_USER", "operator"))

    def handle(self, *args: Any, projection: str, yes: bool, wait: bool, as_user: str, **options: Any) -> None:
        confirm = None if yes else input(f"type {projection!r} to roll back: ").strip()
        try:
            actor = Actor.cli_as(as_user)
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        result = actions.do_rollback(actor, projection, confirm)
        if not result.ok:
            raise CommandError(result.message)
        self.stdout.write(result.message)
        if wait:
            job = follow_job(result.value["job"], self.stderr._out)
            if job.state != job.State.SUCCEEDED:
                raise CommandError(f"job {job.pk} {job.state}: {job.error or job.events.last().message}")
            self.stdout.write(f"job {job.pk} succeeded: {job.events.last().message}")
