"""``manage.py consistency [--projection P] [--user U ... | --sample N | --all] [--repair] [--json] [--as OPERATOR]``

A consistency check as a job, followed with a progress bar to its end. Exit status 0 when every entity
checked is consistent, 1 when not, 2 when the check itself could not run.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lucent_admin.formats import consistency
from lucent_admin.operations import actions
from lucent_admin.operations.cli import actor_as, follow_job, stream_of
from projections.readmodels import PROJECTIONS

SHOWN = 20  # differences printed (--json prints every one the report kept)


class Command(BaseCommand):
    help = "Compare read models with a replay of their events, field by field, and explain each difference (a job)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--projection", choices=PROJECTIONS, default="",
                            help="one projection (default: all; market only with --all)")
        scope = parser.add_mutually_exclusive_group(required=True)
        scope.add_argument("--user", dest="users", nargs="+", metavar="USER", help="these users")
        scope.add_argument("--sample", type=int, metavar="N", help="the next N users of each projection's rolling sample")
        scope.add_argument("--all", dest="everything", action="store_true",
                           help="everything: each projection's whole history replayed, shared read models included")
        parser.add_argument("--repair", action="store_true", help="rebuild the inconsistent users it finds (a job)")
        parser.add_argument("--json", dest="as_json", action="store_true", help="print the report as JSON")
        parser.add_argument("--as", dest="as_user", default=os.environ.get("LUCENT_OPERATOR_USER", "operator"))

    def handle(self, *args: Any, projection: str, users: list[str] | None, sample: int | None, everything: bool,
               repair: bool, as_json: bool, as_user: str, **options: Any) -> None:
        result = actions.do_check_consistency(actor_as(as_user), projection, users or [], sample or 0, everything, repair)
        if not result.ok or result.job is None:
            raise CommandError(result.message, returncode=2)
        self.stderr.write(result.message)
        job = follow_job(result.job, stream_of(self.stderr))
        if job.state != job.State.SUCCEEDED:
            raise CommandError(f"job {job.pk} {job.state}: {job.error}", returncode=2)
        report = job.result
        if as_json:
            self.stdout.write(json.dumps({"job": job.pk, **report}, indent=2))
        else:
            self._print(job.pk, report)
        if report.get("difference_count"):
            sys.exit(1)

    def _print(self, job_id: int, report: dict[str, Any]) -> None:
        shown = consistency(report.get("score"))
        self.stdout.write(f"job {job_id}: {report.get('scope')}: consistency {shown} ({report.get('consistent', 0):,} of "
                          f"{report.get('checked', 0):,} entities consistent), {report.get('difference_count', 0):,} "
                          f"differences, in {report.get('seconds', 0):,.1f} s")
        for d in report.get("differences", [])[:SHOWN]:
            event = d.get("event") or {}
            behind = f"; last set by {event['type']} {event['event_id']} at {event['position']}" if event else ""
            self.stdout.write(f"  {d['projection']} {d['user']}: {d['key']} {d['field']} {d['kind']}: expected "
                              f"{d['expected'] or '(nothing)'}, Redis has {d['actual'] or '(nothing)'}{behind}. {d['cause']}")
        if report.get("difference_count", 0) > SHOWN:
            self.stdout.write(f"  ... and {report['difference_count'] - SHOWN:,} more (--json for the report)")
        if report.get("users_to_repair"):
            repair = report.get("repair_job")
            self.stdout.write(f"users to repair: {', '.join(report['users_to_repair'])}"
                              + (f" (repair queued as job {repair})" if repair else " (run again with --repair)"))
