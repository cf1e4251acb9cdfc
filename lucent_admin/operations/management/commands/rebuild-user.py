"""``manage.py rebuild-user USER [USER ...] [--wait] [--as OPERATOR]``: a per-user rebuild, as a job."""
from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lucent_admin.operations import actions
from lucent_admin.operations.actions import Actor
from lucent_admin.operations.progress import follow_job


class Command(BaseCommand):
    help = "Rebuild the read models of one or more users from the event store (a job run by a worker)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("users", nargs="+", metavar="USER")
        parser.add_argument("--wait", action="store_true", help="follow the job with a progress bar until it ends")
        parser.add_argument("--as", dest="as_user", default=os.environ.get("LUCENT_OPERATOR_USER", "operator"),
                            help="the account whose permission it runs with (default: the operator account)")

    def handle(self, *args: Any, users: list[str], wait: bool, as_user: str, **options: Any) -> None:
        try:
            actor = Actor.cli_as(as_user)
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        result = actions.do_rebuild_users(actor, users)
        if not result.ok:
            raise CommandError(result.message)
        self.stdout.write(result.message)
        if wait:
            job = follow_job(result.value["job"], self.stderr._out)
            if job.state != job.State.SUCCEEDED:
                raise CommandError(f"job {job.pk} {job.state}: {job.error or job.events.last().message}")
            self.stdout.write(f"job {job.pk} succeeded: {job.events.last().message}")
