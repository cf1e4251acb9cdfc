"""Identifiers (projector ids, event and trade ids, streams, user ids) on screen.

An identifier never breaks mid-word: it may break only after a ':' (a projector id
``host:pid:token`` on a narrow screen), never at a hyphen or between letters.
"""
from __future__ import annotations

import re

from django import template
from django.utils.html import format_html_join
from django.utils.safestring import SafeString, mark_safe

register = template.Library()
NONE = "—"
_SEGMENT = re.compile(r"[^:]*:|[^:]+")


@register.filter
def ident(value: object) -> SafeString:
    """``value`` as unbreakable segments ending at each ':', with a line-break opportunity between them."""
    text = "" if value is None else str(value)
    if not text:
        return mark_safe(NONE)
    return format_html_join(mark_safe("<wbr>"), '<span class="seg">{}</span>', ((s,) for s in _SEGMENT.findall(text)))
