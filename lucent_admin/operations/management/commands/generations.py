"""``manage.py generations list [--projection P] [--json]`` and
``manage.py generations drop PROJECTION GENERATION [--yes] [--wait] [--as OPERATOR]``.

Every generation present in Redis with its role, keys and memory (an estimate: MEMORY USAGE of a sample of its
keys), as the Projections page lists them; and the drop of one that is neither live nor being written (a job,
through the action layer: permission ``operations.run_rebuild``, audited).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lucent_admin import bootstrap
from lucent_admin.operations import actions
from lucent_admin.operations.cli import actor_as, report_job
from projections.readmodels import PROJECTIONS

COLUMNS = ("projection", "generation", "role", "keys", "bytes", "checkpoint", "kept_since_ms")


class Command(BaseCommand):
    help = "List each projection's generations (role, keys, memory), or drop one that is neither live nor being written."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="every generation present, with its role, keys and estimated memory")
        listing.add_argument("--projection", choices=PROJECTIONS)
        listing.add_argument("--json", action="store_true")
        drop = sub.add_parser("drop", help="drop a generation that is neither live nor being written (a job)")
        drop.add_argument("projection", choices=PROJECTIONS)
        drop.add_argument("generation", type=int)
        drop.add_argument("--yes", action="store_true", help="drop without typing the generation's number")
        drop.add_argument("--wait", action="store_true", help="follow the job with a progress bar until it ends")
        drop.add_argument("--as", dest="as_user", default=os.environ.get("LUCENT_OPERATOR_USER", "operator"))

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            names = [options["projection"]] if options["projection"] else list(PROJECTIONS)
            rows = [{**asdict(g), "role": str(g.role)} for name in names for g in bootstrap.queries().generations(name, 0)]
            if options["json"]:
                self.stdout.write(json.dumps(rows, indent=2))
                return
            self.stdout.write("  ".join(COLUMNS) + "  (bytes: estimated from a sample of keys)")
            for row in rows:
                self.stdout.write("  ".join(str(row[c]) for c in COLUMNS))
            return
        projection, generation = options["projection"], options["generation"]
        if not options["yes"] and input(f"type {generation} to drop generation {generation} of {projection}: ").strip() != str(generation):
            raise CommandError("not confirmed; nothing dropped")
        result = actions.do_drop_generation(actor_as(options["as_user"]), projection, generation)
        if result.ok and result.job is None:
            self.stdout.write(result.message)
            return
        report_job(self, result, options["wait"])
