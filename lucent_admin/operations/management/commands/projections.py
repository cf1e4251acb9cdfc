"""``manage.py projections status [--json]``, ``projections parked [--projection P] [--retry EVENT]``,
``projections park PROJECTION EVENT`` (a stop-policy projection goes on past its bad event) and
``projections resync PROJECTION`` (a projector alive but stuck drops its state and resubscribes)."""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lucent_admin import bootstrap
from lucent_admin.operations import actions
from lucent_admin.operations.audit import Actor, Result
from lucent_admin.operations.recovery import projection_health
from projections.readmodels import PROJECTIONS

STATUS_COLUMNS = ("projection", "health", "effective_state", "alive", "checkpoint", "head", "lag_seconds", "events_behind",
                  "throughput", "parked", "healed", "health_reason")
PARKED_COLUMNS = ("projection", "key", "event_id", "stream", "position", "type", "field", "reason")  # key: --retry


class Command(BaseCommand):
    help = "Projection status (checkpoint, lag, heartbeat, parked events) and parked-event retries."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        status = sub.add_parser("status", help="state, checkpoint, lag, heartbeat and parked count of each projection")
        status.add_argument("--json", action="store_true")
        parked = sub.add_parser("parked", help="list parked events, or ask the projector to retry one")
        parked.add_argument("--projection", choices=PROJECTIONS)
        parked.add_argument("--retry", metavar="EVENT", help="the parked event: stream/id, its commit position, or "
                            "its id alone when no other parked event has it (ids are unique only within a stream)")
        parked.add_argument("--json", action="store_true")
        park = sub.add_parser("park", help="park the bad event a stop-policy projection stopped on, so it resumes")
        park.add_argument("projection", choices=PROJECTIONS)
        park.add_argument("event_id", metavar="EVENT", help="the event it stopped on: its id, stream/id or commit position")
        resync = sub.add_parser("resync", help="make the running projector drop its state and resubscribe")
        resync.add_argument("projection", choices=PROJECTIONS)

    def handle(self, *args: Any, **options: Any) -> None:
        queries = bootstrap.queries()
        if options["action"] == "status":
            rows = [{**asdict(ph.status), "effective_state": ph.status.effective_state, "health": ph.health.state,
                     "health_reason": ph.health.reason} for ph in projection_health().values()]
            self._print(rows, STATUS_COLUMNS, options["json"])
        elif options["action"] == "resync":
            self._report(actions.do_resync(Actor.cli(), options["projection"]))
        elif options["action"] == "park":
            self._report(actions.do_park_bad_event(Actor.cli(), options["projection"], options["event_id"]))
        elif options["retry"]:
            if not options["projection"]:
                raise CommandError("--retry needs --projection (the projection that parked the event)")
            self._report(actions.do_retry_parked(Actor.cli(), options["projection"], options["retry"]))
        else:
            names = [options["projection"]] if options["projection"] else list(PROJECTIONS)
            rows = [{"projection": name, **asdict(p)} for name in names for p in queries.parked_events(name, None)]
            self._print(rows, PARKED_COLUMNS, options["json"])

    def _report(self, result: Result) -> None:
        if not result.ok:
            raise CommandError(result.message)
        self.stdout.write(result.message)

    def _print(self, rows: list[dict[str, Any]], columns: tuple[str, ...], as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(rows, indent=2, default=str))
            return
        self.stdout.write("  ".join(columns))
        for row in rows:
            self.stdout.write("  ".join(str(row.get(c, "")) for c in columns))
