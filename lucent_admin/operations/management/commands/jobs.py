"""``manage.py jobs [--json] [--limit N]``: the newest jobs with their progress."""
from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from lucent_admin.operations.models import Job

COLUMNS = ("id", "kind", "target", "state", "done", "total", "rate", "eta_seconds", "requested_by", "phase")


class Command(BaseCommand):
    help = "List the newest jobs: kind, target, state, progress, rate, ETA."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--limit", type=int, default=20)

    def handle(self, *args: Any, **options: Any) -> None:
        rows = list(Job.objects.values(*COLUMNS, "error", "created_at", "finished_at")[: options["limit"]])
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2, default=str))
            return
        self.stdout.write("  ".join(COLUMNS))
        for row in rows:
            self.stdout.write("  ".join(str(row[c] if row[c] is not None else "—") for c in COLUMNS))
