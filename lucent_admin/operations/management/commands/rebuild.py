"""``manage.py rebuild PROJECTION [--dry-run] [--yes] [--flip-anyway] [--wait] [--as OPERATOR]``: a full rebuild job."""
from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lucent_admin import bootstrap
from lucent_admin.operations import actions
from lucent_admin.operations.cli import actor_as, report_job
from projections.maintenance.plan import plan_rebuild
from projections.readmodels import PROJECTIONS


class Command(BaseCommand):
    help = "Rebuild a projection into a new generation beside the live one, verify, and flip atomically (a job)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("projection", choices=PROJECTIONS)
        parser.add_argument("--dry-run", action="store_true", help="show the plan (events, memory) and stop")
        parser.add_argument("--yes", action="store_true", help="start without typing the projection's name")
        parser.add_argument("--flip-anyway", action="store_true", help="flip even if the verification sample differs")
        parser.add_argument("--wait", action="store_true", help="follow the job with a progress bar until it ends")
        parser.add_argument("--as", dest="as_user", default=os.environ.get("LUCENT_OPERATOR_USER", "operator"))

    def handle(self, *args: Any, projection: str, dry_run: bool, yes: bool, flip_anyway: bool, wait: bool, as_user: str,
               **options: Any) -> None:
        plan = plan_rebuild(bootstrap.redis_client(), bootstrap.runner_config(projection))
        self.stdout.write(f"plan: fold up to {plan.events:,} events of {projection} into generation {plan.target} beside "
                          f"generation {plan.live}; a second generation takes about {plan.estimated_bytes / 2**20:,.1f} MiB "
                          f"({plan.keys:,} keys); Redis uses {plan.used_bytes / 2**20:,.1f} MiB"
                          + (f" of {plan.max_bytes / 2**20:,.1f}" if plan.max_bytes else ""))
        if plan.refusal:
            raise CommandError(f"refused: {plan.refusal}")
        if dry_run:
            return
        confirm = None if yes else input(f"type {projection!r} to start: ").strip()
        actor = actor_as(as_user)
        result = actions.do_rebuild(actor, projection, confirm, flip_anyway)
        report_job(self, result, wait)
