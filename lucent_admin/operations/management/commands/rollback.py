"""``manage.py rollback PROJECTION [--yes] [--wait] [--as OPERATOR]``: back to the generation the last flip left."""
from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lucent_admin.operations import actions
from lucent_admin.operations.audit import Result
from lucent_admin.operations.cli import actor_as, report_job
from lucent_admin.operations.models import Job
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
        actor = actor_as(as_user)
        result = actions.do_rollback(actor, projection, confirm)
        try:
            report_job(self, result, wait)
        except CommandError:
            self._differences(result)
            raise

    def _differences(self, result: Result) -> None:
        """A rollback refused by its verification: the differences it found, before the reason."""
        job = Job.objects.filter(pk=result.job).first() if result.job is not None else None
        if job is None:
            return
        found = job.result.get("differences", [])
        if found:
            self.stdout.write(f"differences from a replay ({job.result['difference_count']} in all; key, field, kind, "
                              "replay gives, the kept generation holds):")
        for d in found:
            self.stdout.write(f"  {d['key']}  {d['field'] or '(whole key)'}  {d['kind']}  {d['replay'][:60] or '(nothing)'}"
                              f"  {d['kept'][:60] or '(nothing)'}")
