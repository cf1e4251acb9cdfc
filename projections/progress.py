"""A one-line progress bar for long commands: done/total, rate, ETA.

Framework-free and dependency-free. On a terminal it redraws at most
``1 / interval`` times a second; on a pipe or a log file it stays silent
until :meth:`Progress.finish` writes a single summary line.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress", "format_duration"]

BAR_WIDTH = 24


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``1h02m``."""
    whole = max(0, int(round(seconds)))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


class Progress:
    """Progress of ``total`` items (``None``: open-ended), drawn on ``stream`` (stderr)."""

    def __init__(
        self,
        total: int | None,
        label: str = "events",
        stream: TextIO | None = None,
        interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.clock = clock
        self.tty = self.stream.isatty()
        self.started = clock()
        self.drawn_at = float("-inf")
        self.done = 0

    def update(self, done: int) -> None:
        """Record ``done`` items so far; redraw if on a terminal and due."""
        self.done = done
        now = self.clock()
        if self.tty and now - self.drawn_at >= self.interval:
            self.drawn_at = now
            self.stream.write("\r\x1b[K" + self.line(now))
            self.stream.flush()

    def finish(self) -> None:
        """Write the final line (always, terminal or not)."""
        prefix = "\r\x1b[K" if self.tty else ""
        self.stream.write(prefix + self.line(self.clock()) + "\n")
        self.stream.flush()

    def rate(self, now: float | None = None) -> float:
        elapsed = (self.clock() if now is None else now) - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self, now: float) -> str:
        rate = self.rate(now)
        elapsed = format_duration(now - self.started)
        if not self.total:
            return f"{self.label} {self.done:,}  {rate:,.0f}/s  {elapsed}"
        fraction = min(1.0, self.done / self.total)
        filled = int(fraction * BAR_WIDTH)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        eta = format_duration((self.total - self.done) / rate) if rate > 0 else "?"
        return (
            f"{self.label} [{bar}] {self.done:,}/{self.total:,} {fraction:6.1%}  "
            f"{rate:,.0f}/s  {elapsed} elapsed  ETA {eta}"
        )
