"""The console's number filters: one per kind of value in :mod:`lucent_admin.formats` (its table), and
``epoch_ms``."""
from __future__ import annotations

from django import template

from lucent_admin.formats import KINDS, amount, change, consistency, count, epoch_ms, money, percent, price, rate, score, seconds

register = template.Library()
for _name, _format in KINDS.items():
    register.filter(_name, _format)
register.filter("epoch_ms", epoch_ms)

__all__ = ["amount", "change", "consistency", "count", "epoch_ms", "money", "percent", "price", "rate", "score", "seconds"]
