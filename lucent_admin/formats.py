"""One format per kind of value, everywhere: the console's pages (its template filters) and the command line.

=========  =====================================  ==============
kind       rule                                   example
=========  =====================================  ==============
money      thousands separators, 2 decimals       12,345.67
price      money from 1 up; 4 significant digits  64,012.50 · 0.1623
amount     6 significant digits, no padding       1,234.57 · 0.0123457
change     signed percentage, 2 decimals          +1.25%
percent    percentage, 2 decimals                 45.00%
count      whole number, thousands separators     1,204
score      2 decimals                             7.25
consistency percentage, 2 decimals, rounded down     99.98% (100.00% only when all is)
seconds    1 decimal and "s"                      1.5 s
rate       per second: whole from 10 up, else 1   1,250/s · 0.4/s
           decimal (never a misleading 0/s)
bytes      binary units, 1 decimal (B whole)      512 B · 12.3 KiB · 234.5 MiB · 1.2 GiB
millis     seconds in ms: 2 decimals below 10 ms  0.27 ms, 27,688 ms
ratio      2 decimals and "×"                     1.08×
=========  =====================================  ==============

A missing value (None) is "—" in every kind. Commit positions and ids are
identifiers, printed as they are.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timezone

NONE = "—"
KINDS: dict[str, Callable[[object], str]] = {}  # every kind by name (the console's template filters)


def _missing(value: object) -> bool:
    return value is None or value == "" or (isinstance(value, float) and not math.isfinite(value))


def _significant(value: float, digits: int) -> str:
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def _kind(name: str, render: Callable[[float], str]) -> Callable[[object], str]:
    """The kind ``name``: "—" for a missing value, else ``render`` of it as a float."""

    def format_value(value: object) -> str:
        return NONE if _missing(value) else render(float(value))  # type: ignore[arg-type]

    KINDS[name] = format_value
    return format_value


def _price(v: float) -> str:
    return f"{v:,.2f}" if abs(v) >= 1 else _significant(v, 4)


def _amount(v: float) -> str:
    text = _significant(v, 6)
    return text.rstrip("0").rstrip(".") if "." in text else text


money = _kind("money", lambda v: f"{v:,.2f}")
price = _kind("price", _price)
amount = _kind("amount", _amount)
change = _kind("change", lambda v: f"{v:+.2f}%")
percent = _kind("percent", lambda v: f"{v:.2f}%")
count = _kind("count", lambda v: f"{int(v):,}")
score = _kind("score", lambda v: f"{v:.2f}")
seconds = _kind("seconds", lambda v: f"{v:.1f} s")
rate = _kind("rate", lambda v: f"{v:,.0f}/s" if abs(v) >= 10 else f"{v:.1f}/s")


def _bytes(v: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(v) >= size:
            return f"{v / size:,.1f} {unit}"
    return f"{v:.0f} B"


_kind("bytes", _bytes)
_kind("millis", lambda v: f"{v * 1000:,.2f} ms" if abs(v) < 0.01 else f"{v * 1000:,.0f} ms")
_kind("ratio", lambda v: f"{v:.2f}×")
consistency = _kind("consistency", lambda v: f"{math.floor(v * 10_000) / 100:.2f}%")


def epoch_ms(value: object) -> datetime | None:
    """Milliseconds since the epoch as a UTC datetime (for the ``date`` filter); None when missing."""
    if _missing(value) or not str(value).lstrip("-").isdigit():
        return None
    return datetime.fromtimestamp(int(str(value)) / 1000, tz=timezone.utc)
