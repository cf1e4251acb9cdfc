"""``manage.py rebuild-user USER [USER ...] [--wait] [--as OPERATOR]``: a per-user rebuild, as a job."""
from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from lucent_admin.operations import actions
from lucent_admin.operations.cli import actor_as, report_job


class Command(BaseCommand):
    help = "Rebuild the read models of one or more users from the event store (a job run by a worker)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("users", nargs="+", metavar="USER")
        parser.add_argument("--wait", action="store_true", help="follow the job with a progress bar until it ends")
        parser.add_argument("--as", dest="as_user", default=os.environ.get("LUCENT_OPERATOR_USER", "operator"),
                            help="the account whose permission it runs with (default: the operator account)")

    def handle(self, *args: Any, users: list[str], wait: bool, as_user: str, **options: Any) -> None:
        actor = actor_as(as_user)
        result = actions.do_rebuild_users(actor, users)
        report_job(self, result, wait)
