"""``manage.py job-approve ID [--as OPERATOR]``: a second operator lets a rebuild or rollback start."""
from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lucent_admin.operations import actions
from lucent_admin.operations.cli import actor_as


class Command(BaseCommand):
    help = "Approve a job waiting for a second operator (two-person approval, LUCENT_REBUILD_APPROVAL=1)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job_id", type=int, metavar="ID")
        parser.add_argument("--as", dest="as_user", default=os.environ.get("LUCENT_OPERATOR_USER", "operator"))

    def handle(self, *args: Any, job_id: int, as_user: str, **options: Any) -> None:
        result = actions.do_approve_job(actor_as(as_user), job_id)
        if not result.ok:
            raise CommandError(result.message)
        self.stdout.write(result.message)
