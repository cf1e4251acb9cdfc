"""``manage.py projections status [--json]``, ``projections parked [--projection P] [--retry ID]``
and ``projections park PROJECTION EVENT_ID`` (a stop-policy projection goes on past its bad event)."""
from __future__ import annotations

import json
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from lucent_admin.operations import audit
from lucent_admin.operations.models import AuditEntry
from projections.keys import PROJECTIONS
from projections.errors import NotStoppedOn
from projections.service import park_bad_event, parked_rows, retry_parked, status_rows

STATUS_COLUMNS = ("projection", "state", "alive", "checkpoint", "head", "lag_seconds", "events_behind", "throughput", "parked", "last_error")


class Command(BaseCommand):
    help = "Projection status (checkpoint, lag, heartbeat, parked events) and parked-event retries."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        status = sub.add_parser("status", help="state, checkpoint, lag, heartbeat and parked count of each projection")
        status.add_argument("--json", action="store_true")
        parked = sub.add_parser("parked", help="list parked events, or ask the projector to retry one")
        parked.add_argument("--projection", choices=PROJECTIONS)
        parked.add_argument("--retry", metavar="EVENT_ID")
        parked.add_argument("--json", action="store_true")
        park = sub.add_parser("park", help="park the bad event a stop-policy projection stopped on, so it resumes")
        park.add_argument("projection", choices=PROJECTIONS)
        park.add_argument("event_id")

    def handle(self, *args: Any, **options: Any) -> None:
        client = redis.Redis.from_url(settings.REDIS_URL)
        if options["action"] == "status":
            self._print(status_rows(client), STATUS_COLUMNS, options["json"])
            return
        if options["action"] == "park":
            target = f"{options['projection']}/{options['event_id']}"
            try:
                park_bad_event(client, options["projection"], options["event_id"])
            except NotStoppedOn as exc:
                audit.record_cli("parked.decide", target, AuditEntry.Outcome.FAILED, str(exc))
                raise CommandError(str(exc)) from None
            audit.record_cli("parked.decide", target)
            self.stdout.write(f"{options['event_id']} will be parked; {options['projection']} resumes past it")
            return
        if options["retry"]:
            if not options["projection"]:
                raise CommandError("--retry needs --projection (the projection that parked the event)")
            target = f"{options['projection']}/{options['retry']}"
            if not retry_parked(client, options["projection"], options["retry"]):
                audit.record_cli("parked.retry", target, AuditEntry.Outcome.FAILED, "not parked")
                raise CommandError(f"event {options['retry']} is not parked by {options['projection']}")
            audit.record_cli("parked.retry", target)
            self.stdout.write(f"retry of {options['retry']} requested; the running projector applies it")
            return
        self._print(parked_rows(client, options["projection"]), ("projection", "eventId", "stream", "position", "type", "field", "reason"), options["json"])

    def _print(self, rows: list[dict[str, Any]], columns: tuple[str, ...], as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(rows, indent=2, default=str))
            return
        self.stdout.write("  ".join(columns))
        for row in rows:
            self.stdout.write("  ".join(str(row.get(c, "")) for c in columns))
