"""``manage.py rebuild PROJECTION [--partitions N] [--dry-run] [--yes] [--flip-anyway] [--wait] [--as OPERATOR]``: a full
rebuild job."""
from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lucent_admin.operations import actions, fields
from lucent_admin.operations.cli import actor_as, report_job
from projections.readmodels import PROJECTIONS


class Command(BaseCommand):
    help = "Rebuild a projection into a new generation beside the live one, verify, and flip atomically (a job)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("projection", choices=PROJECTIONS)
        parser.add_argument("--partitions", type=int, default=None,
                            help="split the new generation into N partitions (a power of two; default: as the live one)")
        parser.add_argument("--dry-run", action="store_true", help="show the plan (events, memory) and stop")
        parser.add_argument("--yes", action="store_true", help="start without typing the projection's name")
        parser.add_argument("--flip-anyway", action="store_true", help="flip even if the verification sample differs")
        parser.add_argument("--wait", action="store_true", help="follow the job with a progress bar until it ends")
        parser.add_argument("--as", dest="as_user", default=os.environ.get("LUCENT_OPERATOR_USER", "operator"))

    def handle(self, *args: Any, projection: str, partitions: int | None, dry_run: bool, yes: bool, flip_anyway: bool,
               wait: bool, as_user: str, **options: Any) -> None:
        problem = fields.partition_count(partitions, projection)
        if problem:
            raise CommandError(f"--partitions: {problem}")
        plan = actions.rebuild_dry_run(projection, partitions)
        self.stdout.write(f"plan: fold up to {plan.events:,} events of {projection} into generation {plan.target} "
                          f"({plan.split}) beside generation {plan.live}; a second generation takes about "
                          f"{plan.estimated_bytes / 2**20:,.1f} MiB ({plan.keys:,} keys); Redis uses {plan.used_bytes / 2**20:,.1f} MiB"
                          + (f" of {plan.max_bytes / 2**20:,.1f}" if plan.max_bytes else ""))
        if plan.refusal:
            raise CommandError(f"refused: {plan.refusal}")
        if dry_run:
            return
        confirm = None if yes else input(f"type {projection!r} to start: ").strip()
        actor = actor_as(as_user)
        result = actions.do_rebuild(actor, projection, confirm, flip_anyway, partitions)
        report_job(self, result, wait)
