"""Append a simulated market to the event store: ``--events N`` in bulk, or ``--live``."""
from __future__ import annotations

import re
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from lucent_admin.operations.cli import ProgressBar, stream_of
from projections.errors import ProjectionError
from projections.eventstore import EventStore
from projections.simulation.appender import append_events, run_live
from projections.simulation.market import DEFAULT_START, MEAN_INTERVAL_MS, Market, iso_utc

RELATIVE = re.compile(r"now(?:-(\d+)([smhd]))?")
DURATION = re.compile(r"(\d+)([smhd])")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# option -> (lowest, highest) accepted value
LIMITS: dict[str, tuple[float, float]] = {
    "events": (1, 10_000_000),
    "rate": (0.01, 100_000),
    "users": (1, 100_000),
    "pairs": (1, 50),
    "exchanges": (2, 20),
    "bad_ratio": (0.0, 1.0),
    "batch_size": (1, 1000),
    "history_interval_ms": (10, 600_000),
}


class Command(BaseCommand):
    help = (
        "Append a realistic simulated market (prices, trades, rebalances, closures) to EVENTSTORE_URI: "
        "--events N for a reproducible history, or --live for a continuous market until Ctrl-C."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--events", type=int, help="append N events in bulk (with --live: stop after N)")
        parser.add_argument("--live", action="store_true", help="run continuously, stamped with the wall clock")
        parser.add_argument("--rate", type=float, default=20.0, help="live events per second (default 20)")
        parser.add_argument("--seed", type=int, default=7, help="same seed, same events and ids (default 7)")
        parser.add_argument("--users", type=int, default=50)
        parser.add_argument("--pairs", type=int, default=6)
        parser.add_argument("--exchanges", type=int, default=3)
        parser.add_argument("--bad-ratio", type=float, default=0.0, help="fraction of malformed events, 0..1")
        parser.add_argument("--batch-size", type=int, default=100, help="events per append (default 100)")
        parser.add_argument("--history", metavar="DURATION",
                            help="with --live: if the store holds no events yet, first write a history of DURATION "
                                 "(e.g. 24h, 90m) ending now, then go live")
        parser.add_argument("--history-interval-ms", type=int, default=2500,
                            help="mean simulated time between two history events (default 2500: ~35k events a day)")
        parser.add_argument(
            "--start",
            help=f"start of the simulated clock: ISO-8601, now, or now-90m / now-2h (default {iso_utc(DEFAULT_START)})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self._validate(options)
        live, events = options["live"], options["events"]
        history = _parse_duration(options["history"]) if options["history"] else None
        start = datetime.now(UTC) - (history or timedelta(0)) if live else _parse_start(options["start"])
        market = Market(
            options["seed"], users=options["users"], pairs=options["pairs"], exchanges=options["exchanges"],
            start=start, bad_ratio=options["bad_ratio"],
            mean_interval_ms=options["history_interval_ms"] if history else MEAN_INTERVAL_MS,
        )
        began = time.monotonic()
        try:
            with EventStore(settings.EVENTSTORE_URI) as store:
                if live:
                    written = 0
                    if history:
                        written = self._history(store, market, history, options["history_interval_ms"],
                                                options["batch_size"])
                    count = written + self._live(store, market, options["rate"], options["batch_size"], events)
                else:
                    bar = ProgressBar(events, "simulate", stream_of(self.stderr))
                    try:
                        count = append_events(store, market.events(events), options["batch_size"], bar.update_to)
                    finally:
                        bar.close()
        except ProjectionError as exc:
            raise CommandError(f"simulate: {exc}") from exc
        self.stdout.write(_summary(market, count, time.monotonic() - began, start, live))

    def _validate(self, options: dict[str, Any]) -> None:
        if options["events"] is None and not options["live"]:
            raise CommandError("give --events N for a bulk history, or --live for a continuous market")
        if options["live"] and options["start"]:
            raise CommandError("--start applies to bulk runs; --live stamps events with the wall clock")
        if options["history"] and not options["live"]:
            raise CommandError("--history goes with --live (a bulk run takes --start and --events)")
        if options["history"]:
            _parse_duration(options["history"])
        for name, (low, high) in LIMITS.items():
            value = options[name]
            if value is not None and not low <= value <= high:
                flag = "--" + name.replace("_", "-")
                raise CommandError(f"{flag} must be between {low:g} and {high:g}, got {value}")

    def _history(self, store: EventStore, market: Market, span: timedelta, interval_ms: int, batch_size: int) -> int:
        """A history of ``span`` ending now, written only into an empty store (a restart goes live at once)."""
        if store.head(()) is not None:
            self.stderr.write("simulate: the store already holds events; no history written, going live")
            return 0
        now = datetime.now(UTC)
        expected = int(span.total_seconds() * 1000 / interval_ms)
        bar = ProgressBar(expected, "history", stream_of(self.stderr))
        try:
            count = append_events(store, market.events_until(now), batch_size, bar.update_to)
        finally:
            bar.close()
        self.stderr.write(f"simulate: wrote {count:,} events of history ({iso_utc(now - span)} to {iso_utc(now)}); going live")
        return count

    def _live(self, store: EventStore, market: Market, rate: float, batch_size: int, limit: int | None) -> int:
        stop = threading.Event()
        restore: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():

            def on_signal(signum: int, frame: FrameType | None) -> None:
                stop.set()

            for signum in (signal.SIGINT, signal.SIGTERM):
                restore[signum] = signal.signal(signum, on_signal)
        bar = ProgressBar(limit, "live", stream_of(self.stderr))
        try:
            return run_live(store, market, rate, stop, batch_size, limit, bar.update_to)
        finally:
            bar.close()
            for number, handler in restore.items():
                signal.signal(number, handler)


def _parse_duration(text: str) -> timedelta:
    match = DURATION.fullmatch(text.strip())
    if not match or int(match[1]) == 0:
        raise CommandError(f"--history {text!r} is not a duration; use e.g. 24h, 90m or 2d")
    return timedelta(seconds=int(match[1]) * UNIT_SECONDS[match[2]])


def _parse_start(text: str | None) -> datetime:
    if not text:
        return DEFAULT_START
    relative = RELATIVE.fullmatch(text)
    if relative:
        amount, unit = int(relative[1] or 0), relative[2] or "s"
        return datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=amount * UNIT_SECONDS[unit])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--start {text!r} is not ISO-8601; use e.g. 2026-01-05T00:00:00Z, now or now-2h") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _summary(market: Market, count: int, seconds: float, start: datetime, live: bool) -> str:
    kinds = ", ".join(f"{n:,} {t}" for t, n in sorted(market.counts.items()) if not t.startswith("bad:"))
    bad = sum(n for t, n in market.counts.items() if t.startswith("bad:"))
    clock = "wall clock" if live else f"simulated clock {iso_utc(start)} to {iso_utc(market.now)}"
    rate = count / seconds if seconds > 0 else 0.0
    return (
        f"Appended {count:,} events in {seconds:.1f}s ({rate:,.0f}/s): {kinds}; {bad:,} malformed. "
        f"Seed {market.seed}, {clock}."
    )
