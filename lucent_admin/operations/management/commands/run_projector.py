"""``manage.py run_projector [--projection NAME ...] [--exit-when-caught-up]``: the projector process.

Thin: live, the process is a member (``projections.projector.member``): it announces itself, owns its fair
share of the partitions with the other members and runs a runner per partition it owns, so starting more of
these processes spreads the projections over them. With ``--exit-when-caught-up`` it runs every chosen
projection itself and returns once they are live (``projections.projector.supervisor``). Change notices go to
the Channels layer; SIGTERM / Ctrl-C stops it cleanly (the batch in flight is finished, the partitions handed
back).
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from lucent_admin.bootstrap import redis_client, runner_config
from lucent_admin.operations.observability import SHARDS, announce
from projections.errors import ProjectionError
from projections.maintenance.user_rebuild import heal
from projections.partitions import Partition
from projections.projector.member import Member
from projections.projector.notices import group_name
from projections.projector.runner import Notifier
from projections.projector.supervisor import build_runners, run_all, runner_factory
from projections.readmodels import PROJECTIONS

log = logging.getLogger(__name__)


def channel_notifier(projection: str) -> Notifier:
    """Publish a change notice of ``projection`` to its Channels group (after commit)."""
    layer = get_channel_layer()
    send = async_to_sync(layer.group_send) if layer is not None else None

    def notify(notice: dict[str, Any]) -> None:
        if send is not None:
            send(group_name(projection), {"type": "change.notice", "notice": notice})

    return notify


class Command(BaseCommand):
    help = "Run the projections (default all): catch up from their checkpoints, then follow $all live."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--projection", action="append", choices=PROJECTIONS, default=[],
                            help="projection to run (repeatable; default: all)")
        parser.add_argument("--exit-when-caught-up", action="store_true", help="return once every projection is live")

    def handle(self, *args: Any, **options: Any) -> None:
        base = runner_config("", exit_when_caught_up=bool(options["exit_when_caught_up"]))
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            if options["exit_when_caught_up"]:
                runners = build_runners(options["projection"], base, settings.LUCENT_PROJECTIONS, channel_notifier, heal)
                self.stderr.write(f"projector running: {', '.join(r.config.projection for r in runners)}")
                run_all(runners, stop)
            else:
                partitions = [Partition(name) for name in options["projection"] or PROJECTIONS]
                build = runner_factory(base, settings.LUCENT_PROJECTIONS, channel_notifier, heal)
                member = Member(redis_client(), partitions, build, base.lease_ms,
                                on_change=lambda: announce(SHARDS, int(time.time() * 1000)))
                self.stderr.write(f"projector member {member.member_id} running: its share of "
                                  f"{', '.join(p.label for p in partitions)}")
                member.run(stop)
        except ProjectionError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stderr.write("projector stopped")
