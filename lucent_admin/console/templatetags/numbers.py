"""One format per kind of value, everywhere in the console.

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
seconds    1 decimal and "s"                      1.5 s
rate       whole number per second                1,250/s
=========  =====================================  ==============

A missing value (None) is "—" in every kind. Commit positions and ids are
identifiers, printed as they are.
"""
from __future__ import annotations

import math

from django import template

register = template.Library()
NONE = "—"


def _missing(value: object) -> bool:
    return value is None or value == "" or (isinstance(value, float) and not math.isfinite(value))


def _significant(value: float, digits: int) -> str:
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


@register.filter
def money(value: float | None) -> str:
    return NONE if _missing(value) else f"{float(value):,.2f}"  # type: ignore[arg-type]


@register.filter
def price(value: float | None) -> str:
    if _missing(value):
        return NONE
    v = float(value)  # type: ignore[arg-type]
    return f"{v:,.2f}" if abs(v) >= 1 else _significant(v, 4)


@register.filter
def amount(value: float | None) -> str:
    if _missing(value):
        return NONE
    text = _significant(float(value), 6)  # type: ignore[arg-type]
    return text.rstrip("0").rstrip(".") if "." in text else text


@register.filter
def change(value: float | None) -> str:
    return NONE if _missing(value) else f"{float(value):+.2f}%"  # type: ignore[arg-type]


@register.filter
def percent(value: float | None) -> str:
    return NONE if _missing(value) else f"{float(value):.2f}%"  # type: ignore[arg-type]


@register.filter
def count(value: int | None) -> str:
    return NONE if _missing(value) else f"{int(value):,}"  # type: ignore[arg-type]


@register.filter
def score(value: float | None) -> str:
    return NONE if _missing(value) else f"{float(value):.2f}"  # type: ignore[arg-type]


@register.filter
def seconds(value: float | None) -> str:
    return NONE if _missing(value) else f"{float(value):.1f} s"  # type: ignore[arg-type]


@register.filter
def rate(value: float | None) -> str:
    return NONE if _missing(value) else f"{float(value):,.0f}/s"  # type: ignore[arg-type]
