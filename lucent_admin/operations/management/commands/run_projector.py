"""``manage.py run_projector [--projection NAME ...] [--processes N] [--exit-when-caught-up]``: the projector.

Thin: live, the process is a member (``projections.projector.member``): it announces itself, owns its fair
share of the partitions with the other members and runs a runner per partition it owns, so starting more of
these processes spreads the projections over them. With ``--exit-when-caught-up`` it runs every chosen
projection itself and returns once they are live (``projections.projector.supervisor``). Change notices go to
the Channels layer; SIGTERM / Ctrl-C stops it cleanly (the batch in flight is finished, the partitions handed
back). ``--processes N`` starts N members: this process and N-1 children, each started again if it exits
while the others run, all stopped together.
"""
from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
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
from projections.projector.member import Member, planned
from projections.projector.notices import group_name
from projections.projector.runner import Notifier, shared_reader
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


class Children:
    """The other members of ``--processes N``: ``count`` children running this command, each started again a
    second after it exits (killed, crashed) while ``stop`` is not set; stopped (SIGTERM, then waited for) on exit."""

    def __init__(self, count: int, projections: list[str], stop: threading.Event) -> None:
        self.argv = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "run_projector",
                     *(f"--projection={name}" for name in projections)]
        self.count, self.stop = count, stop
        self.procs: list[subprocess.Popen[bytes]] = []
        self.lock = threading.Lock()  # a child is never started again once __exit__ began stopping them
        self.watcher = threading.Thread(target=self._watch, daemon=True, name="projector-children")

    def __enter__(self) -> Children:
        self.procs = [subprocess.Popen(self.argv) for _ in range(self.count)]
        if self.count:
            self.watcher.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.stop.set()
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()  # reaped: no zombie left behind

    def _watch(self) -> None:
        while not self.stop.wait(1.0):
            for i, proc in enumerate(self.procs):
                with self.lock:
                    if proc.poll() is not None and not self.stop.is_set():
                        log.warning("projector member %s exited (%s); starting another", proc.pid, proc.returncode)
                        self.procs[i] = subprocess.Popen(self.argv)


class Command(BaseCommand):
    help = "Run the projections (default all): catch up from their checkpoints, then follow $all live."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--projection", action="append", choices=PROJECTIONS, default=[],
                            help="projection to run (repeatable; default: all)")
        parser.add_argument("--exit-when-caught-up", action="store_true", help="return once every projection is live")
        parser.add_argument("--processes", type=int, default=1, metavar="N",
                            help="members to start: this process and N-1 children (they share the partitions)")

    def handle(self, *args: Any, **options: Any) -> None:
        processes = int(options["processes"])
        if processes < 1 or (processes > 1 and options["exit_when_caught_up"]):
            raise CommandError(f"--processes: give 1 or more (1 with --exit-when-caught-up), got {processes}")
        base = runner_config("", exit_when_caught_up=bool(options["exit_when_caught_up"]))
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            client = redis_client()
            names = options["projection"] or list(PROJECTIONS)
            partitions = planned(client, names, settings.LUCENT_PARTITIONS)
            if options["exit_when_caught_up"]:
                runners = build_runners(partitions, base, settings.LUCENT_PROJECTIONS, channel_notifier, heal, client)
                self.stderr.write(f"projector running: {', '.join(r.partition.label for r in runners)}")
                run_all(runners, stop)
            else:
                shared = shared_reader(base)
                build = runner_factory(base, settings.LUCENT_PROJECTIONS, channel_notifier, heal, redis_client(), shared)
                member = Member(client, lambda: planned(client, names, settings.LUCENT_PARTITIONS), build, base.lease_ms,
                                on_change=lambda: announce(SHARDS, int(time.time() * 1000)))
                self.stderr.write(f"projector member {member.member_id} running: its share of "
                                  f"{', '.join(p.label for p in partitions)}, reading $all once for them")
                try:
                    with Children(processes - 1, options["projection"], stop):
                        member.run(stop)
                finally:
                    shared.stop()
        except ProjectionError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stderr.write("projector stopped")
