"""``manage.py job-cancel ID [--as OPERATOR]``: ask a job to stop (within a second)."""
from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lucent_admin.operations import actions
from lucent_admin.operations.cli import actor_as


class Command(BaseCommand):
    help = "Cancel a job: it stops within a second and leaves the live read models untouched."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job_id", type=int, metavar="ID")
        parser.add_argument("--as", dest="as_user", default=os.environ.get("LUCENT_OPERATOR_USER", "operator"))

    def handle(self, *args: Any, job_id: int, as_user: str, **options: Any) -> None:
        result = actions.do_cancel_job(actor_as(as_user), job_id)
        if not result.ok:
            raise CommandError(result.message)
        self.stdout.write(result.message)
