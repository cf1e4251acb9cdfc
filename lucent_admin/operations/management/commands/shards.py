"""``manage.py shards [--json]``: the projector members and the partitions they own — per partition its owner,
fencing epoch, lease left, state, checkpoint, lag and rate; per member its partitions, events/s, CPU and memory."""
from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from lucent_admin import bootstrap
from lucent_admin.formats import KINDS, rate, seconds
from projections.queries import MemberRow, PartitionRow


def partition_fields(row: PartitionRow) -> dict[str, Any]:
    return {"partition": row.partition.label, "tag": row.partition.tag, "owner": row.owner, "epoch": row.epoch,
            "lease_left_ms": row.lease_left_ms, "state": row.state.value, "checkpoint": row.checkpoint,
            "lag_seconds": row.lag_seconds, "events_behind": row.events_behind, "events_per_second": row.throughput,
            "updated_at": row.updated_at}


def member_fields(row: MemberRow) -> dict[str, Any]:
    return {"member": row.member, "host": row.host, "pid": row.pid, "partitions": list(row.partitions),
            "events_per_second": row.events_per_second, "cpu_seconds": row.cpu_seconds, "rss_mb": row.rss_mb,
            "started_at": row.started_at, "expires_in_ms": row.expires_in_ms}


class Command(BaseCommand):
    help = "Projector members and the partitions they own (owner, epoch, lease, checkpoint, lag, rate)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="one JSON document: partitions and members")

    def handle(self, *args: Any, **options: Any) -> None:
        shards = bootstrap.queries().shards()
        if options["json"]:
            self.stdout.write(json.dumps({"partitions": [partition_fields(p) for p in shards.partitions],
                                          "members": [member_fields(m) for m in shards.members]}, indent=2))
            return
        self.stdout.write(f"{'partition':<16} {'owner':<34} {'epoch':>5} {'lease':>7} {'state':<12} {'checkpoint':>12} "
                          f"{'lag':>8} {'events/s':>9}")
        for p in shards.partitions:
            self.stdout.write(f"{p.partition.label:<16} {p.owner or '(nobody)':<34} {p.epoch:>5} "
                              f"{seconds(p.lease_left_ms / 1000):>7} {p.state.value:<12} {p.checkpoint:>12} "
                              f"{seconds(p.lag_seconds):>8} {rate(p.throughput):>9}")
        self.stdout.write("")
        self.stdout.write(f"{'member':<34} {'partitions':<40} {'events/s':>9} {'CPU':>8} {'memory':>9}")
        for m in shards.members:
            self.stdout.write(f"{m.member:<34} {', '.join(m.partitions) or '(none)':<40} {rate(m.events_per_second):>9} "
                              f"{seconds(m.cpu_seconds):>8} {KINDS['bytes'](m.rss_mb * 2**20):>9}")
        if not shards.members:
            self.stdout.write("(no projector member is running)")
